"""Decide what an uploaded file is from its content (magic bytes), never from its name.

The client's filename and Content-Type header are not trusted: a PDF called ``notes.txt``
is a PDF, and a program called ``notes.pdf`` is refused. The only use of the filename is
a hint between two text kinds (``.md`` → Markdown). Only the head of the file is read,
plus, for zip containers, the end-of-central-directory record and the central directory
(the member list) — never the members themselves.

``sniff_file`` is synchronous and cheap (one 64 KiB read, a few more for zips); call it
in a thread from async code all the same, since it touches the disk.
"""

from __future__ import annotations

import codecs
import re
import struct
import unicodedata
import zipfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from shared.jobs.errors import PermanentJobError

HEAD_BYTES = 64 * 1024
MAX_ZIP_ENTRIES = 10_000
MAX_ZIP_DIRECTORY_BYTES = 16 * 1024 * 1024
_MIN_PRINTABLE_RATIO = 0.95

SUPPORTED_DESCRIPTION = (
    "PDF, Word (.docx), PowerPoint (.pptx), Markdown, plain text (UTF-8), "
    "audio (mp3, wav, m4a, ogg, flac) and video (mp4, mov, webm, mkv)"
)


class FileKind(StrEnum):
    PDF = "pdf"
    DOCX = "docx"
    PPTX = "pptx"
    MARKDOWN = "markdown"
    TEXT = "text"
    AUDIO = "audio"
    VIDEO = "video"

    @property
    def is_media(self) -> bool:
        """Audio and video go to transcription (and to ``uploads/media``)."""
        return self in (FileKind.AUDIO, FileKind.VIDEO)


@dataclass(frozen=True, slots=True)
class SniffResult:
    kind: FileKind
    mime: str
    extension: str
    """Canonical extension for the stored file, without the dot (``"pdf"``, ``"m4a"``)."""


class UnsupportedFile(PermanentJobError):
    """The file's content is not a type we can process (the message is for the learner)."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message or f"This file type is not supported. You can upload {SUPPORTED_DESCRIPTION}."
        )


# --- public entry point -----------------------------------------------------------------


def sniff_file(path: Path, filename: str | None = None) -> SniffResult:
    """Return the kind of the file at ``path`` judged by its bytes.

    ``filename`` (the client's name) is only a hint to tell Markdown from plain text.
    Raises ``UnsupportedFile`` for empty files and anything not on the supported list.
    """
    size = path.stat().st_size
    if size == 0:
        raise UnsupportedFile("The file is empty.")
    with path.open("rb") as fh:
        head = fh.read(HEAD_BYTES)

    result = _sniff_binary(path, head, size)
    if result is not None:
        return result
    result = _sniff_text(head, complete=len(head) >= size, filename=filename)
    if result is not None:
        return result
    raise UnsupportedFile()


# --- binary formats ---------------------------------------------------------------------


def _sniff_binary(path: Path, head: bytes, size: int) -> SniffResult | None:
    # Readers tolerate junk before the header; we tolerate only a BOM or whitespace, so a
    # text note that merely mentions "%PDF-" stays text.
    if head[:1024].removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"%PDF-"):
        return SniffResult(FileKind.PDF, "application/pdf", "pdf")
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _sniff_zip(path, size)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        raise UnsupportedFile(
            "This looks like an older Office file (.doc or .ppt) or a password-protected "
            "Office file. Save it as .docx or .pptx without a password and upload it again."
        )
    if head.startswith(b"fLaC"):
        return SniffResult(FileKind.AUDIO, "audio/flac", "flac")
    if head.startswith(b"OggS"):
        return SniffResult(FileKind.AUDIO, "audio/ogg", "ogg")
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return SniffResult(FileKind.AUDIO, "audio/wav", "wav")
    if head.startswith(b"ID3"):
        return _sniff_id3(head)
    if _mpeg_audio_at(head, 0, size):
        return SniffResult(FileKind.AUDIO, "audio/mpeg", "mp3")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        # Matroska/WebM: the EBML header names the DocType near the start.
        if b"webm" in head[:64]:
            return SniffResult(FileKind.VIDEO, "video/webm", "webm")
        return SniffResult(FileKind.VIDEO, "video/x-matroska", "mkv")
    if head[4:8] == b"ftyp":
        return _sniff_iso_bmff(head)
    if _legacy_quicktime(head, size):
        return SniffResult(FileKind.VIDEO, "video/quicktime", "mov")
    return None


def _sniff_zip(path: Path, size: int) -> SniffResult:
    _check_zip_directory(path, size)
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnsupportedFile(
            "This file looks like a damaged Word or PowerPoint file (its archive cannot be "
            "read). Open it in Word or PowerPoint, save it again and re-upload."
        ) from exc
    if "[Content_Types].xml" in names:
        if "word/document.xml" in names:
            return SniffResult(
                FileKind.DOCX,
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "docx",
            )
        if "ppt/presentation.xml" in names:
            return SniffResult(
                FileKind.PPTX,
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                "pptx",
            )
    raise UnsupportedFile(
        "This is a zip archive, not a Word or PowerPoint file. Upload the documents inside "
        f"it one by one. Supported: {SUPPORTED_DESCRIPTION}."
    )


_EOCD = struct.Struct("<4s4H2LH")


def _check_zip_directory(path: Path, size: int) -> None:
    """Read the end-of-central-directory record ourselves before ``zipfile`` loads the
    whole member list into memory, and refuse absurd member counts (and ZIP64, which
    no normal Office document needs)."""
    tail_len = min(size, _EOCD.size + 0xFFFF)
    with path.open("rb") as fh:
        fh.seek(size - tail_len)
        tail = fh.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + _EOCD.size > len(tail):
        raise UnsupportedFile(
            "This file looks like a damaged Word or PowerPoint file (its archive is "
            "incomplete). Open it in Word or PowerPoint, save it again and re-upload."
        )
    _sig, _disk, _cd_disk, _n_disk, n_total, cd_size, _cd_off, _comment = _EOCD.unpack_from(
        tail, pos
    )
    if n_total == 0xFFFF or cd_size == 0xFFFFFFFF or n_total > MAX_ZIP_ENTRIES:
        raise UnsupportedFile(
            "This file is a suspicious archive (far more files inside than a normal "
            "document has), so it was not opened."
        )
    if cd_size > MAX_ZIP_DIRECTORY_BYTES:
        raise UnsupportedFile(
            "This file is a suspicious archive (its index is far larger than a normal "
            "document's), so it was not opened."
        )


def _sniff_id3(head: bytes) -> SniffResult:
    # ID3v2 tag: 10-byte header with a synchsafe size; FLAC files sometimes carry one.
    if len(head) >= 10:
        tag_size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        end = 10 + tag_size + (10 if head[5] & 0x10 else 0)
        if head[end : end + 4] == b"fLaC":
            return SniffResult(FileKind.AUDIO, "audio/flac", "flac")
    return SniffResult(FileKind.AUDIO, "audio/mpeg", "mp3")


# MPEG audio frame header tables (kbps; index 1..14), keyed by (version is MPEG-1, layer).
_BITRATES: dict[tuple[bool, int], tuple[int, ...]] = {
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame_length(header: bytes) -> int | None:
    """Length in bytes of the MPEG audio frame whose 4-byte header is given, or None
    when the bytes are not a valid (non-free-format) frame header."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version = (header[1] >> 3) & 0x3  # 0 = 2.5, 1 = reserved, 2 = 2, 3 = 1
    layer_bits = (header[1] >> 1) & 0x3  # 0 = reserved (ADTS AAC), 1 = III, 2 = II, 3 = I
    bitrate_index = header[2] >> 4
    rate_index = (header[2] >> 2) & 0x3
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    layer = 4 - layer_bits
    mpeg1 = version == 3
    bitrate = _BITRATES[(mpeg1, layer)][bitrate_index - 1] * 1000
    sample_rate = _SAMPLE_RATES[version][rate_index]
    padding = (header[2] >> 1) & 0x1
    if layer == 1:
        return (12 * bitrate // sample_rate + padding) * 4
    if layer == 3 and not mpeg1:
        return 72 * bitrate // sample_rate + padding
    return 144 * bitrate // sample_rate + padding


def _mpeg_audio_at(head: bytes, offset: int, size: int) -> bool:
    """A frame header at ``offset`` confirmed by a second one right after it (a lone
    0xFFEx pair is too likely by chance), unless the file ends within the first frame."""
    length = _mpeg_frame_length(head[offset : offset + 4])
    if length is None:
        return False
    following = offset + length
    if following + 4 > size:
        return True
    return _mpeg_frame_length(head[following : following + 4]) is not None


_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_QUICKTIME_BRANDS = {b"qt  "}
_VIDEO_BRANDS = {
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso8", b"iso9",
    b"mp41", b"mp42", b"avc1", b"avc3", b"hvc1", b"M4V ", b"M4VH", b"M4VP",
    b"dash", b"f4v ", b"mmp4", b"MSNV", b"3gp4", b"3gp5", b"3gp6", b"3g2a",
}  # fmt: skip


def _sniff_iso_bmff(head: bytes) -> SniffResult:
    box_size = int.from_bytes(head[0:4], "big")
    major = head[8:12]
    end = min(len(head), box_size) if box_size >= 16 else min(len(head), 64)
    compatible = [head[i : i + 4] for i in range(16, end - 3, 4)]

    def classify(brand: bytes) -> SniffResult | None:
        if brand in _AUDIO_BRANDS:
            return SniffResult(FileKind.AUDIO, "audio/mp4", "m4a")
        if brand in _QUICKTIME_BRANDS:
            return SniffResult(FileKind.VIDEO, "video/quicktime", "mov")
        if brand in _VIDEO_BRANDS:
            return SniffResult(FileKind.VIDEO, "video/mp4", "mp4")
        return None

    # The major brand decides; compatible brands are a fallback (HEIC/AVIF images list
    # only image brands and are refused).
    for brand in (major, *compatible):
        result = classify(brand)
        if result is not None:
            return result
    raise UnsupportedFile()


_LEGACY_QT_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}


def _legacy_quicktime(head: bytes, size: int) -> bool:
    """Old QuickTime files start straight with an atom, no ``ftyp``. The atom's size
    field must be plausible and binary, so text such as "I'm free" is not caught."""
    if len(head) < 8 or head[4:8] not in _LEGACY_QT_ATOMS:
        return False
    atom_size = int.from_bytes(head[0:4], "big")
    return 8 <= atom_size <= size and any(b < 0x09 for b in head[0:4])


# --- text -------------------------------------------------------------------------------

_MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+\S", re.MULTILINE)
_MD_SUFFIXES = (".md", ".markdown")


def _sniff_text(head: bytes, *, complete: bool, filename: str | None) -> SniffResult | None:
    if b"\x00" in head:
        return None
    body = head.removeprefix(codecs.BOM_UTF8)
    try:
        # Incremental decoding so a multi-byte character cut at the 64 KiB edge is fine.
        text = codecs.getincrementaldecoder("utf-8")().decode(body, final=complete)
    except UnicodeDecodeError:
        return None
    if not text.strip():
        raise UnsupportedFile("The file contains no text.")
    if not _mostly_printable(text):
        return None
    name = (filename or "").strip().lower()
    if name.endswith(_MD_SUFFIXES) or _MD_HEADING.search(text):
        return SniffResult(FileKind.MARKDOWN, "text/markdown", "md")
    return SniffResult(FileKind.TEXT, "text/plain", "txt")


def _mostly_printable(text: str) -> bool:
    bad = 0
    for ch in text:
        if ch in "\t\n\r\f\v":
            continue
        category = unicodedata.category(ch)
        # Control, surrogate, private-use and unassigned characters; format characters
        # (zero-width joiners, soft hyphens) are normal in real text.
        if category[0] == "C" and category != "Cf":
            bad += 1
    return bad <= len(text) * (1 - _MIN_PRINTABLE_RATIO)
