"""The chat stream over real HTTP from the running system, with the real google-genai SDK
talking to a local Gemini fake: token order, a client that leaves, a provider outage."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import running_system
from tests.fakes.gemini import FakeGemini

SCRIPT = [f"word{i} " for i in range(40)]


@pytest.fixture(scope="module")
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


@pytest.fixture(scope="module")
def api(gemini: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_system(
        tmp_path_factory.mktemp("chat-stream"),
        LLM_PROVIDER="gemini",
        EMBEDDING_PROVIDER="offline",
        GEMINI_API_KEY=gemini.api_key,
        GEMINI_BASE_URL=gemini.base_url,
        GEMINI_MODEL="gemini-test",
    ) as (base, _):
        yield base


@pytest.fixture
def chat(api: str, gemini: FakeGemini) -> Iterator[tuple[httpx.Client, dict[str, str], str]]:
    gemini.reset()
    gemini.script = list(SCRIPT)
    with httpx.Client(base_url=api, timeout=30) as client:
        email = f"s{time.time_ns()}@example.com"
        client.post("/api/auth/register", json={"email": email, "password": "stream password"})
        token = client.post(
            "/api/auth/login", data={"username": email, "password": "stream password"}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        session_id = client.post("/api/chat/sessions", headers=headers, json={}).json()["id"]
        yield client, headers, session_id


def events(lines: Iterator[str]) -> Iterator[tuple[str, object]]:
    name = None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name:
            yield name, json.loads(line[6:])


def test_tokens_stream_in_order_and_are_saved(
    chat: tuple[httpx.Client, dict[str, str], str],
) -> None:
    client, headers, session_id = chat
    with client.stream(
        "POST",
        f"/api/chat/sessions/{session_id}/messages",
        headers={**headers, "Accept": "text/event-stream"},
        json={"content": "Tell me something."},
    ) as response:
        assert response.headers["x-accel-buffering"] == "no"
        received = list(events(response.iter_lines()))
    names = [n for n, _ in received]
    assert names[-2:] == ["citations", "done"] and set(names[:-2]) == {"token"}
    text = "".join(d["text"] for n, d in received if n == "token")  # type: ignore[index]
    assert text == "".join(SCRIPT)
    done = received[-1][1]
    assert isinstance(done, dict) and done["usage"]["output_tokens"] == len(SCRIPT)
    detail = client.get(f"/api/chat/sessions/{session_id}", headers=headers).json()
    assert [m["content"] for m in detail["messages"]] == ["Tell me something.", text]


def test_a_client_that_leaves_stops_generation(
    chat: tuple[httpx.Client, dict[str, str], str], gemini: FakeGemini
) -> None:
    client, headers, session_id = chat
    gemini.chunk_delay = 0.1  # 40 chunks: four seconds if nobody stops it
    with client.stream(
        "POST",
        f"/api/chat/sessions/{session_id}/messages",
        headers={**headers, "Accept": "text/event-stream"},
        json={"content": "Tell me a long story."},
    ) as response:
        first = next(events(response.iter_lines()))
        assert first[0] == "token"
    time.sleep(2.0)
    sent = gemini.chunks_sent
    time.sleep(1.0)
    assert gemini.chunks_sent == sent < len(SCRIPT), "the model kept streaming to nobody"
    detail = client.get(f"/api/chat/sessions/{session_id}", headers=headers).json()
    assert [m["role"] for m in detail["messages"]] == ["user"]  # no half-written answer


def test_provider_outage_is_a_clean_error_event(
    chat: tuple[httpx.Client, dict[str, str], str], gemini: FakeGemini
) -> None:
    client, headers, session_id = chat
    gemini.fail(500, times=5)
    with client.stream(
        "POST",
        f"/api/chat/sessions/{session_id}/messages",
        headers={**headers, "Accept": "text/event-stream"},
        json={"content": "Anyone there?"},
    ) as response:
        assert response.status_code == 200
        received = list(events(response.iter_lines()))
    assert [n for n, _ in received] == ["error"]
    error = received[0][1]
    assert isinstance(error, dict) and error["code"] == "unavailable"
    assert "Traceback" not in error["message"]
    as_json = client.post(
        f"/api/chat/sessions/{session_id}/messages", headers=headers, json={"content": "Again?"}
    )
    assert as_json.status_code == 502
    assert as_json.json()["error"]["code"] == "provider_error"
