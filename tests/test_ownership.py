"""BOLA, as a table: every route that takes an id, called by another user with the id of
something Alice owns, answers 404 — and changes nothing. The table is checked against the
OpenAPI document, so a new route with an id fails here until it is listed."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tests.conftest import Account, assert_error, wait_job
from tests.test_flashcards import ready_material

pytestmark = pytest.mark.usefixtures("worker")

# (method, path) → a body that passes validation, so the ownership check is what answers.
BODIES: dict[tuple[str, str], Any] = {
    ("post", "/api/chat/sessions/{session_id}/messages"): {"content": "What is osmosis?"},
    ("patch", "/api/chat/sessions/{session_id}"): {"title": "Mine now"},
    ("post", "/api/decks/{deck_id}/cards"): {"front": "Q", "back": "A"},
    ("patch", "/api/cards/{card_id}"): {"front": "Q"},
    ("post", "/api/cards/{card_id}/reviews"): {"rating": "good"},
    ("post", "/api/quizzes/{quiz_id}/attempts"): {
        "answers": [{"question_id": "{question_id}", "answer": "x"}]
    },
    ("post", "/api/learning-paths/{path_id}/modules/{module_id}/complete"): None,
}
QUERIES: dict[str, str] = {"/api/decks/{deck_id}/export": "?format=csv"}
# Routes whose id is not a per-user resource (none today); listed with the reason.
EXEMPT: dict[tuple[str, str], str] = {}


async def alices_things(client: httpx.AsyncClient, alice: Account) -> dict[str, str]:
    h = alice.headers
    material_id = await ready_material(client, alice)
    chat = (await client.post("/api/chat/sessions", headers=h, json={"title": "c"})).json()
    deck = (await client.post("/api/decks", headers=h, json={"title": "d"})).json()
    card = (
        await client.post(
            f"/api/decks/{deck['id']}/cards", headers=h, json={"front": "f", "back": "b"}
        )
    ).json()
    quiz = await client.post(
        "/api/quizzes", headers=h, json={"material_ids": [material_id], "num_questions": 2}
    )
    job = await wait_job(client, alice, quiz.json()["job"]["id"])
    assert job["status"] == "succeeded", job
    quiz_id = quiz.json()["quiz"]["id"]
    question_id = (await client.get(f"/api/quizzes/{quiz_id}", headers=h)).json()["questions"][0][
        "id"
    ]
    key = (await client.post("/api/auth/api-keys", headers=h, json={"name": "k"})).json()
    ids = {
        "material_id": material_id,
        "session_id": chat["id"],
        "deck_id": deck["id"],
        "card_id": card["id"],
        "quiz_id": quiz_id,
        "question_id": question_id,
        "job_id": job["id"],
        "key_id": key["id"],
    }
    path = await client.post(
        "/api/learning-paths",
        headers=h,
        json={"goal": "Learn cells", "material_ids": [material_id]},
    )
    if path.status_code == 202:
        await wait_job(client, alice, path.json()["job"]["id"])
        detail = (
            await client.get(f"/api/learning-paths/{path.json()['path']['id']}", headers=h)
        ).json()
        ids["path_id"] = detail["id"]
        ids["module_id"] = detail["modules"][0]["id"]
    return ids


def fill(template: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        template = template.replace("{" + name + "}", value)
    assert not re.search(r"\{[a-z_]+\}", template), f"no id for {template}"
    return template


def routes_with_ids(spec: dict[str, Any]) -> list[tuple[str, str, bool]]:
    found = []
    for path, operations in spec["paths"].items():
        if "{" not in path:
            continue
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("required", False)
            found.append((method, path, body))
    return found


async def test_every_route_with_an_id_answers_404_to_another_user(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    ids = await alices_things(client, alice)
    spec = (await client.get("/openapi.json")).json()
    routes = routes_with_ids(spec)
    assert len(routes) >= 20
    checked = []
    for method, path, needs_body in routes:
        if (method, path) in EXEMPT:
            continue
        if needs_body:
            assert (method, path) in BODIES, f"add a valid body for {method.upper()} {path}"
        body = BODIES.get((method, path))
        json_body = None if body is None else json.loads(fill(json.dumps(body), ids))
        url = fill(path, ids) + QUERIES.get(path, "")
        response = await client.request(method, url, headers=bob.headers, json=json_body)
        assert_error(response, 404)
        checked.append(f"{method.upper()} {path}")

    # Nothing changed for Alice: her things are all still there and hers.
    h = alice.headers
    for url in (
        f"/api/materials/{ids['material_id']}",
        f"/api/chat/sessions/{ids['session_id']}",
        f"/api/decks/{ids['deck_id']}",
        f"/api/quizzes/{ids['quiz_id']}",
        f"/api/jobs/{ids['job_id']}",
    ):
        assert (await client.get(url, headers=h)).status_code == 200, url
    cards = (await client.get(f"/api/decks/{ids['deck_id']}/cards", headers=h)).json()["items"]
    assert [c["front"] for c in cards] == ["f"] and cards[0]["state"] == "new"
    keys = (await client.get("/api/auth/api-keys", headers=h)).json()
    assert ids["key_id"] in {k["id"] for k in (keys["items"] if isinstance(keys, dict) else keys)}
    assert len(checked) >= 20, checked
