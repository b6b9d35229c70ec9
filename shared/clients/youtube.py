"""YouTube (and other yt-dlp sites) and direct media links, fetched behind the URL guard.

YouTube: captions first (manual, then automatic, see `captions.pick_caption_track`), so no
audio is downloaded when the video has them; otherwise the best audio track goes to
`dest_dir` under a generated name for transcription.

yt-dlp blocks, so it runs in a worker thread inside
`guarded_resolution(settings.fetch_allowlist)`: every name resolution in that thread (the
link, each redirect, every request yt-dlp makes, captions included) refuses private,
loopback, link-local and reserved addresses. Environment proxies are switched off, since a
proxy would resolve names where the guard cannot see them.

A direct media link is a plain httpx stream through the guard's `guarded_client` (every
redirect hop checked), with `max_fetch_bytes` enforced while streaming.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import yt_dlp  # type: ignore[import-untyped]
from yt_dlp.networking.exceptions import HTTPError as YtdlpHTTPError  # type: ignore[import-untyped]
from yt_dlp.networking.exceptions import network_exceptions

from shared.clients.captions import (
    CaptionTrack,
    parse_captions,
    parse_json3,
    parse_vtt,
    pick_caption_track,
)
from shared.clients.transcription import merge_timed
from shared.clients.urlguard import (
    HostNotFound,
    UrlRefused,
    check_url,
    guarded_client,
    guarded_resolution,
)
from shared.clients.youtube_urls import is_youtube_url, youtube_video_id
from shared.config import Settings
from shared.jobs.errors import JobError, PermanentJobError, TransientJobError
from shared.materials.chunking import Segment

__all__ = [
    "CaptionTrack",
    "MediaFetch",
    "fetch_media_url",
    "fetch_video",
    "fetch_youtube",
    "is_youtube_url",
    "map_ytdlp_error",
    "parse_json3",
    "parse_vtt",
    "pick_caption_track",
    "youtube_video_id",
]

log = logging.getLogger(__name__)

MAX_CAPTION_BYTES = 20 * 1024 * 1024
MEDIA_SUFFIXES = frozenset(
    {".mp3", ".wav", ".m4a", ".ogg", ".oga", ".opus", ".flac", ".aac", ".mp4", ".m4v",
     ".mov", ".webm", ".mkv"}
)  # fmt: skip
DOWNLOAD_BLOCK = 1024 * 1024
_NOT_FOUND_CODES = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)


@dataclass(frozen=True, slots=True)
class MediaFetch:
    title: str | None
    duration_s: float | None
    path_taken: Literal["captions", "audio"]
    segments: list[Segment] | None = None
    audio_path: Path | None = None
    caption_lang: str | None = None


# ---------------------------------------------------------------- the guard


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (yt-dlp keeps causes in its own attributes)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        exc_info = getattr(current, "exc_info", None)
        wrapped = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None
        for nxt in (
            current.__cause__,
            current.__context__,
            getattr(current, "cause", None),
            wrapped,
        ):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def _host_not_found(exc: BaseException) -> bool:
    return any(
        isinstance(link, socket.gaierror) and link.errno in _NOT_FOUND_CODES for link in _chain(exc)
    )


# ---------------------------------------------------------------- yt-dlp errors

_PERMANENT_PATTERNS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("private video", "video is private"), "This video is private."),
    (
        ("confirm your age", "age-restricted", "age restricted", "inappropriate for some users"),
        "This video is age-restricted, so it cannot be fetched. Upload the file instead.",
    ),
    (
        ("members-only", "members only", "join this channel"),
        "This video is for channel members only.",
    ),
    (("copyright",), "This video was removed for copyright reasons."),
    (
        ("in your country", "geo restrict", "geo-restrict"),
        "This video is not available in our region.",
    ),
    (
        ("premieres in", "live event will begin", "is_upcoming", "not started yet"),
        "This video has not been published yet.",
    ),
    (
        ("has been removed", "been terminated", "video unavailable", "video is unavailable",
         "no longer available", "does not exist", "not available"),
        "This video is unavailable: it may have been removed or made private.",
    ),
    (("unsupported url",), "This link is not a video we can fetch."),
    (
        ("requested format is not available", "no video formats found"),
        "This video has no audio we can download.",
    ),
)  # fmt: skip
_TRANSIENT_PATTERNS = (
    "http error 429",
    "too many requests",
    "not a bot",
    "timed out",
    "timeout",
    "temporary failure",
    "connection reset",
    "connection refused",
    "connection aborted",
    "network is unreachable",
    "remote end closed",
    "incomplete read",
)


def map_ytdlp_error(exc: BaseException) -> JobError:
    """A yt-dlp failure as a job error: retry network trouble, fail what cannot change."""
    if isinstance(exc, JobError):
        return exc
    for link in _chain(exc):
        if isinstance(link, UrlRefused | HostNotFound):
            return PermanentJobError(str(link))
    message = " ".join(str(exc).split())
    lowered = message.lower()
    for link in _chain(exc):
        if isinstance(link, YtdlpHTTPError) and (link.status == 429 or link.status >= 500):
            return TransientJobError(f"The video site is busy (HTTP {link.status}); will retry.")
    for needles, text in _PERMANENT_PATTERNS:
        if any(needle in lowered for needle in needles):
            return PermanentJobError(text)
    if re.search(r"http error 5\d\d", lowered) or any(p in lowered for p in _TRANSIENT_PATTERNS):
        return TransientJobError("The video site could not be reached; will retry.")
    if _host_not_found(exc):
        return PermanentJobError("The video site could not be found. Check the link.")
    if any(isinstance(link, network_exceptions) for link in _chain(exc)):
        return TransientJobError("The video site could not be reached; will retry.")
    detail = re.sub(r"^(ERROR:\s*)?(\[[^\]]+\]\s*)?([\w-]+:\s*)?", "", message)[:240]
    return PermanentJobError(f"The video could not be fetched: {detail}")


# ---------------------------------------------------------------- yt-dlp


class _YtdlpLogger:
    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def info(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def warning(self, msg: str) -> None:
        log.info("yt-dlp: %s", msg)

    def error(self, msg: str) -> None:
        log.info("yt-dlp: %s", msg)


def ytdlp_options(settings: Settings, outtmpl: str, extractors: Sequence[str]) -> dict[str, Any]:
    return {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "no_color": True,
        "logger": _YtdlpLogger(),
        "allowed_extractors": list(extractors),
        "noplaylist": True,
        "format": "bestaudio/best",
        "outtmpl": {"default": outtmpl},
        "overwrites": True,
        "socket_timeout": settings.fetch_timeout_seconds,
        "max_filesize": settings.max_fetch_bytes,
        "retries": 2,
        "fragment_retries": 2,
        "extractor_retries": 1,
        "cachedir": False,
        "proxy": "",  # never an environment proxy: it would resolve names past the guard
    }


def _resolve(ydl: Any, url: str) -> dict[str, Any]:
    info: dict[str, Any] = ydl.extract_info(url, download=False, process=False)
    for _ in range(3):
        if info.get("_type") not in ("url", "url_transparent"):
            break
        info = ydl.extract_info(
            info["url"], download=False, process=False, ie_key=info.get("ie_key")
        )
    if info.get("_type") in ("playlist", "multi_video"):
        raise PermanentJobError("Playlists are not supported: send a link to one video.")
    if info.get("is_live") or info.get("live_status") in ("is_live", "is_upcoming"):
        raise PermanentJobError("Live streams cannot be processed; try again once it has ended.")
    return info


def _read_captions(ydl: Any, track: CaptionTrack) -> list[Segment] | None:
    """The track's timed text; None when it cannot be had (fall back to the audio)."""
    try:
        with contextlib.closing(ydl.urlopen(track.url)) as response:
            body: bytes = response.read(MAX_CAPTION_BYTES + 1)
    except YtdlpHTTPError as exc:
        if exc.status == 429 or exc.status >= 500:
            raise
        log.info("caption track %s answered %s; using the audio", track.lang, exc.status)
        return None
    if len(body) > MAX_CAPTION_BYTES:
        return None
    try:
        return merge_timed(parse_captions(body, track.ext)) or None
    except ValueError:
        log.info("caption track %s (%s) did not parse; using the audio", track.lang, track.ext)
        return None


def _download_audio(ydl: Any, info: dict[str, Any], stem: Path, limit: int) -> Path:
    done = ydl.process_ie_result(info, download=True)
    paths = [d.get("filepath") for d in done.get("requested_downloads") or []]
    found = next((Path(p) for p in paths if p and Path(p).is_file()), None)
    if found is None:
        found = next((p for p in stem.parent.glob(f"{stem.name}.*") if p.suffix != ".part"), None)
    if found is None:
        raise PermanentJobError(f"The audio is larger than the {limit // 2**20} MB limit.")
    if found.stat().st_size > limit:
        found.unlink(missing_ok=True)
        raise PermanentJobError(f"The audio is larger than the {limit // 2**20} MB limit.")
    return found


def _fetch_sync(
    url: str, dest_dir: Path, settings: Settings, extractors: Sequence[str]
) -> MediaFetch:
    dest_dir.mkdir(parents=True, exist_ok=True)
    stem = dest_dir / uuid.uuid4().hex
    options = ytdlp_options(settings, f"{stem}.%(ext)s", tuple(extractors))
    try:
        with guarded_resolution(settings.fetch_allowlist), yt_dlp.YoutubeDL(options) as ydl:
            info = _resolve(ydl, url)
            title, duration = info.get("title"), info.get("duration")
            duration_s = float(duration) if isinstance(duration, int | float) else None
            track = pick_caption_track(info)
            segments = _read_captions(ydl, track) if track is not None else None
            if segments and track is not None:
                return MediaFetch(title, duration_s, "captions", segments, None, track.lang)
            audio = _download_audio(ydl, info, stem, settings.max_fetch_bytes)
            return MediaFetch(title, duration_s, "audio", None, audio)
    except BaseException as exc:
        for leftover in dest_dir.glob(f"{stem.name}.*"):
            leftover.unlink(missing_ok=True)
        if isinstance(exc, Exception):
            raise map_ytdlp_error(exc) from exc
        raise


async def fetch_video(
    url: str, dest_dir: Path, settings: Settings, *, extractors: Sequence[str] = ("youtube",)
) -> MediaFetch:
    """Captions or audio of one video through yt-dlp, restricted to `extractors`."""
    return await asyncio.to_thread(_fetch_sync, url, dest_dir, settings, tuple(extractors))


async def fetch_youtube(url: str, dest_dir: Path, settings: Settings) -> MediaFetch:
    """A YouTube video's captions when it has them (no download), else its audio file."""
    video_id = youtube_video_id(url)
    if video_id is None:
        raise PermanentJobError("This is not a link to a YouTube video.")
    canonical = f"https://www.youtube.com/watch?v={video_id}"
    return await fetch_video(canonical, dest_dir, settings, extractors=("youtube",))


# ---------------------------------------------------------------- direct media links


def _suffix(url: httpx.URL, content_type: str) -> str:
    suffix = Path(url.path).suffix.lower()
    if suffix in MEDIA_SUFFIXES:
        return suffix
    subtype = content_type.split(";")[0].strip().lower().partition("/")[2]
    guess = {"mpeg": ".mp3", "mp4": ".mp4", "x-m4a": ".m4a", "ogg": ".ogg", "wav": ".wav",
             "x-wav": ".wav", "flac": ".flac", "webm": ".webm", "quicktime": ".mov",
             "x-matroska": ".mkv", "aac": ".aac"}.get(subtype)  # fmt: skip
    return guess or ".bin"


def _check_status(response: httpx.Response) -> None:
    status = response.status_code
    if status == 429 or status >= 500:
        raise TransientJobError(f"The link's server is busy (HTTP {status}); will retry.")
    if status >= 400:
        raise PermanentJobError(f"The link could not be downloaded (HTTP {status}).")


async def _stream_to_file(response: httpx.Response, dest_dir: Path, limit: int) -> Path:
    too_big = PermanentJobError(f"The file is larger than the {limit // 2**20} MB limit.")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    suffix = _suffix(response.url, response.headers.get("content-type", ""))
    target = dest_dir / f"{uuid.uuid4().hex}{suffix}"
    partial = target.with_name(target.name + ".part")
    size = 0
    handle = await asyncio.to_thread(partial.open, "wb")
    try:
        async for block in response.aiter_bytes(DOWNLOAD_BLOCK):
            size += len(block)
            if size > limit:
                raise too_big
            await asyncio.to_thread(handle.write, block)
        await asyncio.to_thread(handle.close)
        if size == 0:
            raise PermanentJobError("The link returned an empty file.")
        await asyncio.to_thread(partial.replace, target)
    finally:
        handle.close()
        partial.unlink(missing_ok=True)
    return target


def _map_http_error(exc: Exception) -> JobError:
    if isinstance(exc, UrlRefused | HostNotFound):
        return PermanentJobError(str(exc))
    if isinstance(exc, httpx.TooManyRedirects):
        return PermanentJobError("The link redirects too many times.")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return PermanentJobError("The link (or one of its redirects) is not an http(s) address.")
    if isinstance(exc, httpx.TimeoutException | httpx.TransportError):
        return TransientJobError("The link's server could not be reached; will retry.")
    return PermanentJobError(f"The link could not be downloaded: {str(exc)[:200]}")


async def fetch_media_url(url: str, dest_dir: Path, settings: Settings) -> Path:
    """Download a direct audio/video link into `dest_dir` under a generated name.

    Plain httpx streaming through the URL guard's client (every redirect hop checked,
    connections only to checked addresses), with `max_fetch_bytes` enforced while
    streaming. The caller decides from the bytes whether it really is media.
    """
    try:
        check_url(url, settings.fetch_allowlist)
        await asyncio.to_thread(dest_dir.mkdir, parents=True, exist_ok=True)
        async with guarded_client(settings) as client, client.stream("GET", url) as response:
            _check_status(response)
            return await _stream_to_file(response, dest_dir, settings.max_fetch_bytes)
    except JobError:
        raise
    except Exception as exc:
        raise _map_http_error(exc) from exc
