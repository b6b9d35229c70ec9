"""Progress through HTTP: study events as they happen (reviews, quiz attempts, chat),
streaks and a daily history in the learner's time zone, mastery and predicted recall per
topic — now and on an exam date."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import Account, assert_error, wait_job
from tests.test_flashcards import ready_material
from tests.test_quizzes import attempt, make_quiz

pytestmark = pytest.mark.usefixtures("worker")


async def progress(client: httpx.AsyncClient, account: Account, query: str = "") -> Any:
    response = await client.get(f"/api/progress{query}", headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def generated_deck(
    client: httpx.AsyncClient, account: Account, material_id: str
) -> list[Any]:
    deck = await client.post(
        "/api/decks",
        headers=account.headers,
        json={"title": "Bio", "material_ids": [material_id], "generate": {"count": 10}},
    )
    assert (await wait_job(client, account, deck.json()["job"]["id"]))["status"] == "succeeded"
    listed = await client.get(
        f"/api/decks/{deck.json()['deck']['id']}/cards", headers=account.headers
    )
    return list(listed.json()["items"])


async def test_a_new_learner_starts_at_zero(client: httpx.AsyncClient, alice: Account) -> None:
    empty = await progress(client, alice)
    assert empty["streak_days"] == 0 and empty["study_minutes"] == 0
    assert empty["cards_reviewed"] == 0 and empty["quiz_accuracy"] is None
    assert empty["topics"] == [] and empty["timezone"] == "UTC"
    history = (await client.get("/api/progress/history?days=7", headers=alice.headers)).json()
    assert len(history["days"]) == 7 and all(d["study_minutes"] == 0 for d in history["days"])


async def test_reviews_move_predicted_recall_and_fill_streak_and_history(
    client: httpx.AsyncClient, alice: Account
) -> None:
    material_id = await ready_material(client, alice)
    cards = await generated_deck(client, alice, material_id)
    card = cards[0]
    topic = card["topic"]
    before = {t["topic"]: t for t in (await progress(client, alice))["topics"]}
    assert before[topic]["predicted_recall"] == 0  # never reviewed
    assert before[topic]["mastery"] == 0 and before[topic]["cards"] >= 1

    now = dt.datetime.now(dt.UTC)
    for days_ago, rating, ms in ((2, "good", 6000), (1, "good", 9000), (0, "easy", 3000)):
        at = (now - dt.timedelta(days=days_ago)).isoformat()
        body = {"rating": rating, "duration_ms": ms, "reviewed_at": at}
        reviewed = await client.post(
            f"/api/cards/{card['id']}/reviews", headers=alice.headers, json=body
        )
        assert reviewed.status_code == 201, reviewed.text
    after = await progress(client, alice)
    topics = {t["topic"]: t for t in after["topics"]}
    assert topics[topic]["predicted_recall"] > 0 and topics[topic]["mastery"] > 0
    assert after["streak_days"] == 3 and after["cards_reviewed"] == 3
    assert after["study_minutes"] == pytest.approx(0.3, abs=0.02)  # 18 s measured in all
    assert after["cards_due"] == len(cards) - 1

    exam = (dt.date.today() + dt.timedelta(days=120)).isoformat()
    later = {t["topic"]: t for t in (await progress(client, alice, f"?exam_date={exam}"))["topics"]}
    assert later[topic]["predicted_recall_on_exam"] < later[topic]["predicted_recall"]

    history = (await client.get("/api/progress/history?days=5", headers=alice.headers)).json()
    days = history["days"]
    assert [d["date"] for d in days] == [
        (now.date() - dt.timedelta(days=n)).isoformat() for n in range(4, -1, -1)
    ]
    assert [d["cards_reviewed"] for d in days] == [0, 0, 1, 1, 1]
    assert days[2]["study_minutes"] == 0.1 and days[3]["study_minutes"] == 0.15


async def test_quiz_attempts_and_chat_are_study_events(
    client: httpx.AsyncClient, alice: Account
) -> None:
    material_id = await ready_material(client, alice)
    quiz = await make_quiz(client, alice, material_id, num_questions=4)
    questions = quiz["questions"]
    graded = (
        await attempt(
            client, alice, quiz["id"], [{"question_id": q["id"], "answer": "?"} for q in questions]
        )
    ).json()
    state = await progress(client, alice)
    assert state["questions_answered"] == 4 and state["quiz_accuracy"] == 0
    weakest = state["topics"][0]
    assert weakest["mastery"] == 0 and weakest["questions_answered"] >= 1
    assert {r["topic"] for r in graded["results"]} <= {t["topic"] for t in state["topics"]}

    chat = await client.post("/api/chat/sessions", headers=alice.headers, json={"title": "Q"})
    sent = await client.post(
        f"/api/chat/sessions/{chat.json()['id']}/messages",
        headers={**alice.headers, "Accept": "text/event-stream"},
        json={"content": "What is osmosis?"},
    )
    assert sent.status_code == 200
    today = (await client.get("/api/progress/history?days=1", headers=alice.headers)).json()["days"]
    assert today[0]["questions_answered"] == 4 and today[0]["chat_questions"] == 1
    assert today[0]["study_minutes"] == pytest.approx(4 * 0.75 + 1.0)


async def test_time_zone_setting_moves_the_day(client: httpx.AsyncClient, alice: Account) -> None:
    zone = "Pacific/Kiritimati"  # UTC+14: often already tomorrow
    updated = await client.patch("/api/me/settings", headers=alice.headers, json={"timezone": zone})
    assert updated.status_code == 200 and updated.json()["timezone"] == zone
    assert updated.json()["desired_retention"] == 0.9  # untouched
    state = await progress(client, alice)
    assert state["timezone"] == zone
    assert state["today"] == dt.datetime.now(ZoneInfo(zone)).date().isoformat()
    assert_error(
        await client.patch(
            "/api/me/settings", headers=alice.headers, json={"timezone": "Mars/Base"}
        ),
        422,
    )


async def test_progress_validation(client: httpx.AsyncClient, alice: Account) -> None:
    for query in (
        "/history?days=0",
        "/history?days=400",
        "/history?days=x",
        "?exam_date=soon",
        "?exam_date=0",
    ):
        assert_error(await client.get(f"/api/progress{query}", headers=alice.headers), 422)
    assert_error(await client.get("/api/progress"), 401)
