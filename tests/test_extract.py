"""Sniffing and extraction on real files generated here (fpdf2, python-docx, python-pptx,
zipfile) and on hand-written hostile inputs. No network, no ffmpeg."""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

import docx
import pptx
import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from shared.jobs.errors import PermanentJobError
from shared.materials import extract as extract_mod
from shared.materials.extract import ExtractedDocument, extract_document
from shared.materials.sniff import FileKind, SniffResult, UnsupportedFile, sniff_file

# --- builders ---------------------------------------------------------------------------


def make_pdf(path: Path, pages: list[str]) -> Path:
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 8, text)
    pdf.output(str(path))
    return path


def make_docx(path: Path) -> Path:
    document = docx.Document()
    document.add_heading("Cell Biology", level=0)
    document.add_paragraph("Cells are the basic unit of life.")
    document.add_heading("Mitochondria", level=1)
    document.add_paragraph("Mitochondria produce ATP through respiration.")
    document.add_paragraph("Matrix holds enzymes", style="List Bullet")
    document.add_heading("Membranes", level=2)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Organelle"
    table.cell(0, 1).text = "Function"
    table.cell(1, 0).text = "Ribosome"
    table.cell(1, 1).text = "Protein synthesis"
    document.add_paragraph("After the table.")
    document.save(str(path))
    return path


def make_pptx(path: Path) -> Path:
    deck = pptx.Presentation()
    layout = deck.slide_layouts[1]  # title and content
    for title, body, notes in [
        ("Photosynthesis", "Light reactions happen in the thylakoid.", "Mention chlorophyll."),
        ("Calvin Cycle", "Carbon fixation by RuBisCO.", "Draw the cycle on the board."),
    ]:
        slide = deck.slides.add_slide(layout)
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        slide.notes_slide.notes_text_frame.text = notes
    deck.save(str(path))
    return path


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


PAGES = [f"Page {n} is about topic number {n}. " * 10 for n in (1, 2, 3)]


# --- documents --------------------------------------------------------------------------


def test_pdf_named_txt_is_sniffed_as_pdf_and_keeps_pages(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "notes.txt", PAGES)
    assert sniff_file(path, "notes.txt") == SniffResult(FileKind.PDF, "application/pdf", "pdf")
    progress: list[tuple[int, int]] = []
    doc = extract_document(path, FileKind.PDF, on_page=lambda d, t: progress.append((d, t)))
    assert doc.page_count == 3
    assert [s.page for s in doc.segments] == [1, 2, 3]
    for n, segment in enumerate(doc.segments, start=1):
        assert f"Page {n} is about topic number {n}." in segment.text
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert not doc.truncated


def test_pdf_blank_page_keeps_numbering(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "a.pdf", ["First page text.", "", "Third page text."])
    doc = extract_document(path, FileKind.PDF)
    assert [s.page for s in doc.segments] == [1, 3]
    assert doc.page_count == 3


def test_docx_headings_paragraphs_and_table(tmp_path: Path) -> None:
    path = make_docx(tmp_path / "lecture.pptx")  # misleading name
    sniffed = sniff_file(path, "lecture.pptx")
    assert sniffed.kind is FileKind.DOCX
    assert sniffed.extension == "docx"
    doc = extract_document(path, FileKind.DOCX)
    assert doc.page_count is None
    [segment] = doc.segments
    text = segment.text
    assert text.startswith("# Cell Biology\n\nCells are the basic unit of life.")
    assert "\n\n# Mitochondria\n\nMitochondria produce ATP" in text
    assert "- Matrix holds enzymes" in text
    assert "## Membranes" in text
    assert "Organelle | Function\nRibosome | Protein synthesis" in text
    # Order is kept: the table sits between the heading and the last paragraph.
    assert text.index("## Membranes") < text.index("Organelle") < text.index("After the table")


def test_pptx_one_segment_per_slide_with_titles_and_notes(tmp_path: Path) -> None:
    path = make_pptx(tmp_path / "deck.pdf")
    assert sniff_file(path, "deck.pdf").kind is FileKind.PPTX
    progress: list[tuple[int, int]] = []
    doc = extract_document(path, FileKind.PPTX, on_page=lambda d, t: progress.append((d, t)))
    assert doc.page_count == 2
    assert [s.page for s in doc.segments] == [1, 2]
    first, second = (s.text for s in doc.segments)
    assert first.startswith("# Photosynthesis\n\n")
    assert "Light reactions happen in the thylakoid." in first
    assert "Notes:\nMention chlorophyll." in first
    assert second.startswith("# Calvin Cycle")
    assert "Draw the cycle on the board." in second
    assert progress == [(1, 2), (2, 2)]


def test_markdown_and_text(tmp_path: Path) -> None:
    md = write(tmp_path / "a.txt", b"\xef\xbb\xbf# Heading\n\nSome *notes* here.\n")
    assert sniff_file(md, "a.txt").kind is FileKind.MARKDOWN
    [segment] = extract_document(md, FileKind.MARKDOWN).segments
    assert segment.text == "# Heading\n\nSome *notes* here."  # BOM stripped

    by_name = write(tmp_path / "b", b"No headings, but the name says Markdown.\n")
    assert sniff_file(by_name, "Notes.MD") == SniffResult(FileKind.MARKDOWN, "text/markdown", "md")

    plain = write(tmp_path / "c.md", "Plain words, café and 数学.\r\nSecond line.".encode())
    assert sniff_file(plain, None) == SniffResult(FileKind.TEXT, "text/plain", "txt")
    [segment] = extract_document(plain, FileKind.TEXT).segments
    assert segment.text == "Plain words, café and 数学.\nSecond line."
    assert segment.page is None


def test_text_falls_back_to_latin1(tmp_path: Path) -> None:
    path = write(tmp_path / "old.txt", "Café résumé".encode("latin-1"))
    [segment] = extract_document(path, FileKind.TEXT).segments
    assert segment.text == "Café résumé"


def test_text_multibyte_char_cut_at_head_edge_is_still_text(tmp_path: Path) -> None:
    data = b"a" * (64 * 1024 - 1) + "é".encode() + b" more"
    path = write(tmp_path / "edge.txt", data)
    assert sniff_file(path).kind is FileKind.TEXT


def test_text_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract_mod, "MAX_TEXT_CHARS", 100)
    path = write(tmp_path / "long.txt", b"word " * 1000)
    doc = extract_document(path, FileKind.TEXT)
    assert doc.truncated
    assert doc.char_count <= 100

    pdf = make_pdf(tmp_path / "long.pdf", PAGES)
    doc = extract_document(pdf, FileKind.PDF)
    assert doc.truncated
    assert doc.char_count == 100
    assert [s.page for s in doc.segments] == [1]


# --- hostile inputs ---------------------------------------------------------------------


def test_zero_bytes(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFile, match=r"^The file is empty\.$"):
        sniff_file(write(tmp_path / "empty.pdf", b""), "empty.pdf")


def test_whitespace_only_text(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFile, match="contains no text"):
        sniff_file(write(tmp_path / "blank.txt", b" \n\n\t \n"))


def test_random_bytes(tmp_path: Path) -> None:
    data = bytes(random.Random(1234).getrandbits(8) for _ in range(4096))
    path = write(tmp_path / "x.pdf", b"\x13\x37" + data)
    with pytest.raises(UnsupportedFile, match="not supported") as info:
        sniff_file(path, "x.pdf")
    assert isinstance(info.value, PermanentJobError)
    assert "PDF, Word (.docx), PowerPoint (.pptx)" in str(info.value)


def test_binary_with_nul_bytes_is_not_text(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFile):
        sniff_file(write(tmp_path / "a.txt", b"hello\x00world" * 10))


def test_control_characters_are_not_text(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFile):
        sniff_file(write(tmp_path / "a.txt", bytes(range(1, 32)) * 20))


def test_truncated_pdf(tmp_path: Path) -> None:
    data = make_pdf(tmp_path / "full.pdf", PAGES).read_bytes()
    path = write(tmp_path / "cut.pdf", data[: len(data) // 2])
    assert sniff_file(path).kind is FileKind.PDF
    with pytest.raises(PermanentJobError, match="This PDF is damaged"):
        extract_document(path, FileKind.PDF)


def test_garbage_after_pdf_header(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.pdf", b"%PDF-1.7\n" + b"\x00\xff garbage " * 50)
    with pytest.raises(PermanentJobError, match="This PDF is damaged"):
        extract_document(path, FileKind.PDF)


def _encrypt(src: Path, dst: Path, user_password: str) -> Path:
    writer = PdfWriter(clone_from=PdfReader(src))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-256")
    with dst.open("wb") as fh:
        writer.write(fh)
    return dst


def test_encrypted_pdf(tmp_path: Path) -> None:
    path = _encrypt(make_pdf(tmp_path / "a.pdf", PAGES), tmp_path / "locked.pdf", "secret")
    assert sniff_file(path).kind is FileKind.PDF
    with pytest.raises(PermanentJobError, match="This PDF is password-protected"):
        extract_document(path, FileKind.PDF)


def test_owner_password_only_pdf_still_opens(tmp_path: Path) -> None:
    path = _encrypt(make_pdf(tmp_path / "a.pdf", PAGES), tmp_path / "owner.pdf", "")
    doc = extract_document(path, FileKind.PDF)
    assert [s.page for s in doc.segments] == [1, 2, 3]


def test_pdf_without_text_is_reported_as_scanned(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "scan.pdf", [""])
    with pytest.raises(PermanentJobError, match="scanned") as info:
        extract_document(path, FileKind.PDF)
    assert "OCR" in str(info.value)


def test_pdf_page_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract_mod, "MAX_PDF_PAGES", 2)
    path = make_pdf(tmp_path / "a.pdf", PAGES)
    with pytest.raises(PermanentJobError, match="This PDF has 3 pages; the limit is 2"):
        extract_document(path, FileKind.PDF)


def test_zip_that_is_not_office(tmp_path: Path) -> None:
    path = tmp_path / "notes.docx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
        zf.writestr("[Content_Types].xml", "<Types/>")
    with pytest.raises(UnsupportedFile, match="zip archive, not a Word or PowerPoint"):
        sniff_file(path, "notes.docx")


def test_truncated_zip(tmp_path: Path) -> None:
    data = make_docx(tmp_path / "a.docx").read_bytes()
    path = write(tmp_path / "cut.docx", data[: len(data) // 2])
    with pytest.raises(UnsupportedFile, match="damaged Word or PowerPoint"):
        sniff_file(path)


def test_old_office_format(tmp_path: Path) -> None:
    path = write(tmp_path / "a.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512)
    with pytest.raises(UnsupportedFile, match=r"\.docx or \.pptx"):
        sniff_file(path)


def _add_member(path: Path, name: str, size: int) -> None:
    with (
        zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open(name, "w", force_zip64=False) as member,
    ):
        chunk = b"\x00" * (1024 * 1024)
        for _ in range(size // len(chunk)):
            member.write(chunk)


def test_docx_zip_bomb(tmp_path: Path) -> None:
    path = make_docx(tmp_path / "bomb.docx")
    _add_member(path, "word/media/image1.bin", 50 * 1024 * 1024)
    assert path.stat().st_size < 200 * 1024  # small on disk, 50 MB expanded
    assert sniff_file(path).kind is FileKind.DOCX
    with pytest.raises(PermanentJobError, match="suspicious archive"):
        extract_document(path, FileKind.DOCX)


def test_pptx_total_uncompressed_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_pptx(tmp_path / "a.pptx")
    monkeypatch.setattr(extract_mod, "MAX_ARCHIVE_UNCOMPRESSED", 1000)
    with pytest.raises(PermanentJobError, match="suspicious archive"):
        extract_document(path, FileKind.PPTX)


def test_zip_with_too_many_members(tmp_path: Path) -> None:
    path = tmp_path / "many.docx"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(10_001):
            zf.writestr(f"m{i}", b"")
    with pytest.raises(UnsupportedFile, match="suspicious archive"):
        sniff_file(path)


def test_media_is_not_extracted(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", b"hello")
    with pytest.raises(ValueError, match="transcription"):
        extract_document(path, FileKind.AUDIO)


def test_extracted_document_type(tmp_path: Path) -> None:
    doc = extract_document(write(tmp_path / "a.txt", b"hello"), FileKind.TEXT)
    assert isinstance(doc, ExtractedDocument)
    assert doc.char_count == 5


# --- audio and video by their headers ---------------------------------------------------

# MPEG-1 Layer III, 128 kbps, 44.1 kHz, no padding: frames of 144*128000/44100 = 417 bytes.
MP3_FRAME = b"\xff\xfb\x90\x64" + b"\x00" * 413


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x02\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00\x00\x00\x08free"


def _ebml(doctype: bytes) -> bytes:
    return b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84" + doctype + b"\x42\x87\x81\x04"


MEDIA_CASES = [
    ("id3", b"ID3\x04\x00\x00\x00\x00\x00\x0a" + b"\x00" * 10 + MP3_FRAME, "audio", "mp3"),
    ("mpeg-frames", MP3_FRAME * 3, "audio", "mp3"),
    ("id3-flac", b"ID3\x04\x00\x00\x00\x00\x00\x04" + b"\x00" * 4 + b"fLaC\x00", "audio", "flac"),
    ("wav", b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00", "audio", "wav"),
    ("flac", b"fLaC\x00\x00\x00\x22" + b"\x00" * 34, "audio", "flac"),
    ("ogg", b"OggS\x00\x02" + b"\x00" * 20 + b"\x01\x1evorbis", "audio", "ogg"),
    ("m4a", _ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"), "audio", "m4a"),
    ("mp4", _ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "video", "mp4"),
    ("mp4-mp42", _ftyp(b"mp42", b"mp42", b"isom"), "video", "mp4"),
    ("mov", _ftyp(b"qt  ", b"qt  "), "video", "mov"),
    ("mov-legacy", b"\x00\x00\x00\x10moov\x00\x00\x00\x08free", "video", "mov"),
    ("webm", _ebml(b"webm"), "video", "webm"),
    ("mkv", _ebml(b"matroska"), "video", "mkv"),
]


@pytest.mark.parametrize(
    ("data", "kind", "extension"),
    [case[1:] for case in MEDIA_CASES],
    ids=[case[0] for case in MEDIA_CASES],
)
def test_sniff_media(tmp_path: Path, data: bytes, kind: str, extension: str) -> None:
    path = write(tmp_path / "upload.txt", data + b"\x00" * 256)
    result = sniff_file(path, "upload.txt")
    assert result.kind == kind
    assert result.extension == extension
    assert result.mime.startswith(f"{kind}/")
    assert result.kind.is_media


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_ftyp(b"heic", b"mif1", b"heic"), id="heic-image"),
        pytest.param(b"\xff\xfb\x90\x64" + b"\x00" * 2000, id="lone-frame-sync"),
        pytest.param(b"RIFF\x24\x08\x00\x00AVI LIST", id="avi"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, id="png"),
    ],
)
def test_sniff_refuses_other_binaries(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(UnsupportedFile, match="not supported"):
        sniff_file(write(tmp_path / "a.mp3", data), "a.mp3")


def test_text_mentioning_media_words_stays_text(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", b"I'm free to talk about %PDF- headers and ID3 tags.")
    assert sniff_file(path).kind is FileKind.TEXT
