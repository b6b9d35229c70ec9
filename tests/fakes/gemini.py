"""A local server speaking the Gemini API's REST shape, for the real `google-genai` SDK.

Endpoints (under any API version: google-genai 3.x sends `v1`, older ones `v1beta`):
`POST /{version}/models/{model}:streamGenerateContent?alt=sse` — server-sent events, one
`data: {GenerateContentResponse}` per chunk of `script`, separated by CRLF CRLF as Google
does, `usageMetadata` on every chunk and `finishReason: STOP` on the last;
`POST …:generateContent` — the whole text at once; `POST …:batchEmbedContents` —
`{"embeddings": [{"values": [...]}]}`, `outputDimensionality` long (3072 when not asked),
deterministic per text.

Like the real service it reads the key from `x-goog-api-key` and answers a wrong one with
400 INVALID_ARGUMENT / API_KEY_INVALID, and an unknown model with 404 NOT_FOUND.

Knobs: `fail(status, times=1)` answers the next `times` requests with that status and a
Google error body; `slow(seconds)` delays the next responses before their headers;
`stall(seconds)` sends the first stream chunk, then waits; `malformed()` sends a stream
chunk that is not JSON; `chunk_delay` spaces the chunks; `replies` queues whole
answers for the next generateContent calls; `requests` records every call as
(path, JSON body).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes import ThreadedServer

DEFAULT_SCRIPT = [
    "Photosynthesis turns light ",
    "into chemical energy ",
    "stored in sugar [1]. ",
    "Chlorophyll absorbs ",
    "red and blue light [2].",
]
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def google_error(status: int, message: str, details: list[Any] | None = None) -> JSONResponse:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, status)


def fake_vector(text: str, dimension: int) -> list[float]:
    rng = random.Random(zlib.crc32(text.encode()))
    return [rng.uniform(-1, 1) for _ in range(dimension)]


@dataclass
class FakeGemini:
    api_key: str = "test-gemini-key"
    models: tuple[str, ...] = (
        "gemini-test",
        "gemini-embedding-test",
        "gemini-embedding-001",
        "gemini-embedding-2-test",
    )
    script: list[str] = field(default_factory=lambda: list(DEFAULT_SCRIPT))
    prompt_tokens: int = 42
    chunk_delay: float = 0.0
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    chunks_sent: int = 0
    replies: list[str] = field(default_factory=list)  # next generateContent texts, in order

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[int] = []
        self._slow = 0.0
        self._stall = 0.0
        self._malformed = False
        self.app = Starlette(
            routes=[Route("/{version}/models/{target}", self._dispatch, methods=["POST"])]
        )
        self.server = ThreadedServer(self.app)

    # ------------------------------------------------------------ control

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def text(self) -> str:
        return "".join(self.script)

    def fail(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    def slow(self, seconds: float) -> None:
        self._slow = seconds

    def stall(self, seconds: float) -> None:
        self._stall = seconds

    def malformed(self) -> None:
        self._malformed = True

    def stack_settings(self) -> dict[str, str]:
        """`make_stack` settings for a system whose LLM is this fake, reset to its defaults
        (embeddings stay offline)."""
        self.reset()
        return {
            "llm_provider": "gemini",
            "embedding_provider": "offline",
            "gemini_api_key": self.api_key,
            "gemini_base_url": self.base_url,
            "gemini_model": "gemini-test",
        }

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()
            self.requests.clear()
            self.replies.clear()
        self._slow = self._stall = 0.0
        self._malformed = False
        self.script = list(DEFAULT_SCRIPT)
        self.chunk_delay = 0.0
        self.chunks_sent = 0

    def __enter__(self) -> FakeGemini:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    # ------------------------------------------------------------ plumbing

    async def _gate(self, request: Request, model: str) -> Response | None:
        with self._lock:
            status = self._failures.pop(0) if self._failures else None
        if self._slow:
            await asyncio.sleep(self._slow)
        if status is not None:
            return google_error(status, f"Fake failure {status}.")
        if request.headers.get("x-goog-api-key") != self.api_key:
            return google_error(
                400,
                "API key not valid. Please pass a valid API key.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                    }
                ],
            )
        if model not in self.models:
            return google_error(
                404,
                f"models/{model} is not found for API version v1beta, or is not supported "
                "for generateContent. Call ListModels to see the list of available models.",
            )
        return None

    def _chunk(self, text: str, *, last: bool, output_tokens: int) -> dict[str, Any]:
        candidate: dict[str, Any] = {
            "content": {"parts": [{"text": text}], "role": "model"},
            "index": 0,
        }
        if last:
            candidate["finishReason"] = "STOP"
        return {
            "candidates": [candidate],
            "usageMetadata": {
                "promptTokenCount": self.prompt_tokens,
                "candidatesTokenCount": output_tokens,
                "totalTokenCount": self.prompt_tokens + output_tokens,
            },
            "modelVersion": self.models[0],
            "responseId": "fake-response",
        }

    async def _events(self) -> AsyncIterator[bytes]:
        if self._malformed:
            yield b"data: {this is not json\r\n\r\n"
            return
        for i, text in enumerate(self.script):
            so_far = len("".join(self.script[: i + 1]).split())
            chunk = self._chunk(text, last=i == len(self.script) - 1, output_tokens=so_far)
            yield b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n"
            self.chunks_sent += 1
            if i == 0 and self._stall:
                await asyncio.sleep(self._stall)
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)

    # ------------------------------------------------------------ endpoints

    async def _dispatch(self, request: Request) -> Response:
        model, _, method = request.path_params["target"].partition(":")
        body = await request.json()
        with self._lock:
            self.requests.append((request.url.path, body))
        if (failed := await self._gate(request, model)) is not None:
            return failed
        if method == "streamGenerateContent":
            if request.query_params.get("alt") != "sse":
                return google_error(400, "This fake only streams with alt=sse.")
            return StreamingResponse(self._events(), media_type="text/event-stream")
        if method == "generateContent":
            with self._lock:
                text = self.replies.pop(0) if self.replies else self.text
            return JSONResponse(self._chunk(text, last=True, output_tokens=len(text.split())))
        if method == "batchEmbedContents":
            return self._embed(body)
        return google_error(404, f"Method {method} not found.")

    def _embed(self, body: dict[str, Any]) -> Response:
        if self._malformed:
            return JSONResponse({"embeddings": "not a list"})
        embeddings = []
        for item in body.get("requests", []):
            text = " ".join(p.get("text", "") for p in item["content"]["parts"])
            dimension = int(item.get("outputDimensionality") or 3072)
            embeddings.append({"values": fake_vector(text, dimension)})
        return JSONResponse({"embeddings": embeddings})
