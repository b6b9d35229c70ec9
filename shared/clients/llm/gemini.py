"""Gemini through Google's `google-genai` SDK, on its async client.

The SDK gets its own `httpx.AsyncClient`, so every request has connect/read/write
timeouts of `provider_timeout_seconds` (a stalled stream fails after that long without a
byte, while a long answer that keeps flowing is not cut off), and its retries are set
explicitly to a single attempt: left unset, the SDK's async path sleeps 1–10 s and retries
connection errors on its own. We retry once ourselves where it helps (`call_with_retry`).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import AsyncGenerator, AsyncIterator

import httpx
import pydantic
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

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

EMBED_BATCH = 100  # batchEmbedContents takes at most 100 requests
TEMPERATURE = 0.3
JSON_TEMPERATURE = 0.2
Chunk = types.GenerateContentResponse


def http_client(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))


def make_client(
    api_key: str, base_url: str, timeout: float, http: httpx.AsyncClient
) -> genai.Client:
    options = types.HttpOptions(
        base_url=base_url or None,
        timeout=math.ceil(timeout * 1000),  # milliseconds
        retry_options=types.HttpRetryOptions(attempts=1),
        httpx_async_client=http,
    )
    return genai.Client(api_key=api_key, vertexai=False, http_options=options)


def translate(exc: Exception, *, model: str, timeout: float, secret: str) -> ProviderError:
    """Any failure out of the SDK, as a `ProviderError`."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, genai_errors.APIError):
        details = json.dumps(exc.details, default=str) if exc.details else ""
        auth_hint = exc.code == 400 and (
            "API_KEY_INVALID" in details or "API key not valid" in str(exc.message)
        )
        return error_for_status(
            exc.code, model=model, detail=str(exc.message or ""), secret=secret, auth_hint=auth_hint
        )
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return timed_out(timeout)
    if isinstance(exc, httpx.TransportError | OSError):
        return unreachable(refused=isinstance(exc, httpx.ConnectError | ConnectionRefusedError))
    if isinstance(exc, ValueError | pydantic.ValidationError | KeyError | TypeError):
        return malformed()
    raise exc


async def _close(stream: AsyncIterator[Chunk]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def _chunk_text(chunk: Chunk) -> str:
    """The answer text of one streamed chunk; thoughts and non-text parts are skipped."""
    if not chunk.candidates:
        return ""
    content = chunk.candidates[0].content
    parts = content.parts if content and content.parts else []
    return "".join(p.text for p in parts if p.text and not p.thought)


def _blocked(chunk: Chunk) -> str | None:
    feedback = chunk.prompt_feedback
    if feedback is None or feedback.block_reason is None:
        return None
    return str(feedback.block_reason.value)


class GeminiLLM:
    """Streams answers from a Gemini model (`settings.gemini_model`)."""

    generative = True

    def __init__(self, *, api_key: str, model: str, base_url: str = "", timeout: float = 60.0):
        self.model_id = model
        self._key = api_key
        self._timeout = timeout
        self._http = http_client(timeout)
        self._client = make_client(api_key, base_url, timeout, self._http)

    def _error(self, exc: Exception) -> ProviderError:
        return translate(exc, model=self.model_id, timeout=self._timeout, secret=self._key)

    async def _next(self, stream: AsyncIterator[Chunk]) -> Chunk | None:
        try:
            return await anext(stream)
        except StopAsyncIteration:
            return None
        except Exception as exc:
            raise self._error(exc) from exc

    async def _open(self, request: AnswerRequest) -> tuple[AsyncIterator[Chunk], Chunk | None]:
        """Send the request and read the first chunk (the SDK sends on the first read)."""
        prompt = build_prompt(request)
        contents = [
            types.Content(
                role="model" if t.role == "assistant" else "user",
                parts=[types.Part(text=t.content)],
            )
            for t in prompt.messages
        ]
        config = types.GenerateContentConfig(
            system_instruction=prompt.system,
            temperature=TEMPERATURE,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        try:
            stream = await self._client.aio.models.generate_content_stream(
                model=self.model_id, contents=contents, config=config
            )
        except Exception as exc:
            raise self._error(exc) from exc
        try:
            return stream, await self._next(stream)
        except BaseException:
            await _close(stream)
            raise

    async def stream_answer(self, request: AnswerRequest) -> AsyncGenerator[StreamEvent, None]:
        stream, chunk = await call_with_retry(functools.partial(self._open, request))
        usage: types.GenerateContentResponseUsageMetadata | None = None
        written: list[str] = []
        blocked: str | None = None
        try:
            while chunk is not None:
                usage = chunk.usage_metadata or usage
                blocked = blocked or _blocked(chunk)
                if text := _chunk_text(chunk):
                    written.append(text)
                    yield TextDelta(text)
                chunk = await self._next(stream)
        finally:
            await _close(stream)
        if not written:
            if blocked:
                raise ProviderError(
                    f"The AI provider declined to answer this question ({blocked}).",
                    kind="invalid",
                    transient=False,
                )
            raise empty_answer()
        yield self._usage(usage, request, "".join(written))

    async def _json_once(self, request: JsonRequest) -> str:
        config = types.GenerateContentConfig(
            system_instruction=request.system,
            temperature=JSON_TEMPERATURE,
            response_mime_type="application/json",
            response_json_schema=request.schema,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        try:
            response = await self._client.aio.models.generate_content(
                model=self.model_id, contents=request.prompt, config=config
            )
            text = _chunk_text(response)
        except Exception as exc:
            raise self._error(exc) from exc
        if not text.strip():
            if blocked := _blocked(response):
                raise ProviderError(
                    f"The AI provider declined this request ({blocked}).",
                    kind="invalid",
                    transient=False,
                )
            raise empty_answer()
        return text

    async def generate_json(self, request: JsonRequest) -> str:
        """One `generateContent` call with a JSON response schema."""
        return await call_with_retry(functools.partial(self._json_once, request))

    def _usage(
        self,
        meta: types.GenerateContentResponseUsageMetadata | None,
        request: AnswerRequest,
        answer: str,
    ) -> Usage:
        if meta is None or meta.prompt_token_count is None:
            prompt = build_prompt(request)
            sent = prompt.system + "".join(m.content for m in prompt.messages)
            return Usage(estimate_tokens(sent), estimate_tokens(answer))
        output = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
        return Usage(meta.prompt_token_count, output)

    async def aclose(self) -> None:
        await self._client.aio.aclose()
        await self._http.aclose()
        self._client.close()


class GeminiEmbedder:
    """Gemini embeddings, `dimension` long (output_dimensionality), L2-normalised.

    Below the model's native 3072 dimensions Gemini's vectors are not normalised, so they
    are normalised here; cosine search does not care, dot products then agree with it.
    """

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        dimension: int,
        base_url: str = "",
        timeout: float = 60.0,
    ) -> None:
        self.model = model
        self.dimension = dimension
        self.model_id = f"gemini/{model}/{dimension}"
        self._key = api_key
        self._timeout = timeout
        self._http = http_client(timeout)
        self._client = make_client(api_key, base_url, timeout, self._http)

    async def _batch(self, texts: list[str]) -> list[list[float]]:
        try:
            response = await self._client.aio.models.embed_content(
                model=self.model,
                # One Content per text: a bare list of strings is read as the parts of
                # a single content by multimodal models (gemini-embedding-2).
                contents=[types.Content(parts=[types.Part(text=t)]) for t in texts],
                config=types.EmbedContentConfig(output_dimensionality=self.dimension),
            )
        except Exception as exc:
            raise translate(exc, model=self.model, timeout=self._timeout, secret=self._key) from exc
        vectors = [list(e.values or []) for e in response.embeddings or []]
        return checked_vectors(vectors, len(texts), self.dimension, self.model)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start : start + EMBED_BATCH]
            out.extend(await call_with_retry(functools.partial(self._batch, batch)))
        return out

    async def aclose(self) -> None:
        await self._client.aio.aclose()
        await self._http.aclose()
        self._client.close()
