"""The chat tutor with the offline provider: grounded answers, SSE events, persistence,
ownership."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import Account, assert_error, wait_job

pytestmark = pytest.mark.usefixtures("worker")

NOTES = """# Photosynthesis

Photosynthesis converts light energy into chemical energy stored in glucose.
It takes place in the chloroplasts, which contain the green pigment chlorophyll.

# Respiration

Cellular respiration releases energy from glucose in the mitochondria.
"""


async def ready_material(client: httpx.AsyncClient, account: Account) -> str:
    created = await client.post(
        "/api/materials/text", headers=account.headers, json={"title": "Biology", "text": NOTES}
    )
    job = await wait_job(client, account, created.json()["job"]["id"])
    assert job["status"] == "succeeded"
    return str(created.json()["material"]["id"])


def parse_sse(body: str) -> list[tuple[str, object]]:
    events = []
    for block in body.split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith(":")]
        if not lines:
            continue
        name = next(line[7:] for line in lines if line.startswith("event: "))
        data = json.loads(next(line[6:] for line in lines if line.startswith("data: ")))
        events.append((name, data))
    return events


async def test_streamed_answer_is_grounded_cited_and_saved(
    client: httpx.AsyncClient, alice: Account
) -> None:
    material_id = await ready_material(client, alice)
    chat = await client.post(
        "/api/chat/sessions",
        headers=alice.headers,
        json={"title": "Plants", "material_ids": [material_id]},
    )
    assert chat.status_code == 201, chat.text
    session_id = chat.json()["id"]

    response = await client.post(
        f"/api/chat/sessions/{session_id}/messages",
        headers={**alice.headers, "Accept": "text/event-stream"},
        json={"content": "Where does photosynthesis take place?"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no"
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    assert names[-2:] == ["citations", "done"]
    assert set(names[:-2]) == {"token"} and len(names) > 5
    answer = "".join(data["text"] for name, data in events if name == "token")  # type: ignore[index]
    assert "chloroplasts" in answer
    citations = events[-2][1]
    assert isinstance(citations, list) and citations
    assert citations[0]["material_id"] == material_id
    assert citations[0]["chunk_id"].startswith(material_id)
    assert citations[0]["title"] == "Biology"
    assert citations[0]["quote"]
    done = events[-1][1]
    assert isinstance(done, dict) and done["usage"]["output_tokens"] > 0

    detail = (await client.get(f"/api/chat/sessions/{session_id}", headers=alice.headers)).json()
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"]
    assert detail["messages"][1]["id"] == done["message_id"]
    assert detail["messages"][1]["content"] == answer
    assert detail["messages"][1]["citations"][0]["chunk_id"] == citations[0]["chunk_id"]


async def test_json_answer_and_history(client: httpx.AsyncClient, alice: Account) -> None:
    await ready_material(client, alice)
    session_id = (await client.post("/api/chat/sessions", headers=alice.headers, json={})).json()[
        "id"
    ]
    first = await client.post(
        f"/api/chat/sessions/{session_id}/messages",
        headers=alice.headers,
        json={"content": "What does cellular respiration release?"},
    )
    assert first.status_code == 200, first.text
    message = first.json()
    assert message["role"] == "assistant"
    assert "energy" in message["content"]
    assert message["citations"]
    second = await client.post(
        f"/api/chat/sessions/{session_id}/messages",
        headers=alice.headers,
        json={"content": "And which pigment is green?"},
    )
    assert "chlorophyll" in second.json()["content"]
    listed = (await client.get("/api/chat/sessions", headers=alice.headers)).json()
    assert session_id in [s["id"] for s in listed["items"]]
    detail = (await client.get(f"/api/chat/sessions/{session_id}", headers=alice.headers)).json()
    assert len(detail["messages"]) == 4


async def test_socratic_style_asks_before_telling(
    client: httpx.AsyncClient, alice: Account
) -> None:
    await ready_material(client, alice)
    session_id = (
        await client.post("/api/chat/sessions", headers=alice.headers, json={"style": "socratic"})
    ).json()["id"]
    reply = await client.post(
        f"/api/chat/sessions/{session_id}/messages",
        headers=alice.headers,
        json={"content": "What is stored in glucose?"},
    )
    content = reply.json()["content"]
    first_sentence_end = min(i for i in (content.find("?"), content.find(".")) if i >= 0)
    assert content[first_sentence_end] == "?"


async def test_sessions_are_private_and_validated(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    material_id = await ready_material(client, alice)
    bad = await client.post(
        "/api/chat/sessions", headers=bob.headers, json={"material_ids": [material_id]}
    )
    assert_error(bad, 404, "not_found")  # another's id answers 404, as in a path
    session_id = (await client.post("/api/chat/sessions", headers=alice.headers, json={})).json()[
        "id"
    ]
    assert_error(await client.get(f"/api/chat/sessions/{session_id}", headers=bob.headers), 404)
    assert_error(await client.delete(f"/api/chat/sessions/{session_id}", headers=bob.headers), 404)
    stolen = await client.post(
        f"/api/chat/sessions/{session_id}/messages", headers=bob.headers, json={"content": "hi"}
    )
    assert_error(stolen, 404)
    empty = await client.post(
        f"/api/chat/sessions/{session_id}/messages", headers=alice.headers, json={"content": ""}
    )
    assert_error(empty, 422)
    assert_error(
        await client.post("/api/chat/sessions", headers=alice.headers, json={"style": "rude"}), 422
    )
    deleted = await client.delete(f"/api/chat/sessions/{session_id}", headers=alice.headers)
    assert deleted.status_code == 204
    assert_error(await client.get(f"/api/chat/sessions/{session_id}", headers=alice.headers), 404)


async def test_bob_never_gets_alices_passages(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    await ready_material(client, alice)
    session_id = (await client.post("/api/chat/sessions", headers=bob.headers, json={})).json()[
        "id"
    ]
    reply = await client.post(
        f"/api/chat/sessions/{session_id}/messages",
        headers=bob.headers,
        json={"content": "Where does photosynthesis take place?"},
    )
    assert reply.json()["citations"] == []
    assert "chloroplasts" not in reply.json()["content"]
