"""Turn a document on disk into text segments that keep their location.

Synchronous and CPU-bound: the pipeline runs ``extract_document`` in a worker thread or
process. ``on_page(done, total)`` is called as pages (PDF) or slides (PPTX) are read, so
the job can report "extracting page 12/80".

Hostile input is expected. Every failure a learner can cause raises ``PermanentJobError``
with a message written for them:

* PDF: more than ``MAX_PDF_PAGES`` pages is refused; text stops at ``MAX_TEXT_CHARS``
  (``ExtractedDocument.truncated`` is then set). pypdf (7.x) has its own bomb limits,
  pinned below in ``_PDF_LIMITS`` so a pypdf upgrade cannot loosen them silently: at most
  75 MB decompressed per stream and filter (Flate, LZW, RunLength, JBIG2, Brotli), 300 MB
  of decoding work per stream, 100,000 array/dictionary elements, a 100,000-entry page
  tree, 5,000 form XObjects per page during text extraction. They raise
  ``LimitReachedError``; we turn that into a learner message. jbig2dec is never run.
* DOCX/PPTX: the zip's member list is checked before any parser touches it (total
  uncompressed size, compression ratio per member). The declared sizes can be trusted as
  upper bounds because Python's ``zipfile`` never yields more than a member's declared
  ``file_size`` (and fails the CRC check when the data disagree).
"""

from __future__ import annotations

import codecs
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.jobs.errors import PermanentJobError
from shared.materials.chunking import Segment
from shared.materials.sniff import FileKind

MAX_PDF_PAGES = 2_000
MAX_TEXT_CHARS = 5_000_000
MAX_ARCHIVE_UNCOMPRESSED = 200 * 1024 * 1024
MAX_COMPRESSION_RATIO = 100
# Members smaller than this cannot be a bomb, and tiny repetitive XML parts can compress
# unusually well; the ratio test applies only above it.
_RATIO_MIN_MEMBER = 1024 * 1024

_PDF_LIMITS: dict[str, Any] = {
    "maximum_declared_stream_length": 75_000_000,
    "array_based_stream_maximum_output_length": 75_000_000,
    "zlib_maximum_output_length": 75_000_000,
    "lzw_maximum_output_length": 75_000_000,
    "run_length_maximum_output_length": 75_000_000,
    "jbig2_maximum_output_length": 75_000_000,
    "brotli_maximum_output_length": 75_000_000,
    "stream_decoding_work_maximum_length": 300_000_000,
    "page_tree_maximum_entries": 100_000,
    "xform_maximum_invocations_per_extraction": 5_000,
    "jbig2dec_binary": None,
}

OnPage = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class ExtractedDocument:
    segments: list[Segment]
    page_count: int | None
    """Pages of a PDF or slides of a deck; None for DOCX, Markdown and text."""
    truncated: bool = False
    """True when the text was cut at ``MAX_TEXT_CHARS``."""

    @property
    def char_count(self) -> int:
        return sum(len(s.text) for s in self.segments)


def extract_document(
    path: Path, kind: FileKind, on_page: OnPage | None = None
) -> ExtractedDocument:
    """Extract the text of a document whose ``kind`` came from ``sniff_file``."""
    if kind is FileKind.PDF:
        return _extract_pdf(path, on_page)
    if kind is FileKind.DOCX:
        return _extract_docx(path, on_page)
    if kind is FileKind.PPTX:
        return _extract_pptx(path, on_page)
    if kind in (FileKind.MARKDOWN, FileKind.TEXT):
        return _extract_text(path, on_page)
    raise ValueError(f"extract_document does not handle {kind}; media goes to transcription")


class _Budget:
    """Caps the characters kept across a whole document."""

    def __init__(self, limit: int | None = None) -> None:
        self.left = MAX_TEXT_CHARS if limit is None else limit
        self.truncated = False

    def take(self, text: str) -> str:
        if len(text) > self.left:
            text = text[: self.left]
            self.truncated = True
        self.left -= len(text)
        return text

    @property
    def exhausted(self) -> bool:
        return self.left <= 0


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clean(text: str) -> str:
    return _CONTROL.sub("", text).strip()


# --- PDF --------------------------------------------------------------------------------

_PDF_DAMAGED = (
    "This PDF is damaged and cannot be read (it may be incomplete or corrupted). "
    "Try downloading or exporting it again, then re-upload."
)


def _extract_pdf(path: Path, on_page: OnPage | None) -> ExtractedDocument:
    from pypdf import PdfReader, apply_configuration
    from pypdf.errors import DependencyError, LimitReachedError

    too_complex = PermanentJobError(
        "This PDF contains parts that would expand to an unreasonable size when opened, "
        "so it was not processed. It may be damaged or deliberately malformed; try "
        'exporting it again (for example with "Print to PDF").'
    )
    with apply_configuration(**_PDF_LIMITS):
        try:
            reader = PdfReader(path)
            # An owner-password-only PDF opens with the empty user password.
            if reader.is_encrypted and not reader.decrypt(""):
                raise PermanentJobError(
                    "This PDF is password-protected. Remove the password (for example "
                    "by printing it to a new PDF) and upload it again."
                )
            total = len(reader.pages)
        except PermanentJobError:
            raise
        except LimitReachedError as exc:
            raise too_complex from exc
        except DependencyError as exc:
            raise PermanentJobError(
                "This PDF is encrypted in a way we cannot open. Save an unprotected copy "
                "and upload it again."
            ) from exc
        except Exception as exc:  # pypdf raises many types for broken files
            raise PermanentJobError(_PDF_DAMAGED) from exc

        if total > MAX_PDF_PAGES:
            raise PermanentJobError(
                f"This PDF has {total:,} pages; the limit is {MAX_PDF_PAGES:,}. "
                "Split it into smaller files and upload them separately."
            )
        if total == 0:
            raise PermanentJobError("This PDF contains no pages, so it contains no text.")

        budget = _Budget()
        segments: list[Segment] = []
        failed = 0
        for number in range(1, total + 1):
            try:
                raw = reader.pages[number - 1].extract_text()
            except LimitReachedError as exc:
                raise too_complex from exc
            except Exception:  # one broken page should not lose the rest
                failed += 1
                raw = ""
            text = _clean(raw)
            if text:
                segments.append(Segment(text=budget.take(text), page=number))
            if on_page is not None:
                on_page(number, total)
            if budget.exhausted:
                break

    if not segments:
        if failed == total:
            raise PermanentJobError(_PDF_DAMAGED)
        raise PermanentJobError(
            "This PDF contains no text we can read. It is probably a scanned document "
            "(pictures of pages); scanned PDFs are not supported because we don't do OCR "
            "yet. Upload a PDF with selectable text instead."
        )
    return ExtractedDocument(segments, page_count=total, truncated=budget.truncated)


# --- Office archives --------------------------------------------------------------------


def check_office_archive(path: Path) -> None:
    """Refuse zip bombs before a parser expands anything."""
    suspicious = PermanentJobError(
        "This file is a suspicious archive: it would expand to far more data than a normal "
        "document, so it was not opened. Save the document again from Word or PowerPoint "
        "and re-upload."
    )
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise PermanentJobError(
            "This Office file is damaged and cannot be opened. Save it again from Word or "
            "PowerPoint and re-upload."
        ) from exc
    total = 0
    for info in members:
        total += info.file_size
        if total > MAX_ARCHIVE_UNCOMPRESSED:
            raise suspicious
        if info.file_size >= _RATIO_MIN_MEMBER and (
            info.file_size > info.compress_size * MAX_COMPRESSION_RATIO
        ):
            raise suspicious


def _office_damaged(what: str) -> PermanentJobError:
    return PermanentJobError(
        f"This {what} file is damaged or uses a format we cannot read (macro-enabled and "
        f"template files are not supported). Save it again as a normal {what} document "
        "and re-upload."
    )


def _docx_blocks(document: Any) -> Iterator[str]:
    from docx.table import Table

    for block in document.iter_inner_content():
        if isinstance(block, Table):
            yield from _docx_table(block)
            continue
        text = _clean(block.text)
        if not text:
            continue
        style = block.style.name if block.style is not None else ""
        yield _docx_paragraph(text, style or "")


def _docx_paragraph(text: str, style: str) -> str:
    one_line = " ".join(text.split())
    if style == "Title":
        return f"# {one_line}"
    match = re.fullmatch(r"Heading (\d)", style)
    if match:
        return f"{'#' * min(int(match.group(1)), 6)} {one_line}"
    if style.startswith("List Bullet"):
        return f"- {text}"
    return text


def _docx_table(table: Any) -> Iterator[str]:
    rows: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        last: Any = None
        for cell in row.cells:
            if last is not None and cell._tc is last:  # a merged cell repeats
                continue
            last = cell._tc
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            rows.append(" | ".join(cells))
    if rows:
        yield "\n".join(rows)


def _join_blocks(blocks: Iterable[str], budget: _Budget) -> str:
    kept: list[str] = []
    for block in blocks:
        kept.append(budget.take(block))
        if budget.exhausted:
            break
    return "\n\n".join(b for b in kept if b)


def _extract_docx(path: Path, on_page: OnPage | None) -> ExtractedDocument:
    import docx

    check_office_archive(path)
    budget = _Budget()
    try:
        document = docx.Document(str(path))
        text = _join_blocks(_docx_blocks(document), budget)
    except Exception as exc:  # python-docx raises KeyError/ValueError/lxml errors
        raise _office_damaged("Word") from exc
    if on_page is not None:
        on_page(1, 1)
    if not text.strip():
        raise PermanentJobError("This Word document contains no text.")
    return ExtractedDocument([Segment(text=text)], page_count=None, truncated=budget.truncated)


def _shape_texts(shapes: Iterable[Any], skip: Any) -> Iterator[str]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if skip is not None and shape.shape_id == skip.shape_id:
            continue
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _shape_texts(shape.shapes, skip)
        elif getattr(shape, "has_table", False) and shape.has_table:
            rows = [
                " | ".join(" ".join(cell.text.split()) for cell in row.cells)
                for row in shape.table.rows
            ]
            table = "\n".join(r for r in rows if r.strip(" |"))
            if table:
                yield table
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            text = _clean(shape.text_frame.text)
            if text:
                yield text


def _slide_text(slide: Any, number: int) -> str:
    title_shape = slide.shapes.title
    title = " ".join(title_shape.text_frame.text.split()) if title_shape is not None else ""
    body = list(_shape_texts(slide.shapes, title_shape))
    if slide.has_notes_slide:
        frame = slide.notes_slide.notes_text_frame
        notes = _clean(frame.text) if frame is not None else ""
        if notes:
            body.append(f"Notes:\n{notes}")
    if not title and not body:
        return ""
    return "\n\n".join([f"# {title or f'Slide {number}'}", *body])


def _extract_pptx(path: Path, on_page: OnPage | None) -> ExtractedDocument:
    import pptx

    check_office_archive(path)
    budget = _Budget()
    segments: list[Segment] = []
    try:
        presentation = pptx.Presentation(str(path))
        slides = list(presentation.slides)
        total = len(slides)
        for number, slide in enumerate(slides, start=1):
            text = _slide_text(slide, number)
            if text:
                segments.append(Segment(text=budget.take(text), page=number))
            if on_page is not None:
                on_page(number, total)
            if budget.exhausted:
                break
    except Exception as exc:  # python-pptx raises KeyError/ValueError/lxml errors
        raise _office_damaged("PowerPoint") from exc
    if not segments:
        raise PermanentJobError("This presentation contains no text.")
    return ExtractedDocument(segments, page_count=total, truncated=budget.truncated)


# --- Markdown / plain text --------------------------------------------------------------


def _extract_text(path: Path, on_page: OnPage | None) -> ExtractedDocument:
    # Read no more than the character budget can use (UTF-8 is at most 4 bytes a char).
    limit = MAX_TEXT_CHARS * 4
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    complete = len(data) <= limit
    data = data[:limit].removeprefix(codecs.BOM_UTF8)
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(data, final=complete)
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    budget = _Budget()
    text = budget.take(_clean(text.replace("\r\n", "\n").replace("\r", "\n")))
    truncated = budget.truncated or not complete
    if on_page is not None:
        on_page(1, 1)
    if not text:
        raise PermanentJobError("This file contains no text.")
    return ExtractedDocument([Segment(text=text)], page_count=None, truncated=truncated)
