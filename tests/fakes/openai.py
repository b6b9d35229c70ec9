"""A local server speaking the OpenAI REST shape (as OpenAI, Ollama, vLLM, LM Studio do).

`POST /v1/chat/completions` — with `stream: true`, server-sent events: a role chunk,
one `chat.completion.chunk` per piece of `script` in `choices[0].delta.content`, a
`finish_reason: "stop"` chunk, then, when `stream_options.include_usage` was asked and
`supports_usage` is on, a usage chunk with empty `choices`; then `data: [DONE]`. Without
`stream`, one `chat.completion`. `POST /v1/embeddings` — `data[].embedding` (returned in
reverse order, each with its `index`, so clients must sort), `embedding_dim` long unless
`dimensions` is given.

Knobs as in the Gemini fake: `fail(status, times=1)`, `slow(seconds)`, `stall(seconds)`,
`malformed()`, `chunk_delay`; a wrong bearer token gets 401 `invalid_api_key`, an unknown
model 404 `model_not_found`; `requests` records (path, JSON body, headers).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes import ThreadedServer
from tests.fakes.gemini import DEFAULT_SCRIPT, fake_vector

ERROR_TYPES = {
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("insufficient_quota", "insufficient_quota"),
    500: ("server_error", None),
    503: ("server_error", None),
}


def openai_error(status: int, message: str) -> JSONResponse:
    kind, code = ERROR_TYPES.get(status, ("invalid_request_error", None))
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status)


@dataclass
class FakeOpenAI:
    api_key: str = "sk-test-openai-key"
    models: tuple[str, ...] = ("tutor-test", "embed-test")
    script: list[str] = field(default_factory=lambda: list(DEFAULT_SCRIPT))
    embedding_dim: int = 768
    supports_usage: bool = True
    prompt_tokens: int = 37
    chunk_delay: float = 0.0
    requests: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[int] = []
        self._slow = 0.0
        self._stall = 0.0
        self._malformed = False
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            ]
        )
        self.server = ThreadedServer(self.app)

    # ------------------------------------------------------------ control

    @property
    def base_url(self) -> str:
        """What OPENAI_BASE_URL is set to: the server's root plus `/v1`."""
        return self.server.base_url + "/v1"

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

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()
            self.requests.clear()
        self._slow = self._stall = 0.0
        self._malformed = False
        self.script = list(DEFAULT_SCRIPT)
        self.chunk_delay = 0.0
        self.supports_usage = True
        self.embedding_dim = 768

    def __enter__(self) -> FakeOpenAI:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    # ------------------------------------------------------------ plumbing

    async def _gate(self, request: Request, body: dict[str, Any]) -> Response | None:
        with self._lock:
            self.requests.append((request.url.path, body, dict(request.headers)))
            status = self._failures.pop(0) if self._failures else None
        if self._slow:
            await asyncio.sleep(self._slow)
        if status is not None:
            return openai_error(status, f"Fake failure {status}.")
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            given = request.headers.get("authorization", "").removeprefix("Bearer ")
            return openai_error(
                401, f"Incorrect API key provided: {given}. You can find your API key at …"
            )
        if body.get("model") not in self.models:
            return openai_error(
                404, f"The model `{body.get('model')}` does not exist or you do not have access."
            )
        return None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.models[0],
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    async def _events(self, include_usage: bool) -> AsyncIterator[bytes]:
        yield self._chunk({"role": "assistant", "content": ""})
        if self._malformed:
            yield b"data: {this is not json\n\n"
            return
        for i, text in enumerate(self.script):
            yield self._chunk({"content": text})
            if i == 0 and self._stall:
                await asyncio.sleep(self._stall)
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
        yield self._chunk({}, finish="stop")
        if include_usage:
            completion = len(self.text.split())
            usage = {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion,
            }
            final = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "choices": []}
            yield b"data: " + json.dumps(final | {"usage": usage}).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    # ------------------------------------------------------------ endpoints

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        if (failed := await self._gate(request, body)) is not None:
            return failed
        if body.get("stream"):
            asked = bool((body.get("stream_options") or {}).get("include_usage"))
            events = self._events(asked and self.supports_usage)
            return StreamingResponse(events, media_type="text/event-stream")
        completion = len(self.text.split())
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "model": self.models[0],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": self.prompt_tokens,
                    "completion_tokens": completion,
                    "total_tokens": self.prompt_tokens + completion,
                },
            }
        )

    async def _embeddings(self, request: Request) -> Response:
        body = await request.json()
        if (failed := await self._gate(request, body)) is not None:
            return failed
        if self._malformed:
            return JSONResponse({"object": "list", "oops": []})
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dimension = int(body.get("dimensions") or self.embedding_dim)
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(text, dimension)}
            for i, text in enumerate(inputs)
        ]
        data.reverse()
        tokens = sum(len(t.split()) for t in inputs)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )
