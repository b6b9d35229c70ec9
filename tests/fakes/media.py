"""Real media files made with ffmpeg, and a local HTTP server that serves them.

`make_media(dir)` writes a 3-second mono sine tone (`tone.mp3`), a 3-second video with
sound (`lecture.mp4`), a WebVTT caption file (`lecture.vtt`) and an HTML page with a
`<video>` element that carries the captions as a `<track>` (`lecture.html`), the shape
yt-dlp's generic extractor turns into an info dict with `subtitles`.

`MediaServer(dir)` serves that directory under `/media/`, plus `/redirect?to=<url>` (a
302 to anywhere, for guard tests) and `/status/{code}`. It records every request path.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.fakes import ThreadedServer

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"

CAPTIONS_VTT = """WEBVTT
Kind: captions
Language: en

00:00:00.000 --> 00:00:01.500
Photosynthesis turns light into sugar.

00:00:01.500 --> 00:00:03.000
Chlorophyll absorbs red &amp; blue light.
"""

LECTURE_HTML = """<!DOCTYPE html>
<html><head><title>Plant lecture</title></head>
<body>
<h1>Plant lecture</h1>
<video controls width="320">
  <source src="lecture.mp4" type="video/mp4">
  <track kind="captions" src="lecture.vtt" srclang="en" label="English">
</video>
</body></html>
"""


@dataclass(frozen=True)
class MediaFiles:
    root: Path
    mp3: Path
    mp4: Path
    vtt: Path
    html: Path


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        timeout=120,
    )


def make_media(root: Path) -> MediaFiles:
    root.mkdir(parents=True, exist_ok=True)
    mp3, mp4 = root / "tone.mp3", root / "lecture.mp4"
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=3", "-ac", "1", str(mp3))
    _ffmpeg(
        "-f", "lavfi", "-i", "testsrc=duration=3:size=160x120:rate=10",
        "-f", "lavfi", "-i", "sine=frequency=330:duration=3",
        "-c:v", "mpeg4", "-c:a", "aac", "-shortest", "-movflags", "+faststart", str(mp4),
    )  # fmt: skip
    vtt, html = root / "lecture.vtt", root / "lecture.html"
    vtt.write_text(CAPTIONS_VTT, encoding="utf-8")
    html.write_text(LECTURE_HTML, encoding="utf-8")
    return MediaFiles(root, mp3, mp4, vtt, html)


class _Recorder:
    def __init__(self, app: ASGIApp, paths: list[str], lock: threading.Lock) -> None:
        self.app, self.paths, self.lock = app, paths, lock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            with self.lock:
                self.paths.append(scope["path"])
        await self.app(scope, receive, send)


async def _redirect(request: Request) -> Response:
    return RedirectResponse(request.query_params.get("to", "/"), status_code=302)


async def _status(request: Request) -> Response:
    code = int(request.path_params["code"])
    return PlainTextResponse(f"status {code}", status_code=code)


@dataclass
class MediaServer:
    root: Path
    paths: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        app = Starlette(
            routes=[
                Route("/redirect", _redirect),
                Route("/status/{code:int}", _status),
                Mount("/media", StaticFiles(directory=self.root)),
            ]
        )
        self.server = ThreadedServer(_Recorder(app, self.paths, self._lock))

    @property
    def host_port(self) -> str:
        return self.server.host_port

    def url(self, name: str) -> str:
        return f"{self.server.base_url}/media/{name}"

    def hits(self, name: str) -> int:
        with self._lock:
            return sum(1 for p in self.paths if p == f"/media/{name}")

    def __enter__(self) -> MediaServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
