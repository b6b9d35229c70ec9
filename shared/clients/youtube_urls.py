"""YouTube video links recognised without yt-dlp, so the API can tell a video link from a
web page without loading yt-dlp (~30 MB of RSS) into a process that never downloads."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

_VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_YOUTUBE_HOSTS = frozenset({"youtube.com", "www.youtube.com", "m.youtube.com"})
_PATH_ID_PREFIXES = ("/shorts/", "/embed/", "/live/")


def youtube_video_id(url: str) -> str | None:
    """The 11-character video id of a YouTube video link, or None for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if parts.scheme.lower() not in ("http", "https") or port not in (None, 80, 443):
        return None
    candidate: str | None = None
    if host == "youtu.be":
        candidate = parts.path.lstrip("/").split("/")[0]
    elif host in _YOUTUBE_HOSTS:
        if parts.path.rstrip("/") == "/watch":
            candidate = (parse_qs(parts.query).get("v") or [""])[0]
        else:
            for prefix in _PATH_ID_PREFIXES:
                if parts.path.startswith(prefix):
                    candidate = parts.path.removeprefix(prefix).split("/")[0]
    return candidate if candidate and _VIDEO_ID.match(candidate) else None


def is_youtube_url(url: str) -> bool:
    """A YouTube video link: watch?v=, youtu.be/, /shorts/, /embed/, /live/ (www. or m.)."""
    return youtube_video_id(url) is not None
