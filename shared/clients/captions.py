"""Caption tracks from yt-dlp info dicts, and the WebVTT / json3 formats, as timed segments.

Pure functions: no network, no yt-dlp import, so they are tested on hand-made structures.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

from shared.materials.chunking import Segment

CaptionKind = Literal["manual", "automatic"]
CAPTION_FORMATS = ("json3", "vtt")  # in order of preference; both parsed below
SKIPPED_SUBTITLE_KEYS = frozenset({"live_chat", "rechat", "danmaku"})

_TIMESTAMP = r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})"
_CUE_TIMING = re.compile(rf"^\s*{_TIMESTAMP}\s+-->\s+{_TIMESTAMP}")
_TAG = re.compile(r"<[^>]*>")


class CaptionTrack(NamedTuple):
    lang: str
    ext: str
    url: str
    kind: CaptionKind


def _base_lang(code: str) -> str:
    return re.split(r"[-_]", code, maxsplit=1)[0].lower()


def _english_first(codes: Iterable[str]) -> list[str]:
    codes = list(codes)
    exact = [c for c in codes if c.lower() == "en"]
    variants = sorted(c for c in codes if _base_lang(c) == "en" and c.lower() != "en")
    return exact + variants


def _format_of(entries: Any) -> tuple[str, str] | None:
    """The best (ext, url) we can parse among one language's caption formats."""
    if not isinstance(entries, list):
        return None
    by_ext: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or not entry.get("url"):
            continue
        url = str(entry["url"])
        # Unprocessed info dicts (extract_info(process=False)) may lack "ext".
        ext = entry.get("ext") or PurePosixPath(urlsplit(url).path).suffix.lstrip(".")
        if ext:
            by_ext.setdefault(str(ext).lower(), url)
    for ext in CAPTION_FORMATS:
        if ext in by_ext:
            return ext, by_ext[ext]
    return None


def _first_usable(
    tracks: Mapping[str, Any], order: Iterable[str], kind: CaptionKind
) -> CaptionTrack | None:
    seen: set[str] = set()
    for lang in order:
        if lang in seen or lang not in tracks:
            continue
        seen.add(lang)
        found = _format_of(tracks[lang])
        if found is not None:
            return CaptionTrack(lang, found[0], found[1], kind)
    return None


def _original_languages(info: Mapping[str, Any], automatic: Mapping[str, Any]) -> list[str]:
    originals = [key.removesuffix("-orig") for key in automatic if key.endswith("-orig")]
    language = info.get("language")
    if isinstance(language, str) and language:
        originals.append(language)
    return originals


def pick_caption_track(info: Mapping[str, Any]) -> CaptionTrack | None:
    """The caption track to read instead of transcribing, or None when there is none.

    Manual subtitles win over automatic captions: English first (`en`, then `en-*`), then
    the video's own language, then any language. Among automatic captions, the original
    speech-recognition track comes first (YouTube marks it `<lang>-orig`; yt-dlp also sets
    `language`), then English, then the only track if there is just one; machine
    translations into other languages are never picked. Formats: json3, else WebVTT.
    """
    manual = {
        k: v for k, v in (info.get("subtitles") or {}).items() if k not in SKIPPED_SUBTITLE_KEYS
    }
    originals = _original_languages(info, {})
    order = [*_english_first(manual), *originals, *manual]
    track = _first_usable(manual, order, "manual")
    if track is not None:
        return track
    automatic = dict(info.get("automatic_captions") or {})
    originals = _original_languages(info, automatic)
    order = [f"{lang}-orig" for lang in originals] + originals + ["en-orig", "en"]
    if len(automatic) == 1:
        order += list(automatic)
    return _first_usable(automatic, order, "automatic")


def _seconds(groups: tuple[str | None, ...]) -> float:
    hours, minutes, seconds, fraction = groups
    return (
        int(hours or 0) * 3600
        + int(minutes or 0) * 60
        + int(seconds or 0)
        + int((fraction or "0").ljust(3, "0")) / 1000
    )


def _clean_line(line: str) -> str:
    return " ".join(html.unescape(_TAG.sub("", line)).split())


def parse_vtt(text: str) -> list[Segment]:
    """WebVTT cues as timed segments, with YouTube's rolling auto-caption repeats removed.

    Automatic captions repeat the previous cue's line above each new line (and add 10 ms
    cues that only repeat); a line already shown in the previous cue is dropped.
    """
    segments: list[Segment] = []
    previous: set[str] = set()
    text = text.replace("\ufeff", "").replace("\r\n", "\n").replace("\r", "\n")
    # Cues end at an empty line; YouTube puts lines of one space inside cues.
    for block in re.split(r"\n{2,}", text):
        lines = block.strip("\n").split("\n")
        timing_at = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing_at is None:
            continue
        match = _CUE_TIMING.match(lines[timing_at])
        if match is None:
            continue
        start, end = _seconds(match.groups()[:4]), _seconds(match.groups()[4:])
        cue_lines = [c for c in (_clean_line(line) for line in lines[timing_at + 1 :]) if c]
        fresh = [line for line in cue_lines if line not in previous]
        previous = set(cue_lines)
        if fresh:
            segments.append(Segment(" ".join(fresh), start_s=start, end_s=end))
    return segments


def parse_json3(data: Mapping[str, Any] | str | bytes) -> list[Segment]:
    """YouTube's json3 caption format (`events` with `tStartMs`, `dDurationMs`, `segs`)."""
    if isinstance(data, str | bytes):
        data = json.loads(data)
    if not isinstance(data, Mapping):
        raise ValueError("json3 captions must be a JSON object")
    segments: list[Segment] = []
    for event in data.get("events") or []:
        if not isinstance(event, Mapping) or not event.get("segs"):
            continue
        text = " ".join(
            "".join(str(seg.get("utf8", "")) for seg in event["segs"] if isinstance(seg, Mapping))
            .replace("\n", " ")
            .split()
        )
        if not text:
            continue
        start_ms = float(event.get("tStartMs") or 0)
        duration_ms = float(event.get("dDurationMs") or 0)
        segments.append(
            Segment(text, start_s=start_ms / 1000, end_s=(start_ms + duration_ms) / 1000)
        )
    return segments


def parse_captions(body: bytes, ext: str) -> list[Segment]:
    """Parse a downloaded caption file of a format named in CAPTION_FORMATS."""
    text = body.decode("utf-8", errors="replace")
    if ext == "json3":
        return parse_json3(text)
    if ext == "vtt":
        return parse_vtt(text)
    raise ValueError(f"unsupported caption format {ext!r}")
