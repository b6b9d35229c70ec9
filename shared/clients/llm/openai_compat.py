"""An OpenAI-compatible provider over httpx: OpenAI, Ollama, vLLM, LM Studio.

`POST {base}/chat/completions` with `stream: true` answers server-sent events, one
`data: {...}` line per chunk with the text in `choices[0].delta.content`, and `data: [DONE]`
at the end. `stream_options.include_usage` asks for a last chunk with `usage` (and empty
`choices`); servers that ignore it get their usage estimated. Timeouts are per operation
(connect, each read), so a slow local model that keeps streaming is never cut off, but one
that stalls is.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import httpx

from shared.clients.llm.base import (
    AnswerRequest,
    JsonRequest,
    ProviderError,
    StreamEvent,
    TextDelta,
    Usage,
    call_with_retry,
    checked_vectors,
    empty_answer,
    error_for_status,
    estimate_tokens,
    malformed,
    timed_out,
    unreachable,
)
from shared.clients.llm.prompts import build_prompt

OPENAI_BASE_URL = "https://api.openai.com/v1"
EMBED_BATCH = 128
TEMPERATURE = 0.3
JSON_TEMPERATURE = 0.2


def _client(api_key: str, timeout: float) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.AsyncClient(
        headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0))
    )


def _detail(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", ""))
    return str(error or data)


class _Http:
    """Requests with error mapping, shared by the LLM and the embedder."""

    def __init__(self, *, base_url: str, api_key: str, model: str, timeout: float) -> None:
        self.base_url = (base_url or OPENAI_BASE_URL).rstrip("/")
        self.model = model
        self._key = api_key
        self._timeout = timeout
        self.client = _client(api_key, timeout)

    def transport_error(self, exc: httpx.HTTPError) -> ProviderError:
        if isinstance(exc, httpx.TimeoutException):
            return timed_out(self._timeout)
        return unreachable(refused=isinstance(exc, httpx.ConnectError))

    async def send(self, path: str, body: dict[str, Any], *, stream: bool) -> httpx.Response:
        """Send a request; any non-2xx answer is read, closed and raised as ProviderError."""
        request = self.client.build_request("POST", f"{self.base_url}{path}", json=body)
        try:
            response = await self.client.send(request, stream=stream)
        except httpx.HTTPError as exc:
            raise self.transport_error(exc) from exc
        if response.is_success:
            return response
        try:
            detail = _detail(await response.aread())
        except httpx.HTTPError:
            detail = ""
        finally:
            await response.aclose()
        raise error_for_status(
            response.status_code, model=self.model, detail=detail, secret=self._key
        )

    async def aclose(self) -> None:
        await self.client.aclose()


class OpenAICompatLLM:
    """Streams chat completions from `{base_url}/chat/completions`."""

    generative = True

    def __init__(self, *, base_url: str, api_key: str, model: str, timeout: float = 60.0):
        self.model_id = model
        self._http = _Http(base_url=base_url, api_key=api_key, model=model, timeout=timeout)

    def _body(self, request: AnswerRequest) -> dict[str, Any]:
        prompt = build_prompt(request)
        messages = [{"role": "system", "content": prompt.system}]
        messages += [{"role": m.role, "content": m.content} for m in prompt.messages]
        return {
            "model": self.model_id,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": TEMPERATURE,
        }

    async def _chunks(self, response: httpx.Response) -> AsyncGenerator[dict[str, Any], None]:
        """The JSON objects of the `data:` lines, until `[DONE]` or the end of the body."""
        lines = response.aiter_lines()
        while True:
            try:
                line = await anext(lines)
            except StopAsyncIteration:
                return
            except httpx.HTTPError as exc:
                raise self._http.transport_error(exc) from exc
            if not line.startswith("data:"):
                continue  # blank separators, `: keep-alive` comments, `event:` lines
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except ValueError as exc:
                raise malformed() from exc
            if not isinstance(chunk, dict):
                raise malformed()
            if "error" in chunk:
                raise _stream_error(chunk["error"], self.model_id)
            yield chunk

    async def stream_answer(self, request: AnswerRequest) -> AsyncGenerator[StreamEvent, None]:
        body = self._body(request)
        response = await call_with_retry(
            functools.partial(self._http.send, "/chat/completions", body, stream=True)
        )
        written: list[str] = []
        usage: Usage | None = None
        try:
            async with aclosing(self._chunks(response)) as chunks:
                async for chunk in chunks:
                    usage = _usage(chunk.get("usage")) or usage
                    if text := _delta_text(chunk):
                        written.append(text)
                        yield TextDelta(text)
        finally:
            await response.aclose()
        if not written:
            raise empty_answer()
        if usage is None:
            sent = "".join(str(m["content"]) for m in body["messages"])
            usage = Usage(estimate_tokens(sent), estimate_tokens("".join(written)))
        yield usage

    async def generate_json(self, request: JsonRequest) -> str:
        """One non-streamed completion with `response_format` set to the JSON schema."""
        body = {
            "model": self.model_id,
            "messages": [
                {"role": "system", "content": request.system},
                {"role": "user", "content": request.prompt},
            ],
            "temperature": JSON_TEMPERATURE,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": request.name, "schema": request.schema},
            },
        }
        response = await call_with_retry(
            functools.partial(self._http.send, "/chat/completions", body, stream=False)
        )
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise malformed() from exc
        if not isinstance(content, str) or not content.strip():
            raise empty_answer()
        return content

    async def aclose(self) -> None:
        await self._http.aclose()


def _delta_text(chunk: dict[str, Any]) -> str:
    choices = chunk.get("choices")
    if not choices:
        return ""  # the usage chunk has none
    try:
        content = choices[0].get("delta", {}).get("content")
    except (AttributeError, IndexError, TypeError) as exc:
        raise malformed() from exc
    return content if isinstance(content, str) else ""


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return Usage(prompt, completion)
    return None


def _stream_error(error: Any, model: str) -> ProviderError:
    """An error object sent inside the stream (vLLM and OpenAI do this mid-answer)."""
    if isinstance(error, dict):
        code = error.get("code")
        status = code if isinstance(code, int) else 500
        return error_for_status(status, model=model, detail=str(error.get("message", "")))
    return error_for_status(500, model=model, detail=str(error))


class OpenAICompatEmbedder:
    """Embeddings from `{base_url}/embeddings`, checked to be `dimension` long.

    No `dimensions` parameter is sent (many compatible servers reject it); a model whose
    vectors have another length fails with a message naming the EMBEDDING_DIM to set.
    """

    def __init__(
        self, *, base_url: str, api_key: str, model: str, dimension: int, timeout: float = 60.0
    ) -> None:
        self.model = model
        self.dimension = dimension
        self.model_id = f"openai/{model}/{dimension}"
        self._http = _Http(base_url=base_url, api_key=api_key, model=model, timeout=timeout)

    async def _batch(self, texts: list[str]) -> list[list[float]]:
        body = {"model": self.model, "input": texts, "encoding_format": "float"}
        response = await self._http.send("/embeddings", body, stream=False)
        try:
            data = response.json()["data"]
            ordered = sorted(data, key=lambda item: item["index"])
            vectors = [item["embedding"] for item in ordered]
        except (ValueError, KeyError, TypeError) as exc:
            raise malformed() from exc
        return checked_vectors(vectors, len(texts), self.dimension, self.model)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start : start + EMBED_BATCH]
            out.extend(await call_with_retry(functools.partial(self._batch, batch)))
        return out

    async def aclose(self) -> None:
        await self._http.aclose()
