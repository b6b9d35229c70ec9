"""A local server speaking AssemblyAI's REST shape, for the real `assemblyai` SDK.

Endpoints: `POST /v2/upload` → `{"upload_url"}`; `POST /v2/transcript` → `{id, status:
"queued"}`; `GET /v2/transcript/{id}` → `processing` on the first polls, then `completed`
(text, words with start/end in ms, `audio_duration`, `language_code`; `utterances` when
`speaker_labels` was asked for) or `error` when the uploaded bytes are not audio (checked
by magic bytes, like the real service's transcoder); `GET /v2/transcript/{id}/sentences`.

Knobs: `fail(times, path_prefix=..., status=...)` answers the next `times` matching
requests with that status (500 by default) and then recovers; `uploads` records every
accepted upload, so a test can prove the cache kept a file from being sent twice.
"""

from __future__ import annotations

import math
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes import ThreadedServer

DEFAULT_SCRIPT = (
    "Welcome to the lecture on plants. Today we study photosynthesis. "
    "Leaves turn light, water and carbon dioxide into sugar and oxygen. "
    "Chlorophyll absorbs red and blue light."
)
AUDIO_MAGIC = (b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"RIFF", b"OggS", b"fLaC",
               b"\x1a\x45\xdf\xa3")  # fmt: skip
BAD_AUDIO_ERROR = (
    "Transcoding failed. File does not appear to contain audio. File type is text/plain."
)


def looks_like_audio(data: bytes) -> bool:
    return data.startswith(AUDIO_MAGIC) or data[4:8] == b"ftyp"


@dataclass
class _Job:
    id: str
    audio_url: str
    data: bytes
    request: dict[str, Any]
    polls: int = 0


@dataclass
class _Failure:
    remaining: int
    path_prefix: str
    status: int


@dataclass
class FakeAssemblyAI:
    api_key: str = "test-assemblyai-key"
    script: str = DEFAULT_SCRIPT
    polls_until_done: int = 2
    word_ms: int = 320
    language_code: str = "en"
    uploads: list[bytes] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, bytes] = {}
        self._jobs: dict[str, _Job] = {}
        self._failures: list[_Failure] = []
        self.app = Starlette(
            routes=[
                Route("/v2/upload", self._upload, methods=["POST"]),
                Route("/v2/transcript", self._create, methods=["POST"]),
                Route("/v2/transcript/{tid}", self._get, methods=["GET"]),
                Route("/v2/transcript/{tid}/sentences", self._sentences, methods=["GET"]),
            ]
        )
        self.server = ThreadedServer(self.app)

    # ------------------------------------------------------------ control

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def fail(self, times: int, *, path_prefix: str = "/v2/", status: int = 500) -> None:
        """Answer the next `times` requests under `path_prefix` with `status`, then recover."""
        with self._lock:
            self._failures.append(_Failure(times, path_prefix, status))

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.startswith(prefix))

    def __enter__(self) -> FakeAssemblyAI:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    # ------------------------------------------------------------ plumbing

    def _gate(self, request: Request) -> JSONResponse | None:
        path = request.url.path
        with self._lock:
            self.requests.append((request.method, path))
            for failure in self._failures:
                if failure.remaining > 0 and path.startswith(failure.path_prefix):
                    failure.remaining -= 1
                    return JSONResponse({"error": "Internal server error"}, failure.status)
        if request.headers.get("authorization") != self.api_key:
            return JSONResponse({"error": "Authentication error, API token missing/invalid"}, 401)
        return None

    def _words(self) -> list[dict[str, Any]]:
        return [
            {
                "text": word,
                "start": i * self.word_ms,
                "end": i * self.word_ms + self.word_ms - 40,
                "confidence": 0.97,
                "speaker": "A",
            }
            for i, word in enumerate(self.script.split())
        ]

    def _sentence_list(self) -> list[dict[str, Any]]:
        sentences: list[dict[str, Any]] = []
        current: list[dict[str, Any]] = []
        for word in self._words():
            current.append(word)
            if word["text"].endswith((".", "!", "?")):
                sentences.append(_group(current))
                current = []
        if current:
            sentences.append(_group(current))
        return sentences

    def _body(self, job: _Job, status: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": job.id,
            "status": status,
            "audio_url": job.audio_url,
            "speech_models": job.request.get("speech_models"),
            "language_detection": job.request.get("language_detection"),
        }
        if status == "error":
            body["error"] = BAD_AUDIO_ERROR
        if status == "completed":
            words = self._words()
            body |= {
                "text": " ".join(w["text"] for w in words),
                "words": words,
                "confidence": 0.95,
                "audio_duration": math.ceil(len(words) * self.word_ms / 1000),
                "language_code": self.language_code,
                "speech_model_used": "universal-3-pro",
            }
            if job.request.get("speaker_labels"):
                body["utterances"] = [_group(words) | {"speaker": "A"}]
        return body

    # ------------------------------------------------------------ endpoints

    async def _upload(self, request: Request) -> JSONResponse:
        if (failed := self._gate(request)) is not None:
            return failed
        data = await request.body()
        file_id = uuid.uuid4().hex
        with self._lock:
            self._files[file_id] = data
            self.uploads.append(data)
        return JSONResponse({"upload_url": f"{self.base_url}/files/{file_id}"})

    async def _create(self, request: Request) -> JSONResponse:
        if (failed := self._gate(request)) is not None:
            return failed
        payload = await request.json()
        audio_url = str(payload.get("audio_url", ""))
        data = self._files.get(audio_url.rsplit("/", 1)[-1])
        if data is None:
            return JSONResponse({"error": f"Download error, unable to download {audio_url}"}, 400)
        job = _Job(uuid.uuid4().hex, audio_url, data, payload)
        with self._lock:
            self._jobs[job.id] = job
        return JSONResponse(self._body(job, "queued"))

    async def _get(self, request: Request) -> JSONResponse:
        if (failed := self._gate(request)) is not None:
            return failed
        job = self._jobs.get(request.path_params["tid"])
        if job is None:
            return JSONResponse({"error": "Transcript lookup error, transcript id not found"}, 404)
        with self._lock:
            job.polls += 1
        return JSONResponse(self._body(job, self._status(job)))

    async def _sentences(self, request: Request) -> JSONResponse:
        if (failed := self._gate(request)) is not None:
            return failed
        job = self._jobs.get(request.path_params["tid"])
        if job is None:
            return JSONResponse({"error": "Transcript lookup error, transcript id not found"}, 404)
        if self._status(job) != "completed":
            return JSONResponse({"error": "Transcript is not completed"}, 400)
        return JSONResponse(
            {
                "id": job.id,
                "sentences": self._sentence_list(),
                "confidence": 0.95,
                "audio_duration": math.ceil(len(self._words()) * self.word_ms / 1000),
            }
        )

    def _status(self, job: _Job) -> str:
        if job.polls < self.polls_until_done:
            return "processing"
        return "completed" if looks_like_audio(job.data) else "error"


def _group(words: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "text": " ".join(w["text"] for w in words),
        "start": words[0]["start"],
        "end": words[-1]["end"],
        "confidence": 0.96,
        "words": words,
    }
