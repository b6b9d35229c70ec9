"""The LLM interface the rest of the backend codes against, and the provider errors.

Every provider streams an answer as `TextDelta`s in order, then exactly one `Usage`.
Failures are `ProviderError`s whose message can be shown to the learner as is: it names
what went wrong (bad key, quota, missing model, provider down) and never carries the key.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

ErrorKind = Literal["auth", "quota", "model", "unavailable", "invalid"]
TutorStyle = Literal["direct", "socratic"]

# One quick retry, before any output reached the learner, for a 5xx answer or a refused
# connection: those are often momentary. Timeouts already spent the whole budget and a
# quota error will not clear in half a second, so neither is retried here; `transient`
# tells a caller (the job wrapper) it may try again later.
RETRY_DELAYS: tuple[float, ...] = (0.5,)
_DETAIL_CHARS = 300
_WORDS = re.compile(r"\S+")
TOKENS_PER_WORD = 1.3


@dataclass(frozen=True, slots=True)
class Passage:
    chunk_id: str
    material_id: str
    title: str
    text: str
    page: int | None = None
    start_s: float | None = None


@dataclass(frozen=True, slots=True)
class Turn:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class AnswerRequest:
    question: str
    history: list[Turn]
    passages: list[Passage]
    style: TutorStyle = "direct"


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int


StreamEvent = TextDelta | Usage


@dataclass(frozen=True, slots=True)
class JsonRequest:
    """Ask for one JSON object following `schema` (a plain JSON Schema, no `$ref`s)."""

    name: str  # names the schema for providers that want one (OpenAI's json_schema.name)
    system: str
    prompt: str
    schema: dict[str, Any]


class ProviderError(Exception):
    """A provider failure, worded for the learner. Never put the API key in `message`."""

    def __init__(self, message: str, *, kind: ErrorKind, transient: bool) -> None:
        super().__init__(message)
        self.message = message
        self.kind: ErrorKind = kind
        self.transient = transient
        self.retry_soon = False  # set by the mapping below: worth one immediate retry

    def __repr__(self) -> str:
        return f"ProviderError({self.message!r}, kind={self.kind!r}, transient={self.transient})"


class LLM(Protocol):
    model_id: str
    # False for the offline provider: it only quotes, so callers that need generated
    # structured output (quizzes, paths) use their own deterministic builders instead.
    generative: bool

    def stream_answer(self, request: AnswerRequest) -> AsyncGenerator[StreamEvent, None]:
        """An async generator: text deltas in order, then exactly one `Usage`.

        Typed as a generator (an AsyncIterator with `aclose`), so callers can wrap it
        in `contextlib.aclosing` and stop generation when the learner goes away."""
        ...

    async def generate_json(self, request: JsonRequest) -> str:
        """The raw text of a JSON answer constrained to `request.schema`; the caller
        validates it (models may still return something else) and may ask again."""
        ...

    async def aclose(self) -> None: ...


# ---------------------------------------------------------------- error mapping


def _redact(detail: str, secret: str) -> str:
    if secret:
        detail = detail.replace(secret, "***")
    detail = " ".join(detail.split())
    if len(detail) > _DETAIL_CHARS:
        detail = detail[: _DETAIL_CHARS - 1] + "…"
    return detail


def error_for_status(
    status: int, *, model: str, detail: str = "", secret: str = "", auth_hint: bool = False
) -> ProviderError:
    """Map an HTTP error status from a provider to a `ProviderError`.

    `auth_hint` marks a 400 that is really a bad key (Gemini answers an invalid key with
    400 INVALID_ARGUMENT / API_KEY_INVALID).
    """
    if status in (401, 403) or auth_hint:
        return ProviderError("The AI provider rejected the API key.", kind="auth", transient=False)
    if status == 429:
        return ProviderError(
            "The AI provider's rate limit or quota was reached. Please try again in a moment.",
            kind="quota",
            transient=True,
        )
    if status == 404:
        return ProviderError(f"The model {model} is not available.", kind="model", transient=False)
    if status == 408 or status >= 500:
        error = ProviderError(
            f"The AI provider is unavailable right now (HTTP {status}). Please try again shortly.",
            kind="unavailable",
            transient=True,
        )
        error.retry_soon = status in (500, 502, 503, 504)
        return error
    text = _redact(detail, secret)
    return ProviderError(
        f"The AI provider refused the request (HTTP {status})" + (f": {text}" if text else "."),
        kind="invalid",
        transient=False,
    )


def timed_out(seconds: float) -> ProviderError:
    return ProviderError(
        f"The AI provider did not answer within {seconds:g} seconds.",
        kind="unavailable",
        transient=True,
    )


def unreachable(*, refused: bool) -> ProviderError:
    error = ProviderError(
        "The AI provider could not be reached. Please try again shortly.",
        kind="unavailable",
        transient=True,
    )
    error.retry_soon = refused
    return error


def malformed(what: str = "a response") -> ProviderError:
    return ProviderError(
        f"The AI provider sent {what} that could not be read.", kind="invalid", transient=False
    )


def empty_answer() -> ProviderError:
    return ProviderError(
        "The AI provider returned an empty answer.", kind="invalid", transient=False
    )


T = TypeVar("T")


async def call_with_retry(call: Callable[[], Awaitable[T]]) -> T:
    """Run `call`, retrying after `RETRY_DELAYS` while it fails with `retry_soon` set."""
    for delay in RETRY_DELAYS:
        try:
            return await call()
        except ProviderError as exc:
            if not exc.retry_soon:
                raise
        await asyncio.sleep(delay)
    return await call()


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate (about 1.3 tokens per word), for providers that omit usage."""
    return math.ceil(len(_WORDS.findall(text)) * TOKENS_PER_WORD)


def checked_vectors(
    vectors: list[Any], count: int, dimension: int, model: str
) -> list[list[float]]:
    """Validate a provider's embeddings (count and length) and L2-normalise them."""
    if len(vectors) != count:
        raise malformed(f"{len(vectors)} embeddings for {count} texts")
    out: list[list[float]] = []
    for vector in vectors:
        if not isinstance(vector, list) or not all(isinstance(x, int | float) for x in vector):
            raise malformed("an embedding")
        if len(vector) != dimension:
            raise ProviderError(
                f"The embedding model {model} returns {len(vector)}-dimensional vectors, but "
                f"EMBEDDING_DIM is {dimension}. Set EMBEDDING_DIM={len(vector)} (or pick a model "
                "that supports that size).",
                kind="invalid",
                transient=False,
            )
        norm = math.sqrt(sum(float(x) * float(x) for x in vector))
        out.append([float(x) / norm for x in vector] if norm > 0 else [float(x) for x in vector])
    return out
