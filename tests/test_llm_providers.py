"""The AI providers against local fakes of Gemini and an OpenAI-compatible server.

The real `google-genai` SDK talks HTTP to the Gemini fake through `HttpOptions(base_url)`;
the OpenAI-compatible provider talks to its fake over httpx. Nothing reaches the internet.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import aclosing
from typing import Any

import pytest

from shared.clients.embeddings import HashingEmbedder
from shared.clients.llm import (
    AnswerRequest,
    Passage,
    ProviderError,
    TextDelta,
    Turn,
    Usage,
    build_embedder,
    build_llm,
)
from shared.clients.llm.gemini import GeminiEmbedder, GeminiLLM
from shared.clients.llm.offline import NOT_COVERED, OfflineLLM
from shared.clients.llm.openai_compat import OpenAICompatEmbedder, OpenAICompatLLM
from shared.config import Settings
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI

PASSAGES = [
    Passage(
        chunk_id="c1",
        material_id="m1",
        title="Biology notes",
        text=(
            "Plants are living things. Photosynthesis turns light energy into chemical "
            "energy stored in sugar. It happens in the leaves."
        ),
        page=3,
    ),
    Passage(
        chunk_id="c2",
        material_id="m2",
        title="Lecture 4",
        text=(
            "Chlorophyll is the green pigment of leaves. Chlorophyll absorbs red and "
            "blue light and reflects green light."
        ),
        start_s=754.0,
    ),
]
QUESTION = "What does chlorophyll absorb?"


def request(question: str = QUESTION, style: Any = "direct", **kw: Any) -> AnswerRequest:
    history = [Turn("user", "Hi"), Turn("assistant", "Hello! Ask me about your notes.")]
    return AnswerRequest(
        question=question,
        history=kw.get("history", history),
        passages=kw.get("passages", PASSAGES),
        style=style,
    )


async def collect(llm: Any, req: AnswerRequest) -> list[Any]:
    async with aclosing(llm.stream_answer(req)) as stream:
        return [event async for event in stream]


async def failure(llm: Any, req: AnswerRequest | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await collect(llm, req or request())
    return info.value


def settings(**kw: Any) -> Settings:
    return Settings(_env_file=None, **kw)


@pytest.fixture(scope="module")
def gemini_server() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def gemini(gemini_server: FakeGemini) -> FakeGemini:
    gemini_server.reset()
    return gemini_server


@pytest.fixture
def openai(openai_server: FakeOpenAI) -> FakeOpenAI:
    openai_server.reset()
    return openai_server


def gemini_settings(fake: FakeGemini, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "gemini_api_key": fake.api_key,
        "gemini_base_url": fake.base_url,
        "gemini_model": "gemini-test",
        "gemini_embedding_model": "gemini-embedding-test",
        "provider_timeout_seconds": 5.0,
        "embedding_dim": 64,
    }
    return settings(**(values | kw))


def openai_settings(fake: FakeOpenAI, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "openai_base_url": fake.base_url,
        "openai_api_key": fake.api_key,
        "openai_model": "tutor-test",
        "openai_embedding_model": "embed-test",
        "provider_timeout_seconds": 5.0,
        "embedding_dim": 768,
    }
    return settings(**(values | kw))


def make_llm(provider: str, fake: Any, **kw: Any) -> Any:
    if provider == "gemini":
        return build_llm(gemini_settings(fake, **kw))
    return build_llm(openai_settings(fake, **kw))


@pytest.fixture(params=["gemini", "openai"])
def remote(request: pytest.FixtureRequest, gemini: FakeGemini, openai: FakeOpenAI) -> Any:
    """(provider name, its fake), for tests that hold for both remote providers."""
    return request.param, gemini if request.param == "gemini" else openai


# ---------------------------------------------------------------- factory


def test_auto_picks_offline_without_keys() -> None:
    cfg = settings(embedding_dim=32)
    assert isinstance(build_llm(cfg), OfflineLLM)
    embedder = build_embedder(cfg)
    assert isinstance(embedder, HashingEmbedder)
    assert embedder.dimension == 32


def test_auto_prefers_gemini_then_openai() -> None:
    both = settings(
        gemini_api_key="g", openai_base_url="http://x/v1", openai_model="m", embedding_dim=8
    )
    assert isinstance(build_llm(both), GeminiLLM)
    assert isinstance(build_embedder(both), GeminiEmbedder)
    only_openai = settings(
        openai_base_url="http://x/v1", openai_model="m", openai_embedding_model="e"
    )
    assert isinstance(build_llm(only_openai), OpenAICompatLLM)
    assert isinstance(build_embedder(only_openai), OpenAICompatEmbedder)
    chat_only = settings(openai_base_url="http://x/v1", openai_model="m")
    assert isinstance(build_embedder(chat_only), HashingEmbedder)


def test_explicit_provider_without_its_settings_is_a_startup_error() -> None:
    with pytest.raises(ValueError, match="GEMINI_API_KEY"):
        build_llm(settings(llm_provider="gemini"))
    with pytest.raises(ValueError, match="OPENAI_MODEL"):
        build_llm(settings(llm_provider="openai", openai_base_url="http://x/v1"))


# ---------------------------------------------------------------- streaming


async def test_streams_deltas_in_order_then_one_usage(remote: Any) -> None:
    provider, fake = remote
    llm = make_llm(provider, fake)
    try:
        events = await collect(llm, request())
    finally:
        await llm.aclose()
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert [d.text for d in deltas] == fake.script
    assert "".join(d.text for d in deltas) == fake.text
    assert isinstance(events[-1], Usage)
    assert sum(isinstance(e, Usage) for e in events) == 1
    assert events[-1] == Usage(fake.prompt_tokens, len(fake.text.split()))


async def test_gemini_request_shape(gemini: FakeGemini) -> None:
    llm = make_llm("gemini", gemini)
    try:
        await collect(llm, request(style="socratic"))
    finally:
        await llm.aclose()
    path, body = gemini.requests[-1]
    version, _, rest = path.removeprefix("/").partition("/")
    assert version in {"v1", "v1beta"}  # the SDK's default API version
    assert rest == "models/gemini-test:streamGenerateContent"
    system = body["systemInstruction"]["parts"][0]["text"]
    assert "[1]" in system
    assert "Socratic" in system
    roles = [c["role"] for c in body["contents"]]
    assert roles == ["user", "model", "user"]
    last = body["contents"][-1]["parts"][0]["text"]
    assert "[1] Biology notes, page 3" in last
    assert "[2] Lecture 4, at 12:34" in last
    assert last.endswith(f"Question: {QUESTION}")


async def test_openai_request_shape(openai: FakeOpenAI) -> None:
    llm = make_llm("openai", openai)
    try:
        await collect(llm, request())
    finally:
        await llm.aclose()
    path, body, headers = openai.requests[-1]
    assert path == "/v1/chat/completions"
    assert headers["authorization"] == f"Bearer {openai.api_key}"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert "Style: direct" in body["messages"][0]["content"]
    assert "[2] Lecture 4, at 12:34" in body["messages"][-1]["content"]


async def test_openai_usage_is_estimated_when_the_server_sends_none(openai: FakeOpenAI) -> None:
    openai.supports_usage = False
    llm = make_llm("openai", openai)
    try:
        events = await collect(llm, request())
    finally:
        await llm.aclose()
    usage = events[-1]
    assert isinstance(usage, Usage)
    assert usage.input_tokens > 50
    assert usage.output_tokens >= len(openai.text.split())


async def test_closing_the_stream_early_is_clean(remote: Any) -> None:
    provider, fake = remote
    fake.chunk_delay = 0.05
    llm = make_llm(provider, fake)
    try:
        async with aclosing(llm.stream_answer(request())) as stream:
            first = await anext(stream)
        assert first == TextDelta(fake.script[0])
        assert [type(e) for e in await collect(llm, request())][-1] is Usage  # still usable
    finally:
        await llm.aclose()


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "kind", "transient", "message"),
    [
        (401, "auth", False, "The AI provider rejected the API key."),
        (403, "auth", False, "The AI provider rejected the API key."),
        (404, "model", False, "The model {model} is not available."),
        (429, "quota", True, "rate limit or quota"),
        (500, "unavailable", True, "unavailable right now"),
        (503, "unavailable", True, "unavailable right now"),
    ],
)
async def test_http_errors_map_to_kinds(
    remote: Any, status: int, kind: str, transient: bool, message: str
) -> None:
    provider, fake = remote
    fake.fail(status, times=2)  # 5xx is retried once; two failures exhaust it
    llm = make_llm(provider, fake)
    try:
        error = await failure(llm)
    finally:
        await llm.aclose()
    assert (error.kind, error.transient) == (kind, transient)
    assert message.format(model=llm.model_id) in str(error)
    assert fake.api_key not in str(error)


async def test_one_5xx_is_retried(remote: Any) -> None:
    provider, fake = remote
    fake.fail(503, times=1)
    llm = make_llm(provider, fake)
    try:
        events = await collect(llm, request())
    finally:
        await llm.aclose()
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == fake.text
    assert len(fake.requests) == 2


async def test_quota_is_not_retried(remote: Any) -> None:
    provider, fake = remote
    fake.fail(429, times=1)
    llm = make_llm(provider, fake)
    try:
        assert (await failure(llm)).kind == "quota"
    finally:
        await llm.aclose()
    assert len(fake.requests) == 1


async def test_wrong_key_is_an_auth_error_never_echoed(remote: Any) -> None:
    provider, fake = remote
    key = "wrong-key-0123456789"
    field = "gemini_api_key" if provider == "gemini" else "openai_api_key"
    llm = make_llm(provider, fake, **{field: key})
    try:
        error = await failure(llm)
    finally:
        await llm.aclose()
    assert error.kind == "auth"
    assert key not in str(error)
    assert key not in repr(error)


async def test_unknown_model(remote: Any) -> None:
    provider, fake = remote
    field = "gemini_model" if provider == "gemini" else "openai_model"
    llm = make_llm(provider, fake, **{field: "no-such-model"})
    try:
        error = await failure(llm)
    finally:
        await llm.aclose()
    assert error.kind == "model"
    assert str(error) == "The model no-such-model is not available."


async def test_slow_provider_times_out(remote: Any) -> None:
    provider, fake = remote
    fake.slow(3.0)
    llm = make_llm(provider, fake, provider_timeout_seconds=0.4)
    started = time.monotonic()
    try:
        error = await failure(llm)
    finally:
        await llm.aclose()
    assert time.monotonic() - started < 2.0
    assert (error.kind, error.transient) == ("unavailable", True)
    assert "did not answer within 0.4 seconds" in str(error)
    assert len(fake.requests) == 1  # a timeout is not retried


async def test_stalled_stream_times_out_after_the_first_delta(remote: Any) -> None:
    provider, fake = remote
    fake.stall(3.0)
    llm = make_llm(provider, fake, provider_timeout_seconds=0.4)
    seen: list[Any] = []

    async def consume() -> None:
        async with aclosing(llm.stream_answer(request())) as stream:
            async for event in stream:
                seen.append(event)

    try:
        with pytest.raises(ProviderError) as info:
            await consume()
    finally:
        await llm.aclose()
    assert seen == [TextDelta(fake.script[0])]
    assert info.value.kind == "unavailable"


async def test_malformed_stream(remote: Any) -> None:
    provider, fake = remote
    fake.malformed()
    llm = make_llm(provider, fake)
    try:
        error = await failure(llm)
    finally:
        await llm.aclose()
    assert (error.kind, error.transient) == ("invalid", False)


async def test_unreachable_provider() -> None:
    from tests.fakes import free_port

    cfg = settings(
        openai_base_url=f"http://127.0.0.1:{free_port()}/v1",
        openai_model="m",
        provider_timeout_seconds=2.0,
    )
    llm = build_llm(cfg)
    try:
        error = await failure(llm)
    finally:
        await llm.aclose()
    assert (error.kind, error.transient) == ("unavailable", True)


# ---------------------------------------------------------------- embeddings


@pytest.mark.parametrize("model", ["gemini-embedding-001", "gemini-embedding-2-test"])
async def test_gemini_embeddings(gemini: FakeGemini, model: str) -> None:
    """One vector per text, also for models the SDK treats as multimodal."""
    cfg = gemini_settings(gemini, embedding_dim=64, gemini_embedding_model=model)
    embedder = build_embedder(cfg)
    assert isinstance(embedder, GeminiEmbedder)
    assert model in embedder.model_id
    assert "64" in embedder.model_id
    texts = [f"text number {i}" for i in range(130)]
    try:
        vectors = await embedder.embed(texts)
    finally:
        await embedder.aclose()
    assert len(vectors) == 130
    assert {len(v) for v in vectors} == {64}
    assert abs(sum(x * x for x in vectors[0]) - 1) < 1e-6
    paths = [p.split("/", 2)[2] for p, _ in gemini.requests]
    assert paths == [f"models/{model}:batchEmbedContents"] * 2
    first = gemini.requests[0][1]["requests"]
    assert len(first) == 100
    assert first[0]["outputDimensionality"] == 64
    assert first[0]["content"]["parts"][0]["text"] == "text number 0"
    again = build_embedder(cfg)
    try:
        assert (await again.embed(["text number 5"]))[0] == vectors[5]
    finally:
        await again.aclose()  # type: ignore[attr-defined]


async def test_openai_embeddings_in_input_order(openai: FakeOpenAI) -> None:
    embedder = build_embedder(openai_settings(openai))
    assert isinstance(embedder, OpenAICompatEmbedder)
    assert embedder.model_id == "openai/embed-test/768"
    try:
        vectors = await embedder.embed(["alpha", "beta", "gamma"])
        alone = await embedder.embed(["gamma"])
    finally:
        await embedder.aclose()
    assert len(vectors) == 3
    assert {len(v) for v in vectors} == {768}
    assert vectors[2] == alone[0]  # the fake answers in reverse; order follows `index`
    assert openai.requests[0][1]["input"] == ["alpha", "beta", "gamma"]


async def test_embedding_dimension_mismatch_names_the_setting(openai: FakeOpenAI) -> None:
    openai.embedding_dim = 1024
    embedder = build_embedder(openai_settings(openai))
    try:
        with pytest.raises(ProviderError, match="EMBEDDING_DIM=1024") as info:
            await embedder.embed(["alpha"])
    finally:
        await embedder.aclose()  # type: ignore[attr-defined]
    assert info.value.kind == "invalid"


@pytest.mark.parametrize("status", [401, 404, 429, 500])
async def test_embedding_errors(remote: Any, status: int) -> None:
    provider, fake = remote
    fake.fail(status, times=2)
    cfg = gemini_settings(fake) if provider == "gemini" else openai_settings(fake)
    embedder = build_embedder(cfg)
    try:
        with pytest.raises(ProviderError) as info:
            await embedder.embed(["alpha"])
    finally:
        await embedder.aclose()  # type: ignore[attr-defined]
    expected = {401: "auth", 404: "model", 429: "quota", 500: "unavailable"}[status]
    assert info.value.kind == expected


async def test_malformed_embeddings(remote: Any) -> None:
    provider, fake = remote
    fake.malformed()
    cfg = gemini_settings(fake) if provider == "gemini" else openai_settings(fake)
    embedder = build_embedder(cfg)
    try:
        with pytest.raises(ProviderError) as info:
            await embedder.embed(["alpha"])
    finally:
        await embedder.aclose()  # type: ignore[attr-defined]
    assert info.value.kind == "invalid"


# ---------------------------------------------------------------- offline


async def offline_answer(req: AnswerRequest) -> tuple[str, list[Any]]:
    events = await collect(OfflineLLM(), req)
    return "".join(e.text for e in events if isinstance(e, TextDelta)), events


async def test_offline_quotes_the_right_passage_with_its_marker() -> None:
    text, events = await offline_answer(request())
    assert text.startswith("Here is what your material says")
    assert '"Chlorophyll absorbs red and blue light and reflects green light." [2]' in text
    best = text.index("Chlorophyll absorbs red")
    assert best < text.index("green pigment")  # more shared words first
    assert "[1]" not in text  # passage 1 never mentions chlorophyll
    assert "Offline mode" in text
    assert isinstance(events[-1], Usage)
    assert sum(isinstance(e, Usage) for e in events) == 1
    assert events[-1].output_tokens == len(events) - 1


async def test_offline_cites_each_quote_with_its_own_passage() -> None:
    text, _ = await offline_answer(request("How do leaves use light energy?"))
    assert '"Photosynthesis turns light energy into chemical energy stored in sugar." [1]' in text
    assert "[2]" in text  # lecture 4 on light and leaves


async def test_offline_is_deterministic_and_streams_word_by_word() -> None:
    first, events = await offline_answer(request())
    second, _ = await offline_answer(request())
    assert first == second
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) == len(first.split())
    assert all(d.strip() and not d.strip().count(" ") for d in deltas)
    assert all(d[-1].isspace() for d in deltas[:-1])


async def test_offline_says_when_the_material_does_not_cover_it() -> None:
    text, events = await offline_answer(request("Who won the 1998 football world cup?"))
    assert text == NOT_COVERED
    assert "does not seem to cover" in text
    assert isinstance(events[-1], Usage)
    assert (await offline_answer(request(passages=[])))[0] == NOT_COVERED


async def test_offline_socratic_starts_with_guiding_questions() -> None:
    text, _ = await offline_answer(request(style="socratic"))
    opening = text.split("?")[0]
    assert opening.startswith("What do you already know about chlorophyll")
    assert "\n" not in opening
    assert '"Chlorophyll absorbs red and blue light and reflects green light." [2]' in text


async def test_offline_socratic_with_two_key_words() -> None:
    text, _ = await offline_answer(request("How do chlorophyll and photosynthesis use light?"))
    assert text.startswith("Here is what your material says")  # direct style
    text, _ = await offline_answer(
        request("How do chlorophyll and photosynthesis use light?", style="socratic")
    )
    assert text.startswith("What do you already know about chlorophyll, photosynthesis and light?")
    assert "How might chlorophyll relate to photosynthesis?" in text
