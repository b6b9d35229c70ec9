"""Learning paths through HTTP with the real worker: offline modules clustered from a
material's sections in reading order, statuses and mastery from quiz answers and card
reviews, `next` (due cards, weak topic, modules), completing modules, the exam plan,
validation and ownership; and a generative provider (the fake Gemini) planning modules as
schema-checked JSON, retried when invalid."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from shared.materials.passages import StudyChunk
from shared.paths import guidance
from shared.paths.models import LearningPath, PathModule
from shared.paths.offline import build_modules
from shared.paths.service import next_exam_date
from shared.progress.mastery import Evidence
from shared.progress.models import StudyEvent
from shared.resources import Resources
from tests.conftest import Account, assert_error, sign_up, wait_job
from tests.fakes.gemini import FakeGemini
from tests.test_flashcards import NOTES, ready_material, review
from tests.test_quizzes import MORE_NOTES, attempt, make_quiz, right_answer

pytestmark = pytest.mark.usefixtures("worker")


async def make_path(
    client: httpx.AsyncClient, account: Account, material_id: str | None, **body: Any
) -> dict[str, Any]:
    payload = {"goal": "Pass my biology exam", **body}
    if material_id is not None:
        payload["material_ids"] = [material_id]
    created = await client.post("/api/learning-paths", headers=account.headers, json=payload)
    assert created.status_code == 202, created.text
    job = await wait_job(client, account, created.json()["job"]["id"])
    return {"job": job, **await get_path(client, account, created.json()["path"]["id"])}


async def get_path(client: httpx.AsyncClient, account: Account, path_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/learning-paths/{path_id}", headers=account.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def next_step(client: httpx.AsyncClient, account: Account, path_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/learning-paths/{path_id}/next", headers=account.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def chunk_ids(client: httpx.AsyncClient, account: Account, material_id: str) -> list[str]:
    url = f"/api/materials/{material_id}/chunks?limit=200"
    items = (await client.get(url, headers=account.headers)).json()["items"]
    return [c["id"] for c in sorted(items, key=lambda c: c["position"])]


async def test_offline_path_has_ordered_modules_citing_the_material(
    client: httpx.AsyncClient, alice: Account
) -> None:
    material_id = await ready_material(client, alice, MORE_NOTES)
    path = await make_path(client, alice, material_id, level="beginner", minutes_per_day=20)
    assert path["job"]["status"] == "succeeded", path["job"]
    assert path["status"] == "ready" and path["title"] == "Pass my biology exam"
    modules = path["modules"]
    assert [m["title"] for m in modules] == ["Cells", "Photosynthesis", "Genetics"]
    assert [m["position"] for m in modules] == [1, 2, 3]
    assert [c for m in modules for c in m["chunk_ids"]] == await chunk_ids(
        client, alice, material_id
    )
    assert "Define the mitochondrion" in modules[0]["objectives"]
    for m in modules:
        assert m["objectives"] and m["topics"] and m["minutes"] >= 5
        assert m["material_ids"] == [material_id] and m["completed_at"] is None
        assert m["mastery"] == 0 and m["quiz_accuracy"] is None
    assert [m["status"] for m in modules] == ["available", "locked", "locked"]

    step = await next_step(client, alice, path["id"])
    assert step["action"] == "start_module" and step["module_id"] == modules[0]["id"]
    assert step["plan"] is None
    page = (await client.get("/api/learning-paths?limit=1", headers=alice.headers)).json()
    assert [p["id"] for p in page["items"]] == [path["id"]] and "modules" not in page["items"][0]


async def test_quiz_answers_and_reviews_drive_next_and_mastery(
    client: httpx.AsyncClient, alice: Account
) -> None:
    material_id = await ready_material(client, alice, MORE_NOTES)
    path = await make_path(client, alice, material_id)
    first = path["modules"][0]

    quiz = await make_quiz(client, alice, material_id, question_types=["short_answer"])
    wrong = [{"question_id": q["id"], "answer": "no idea"} for q in quiz["questions"]]
    graded = (await attempt(client, alice, quiz["id"], wrong)).json()
    assert graded["correct"] == 0
    # The weakest topic of the earliest module: a wrong answer on the first passage.
    step = await next_step(client, alice, path["id"])
    assert step["action"] == "requiz_topic", step
    assert step["module_id"] == first["id"] and step["accuracy"] == 0
    missed = {
        r["topic"] for r in graded["results"] if r["source"]["chunk_id"] in first["chunk_ids"]
    }
    assert step["topic"] in missed and step["topic"] in step["reason"]
    studied = await get_path(client, alice, path["id"])
    assert studied["modules"][0]["status"] == "in_progress"
    assert studied["modules"][0]["quiz_accuracy"] == 0

    # New cards on the path are due now: reviewing them comes first.
    deck = await client.post(
        "/api/decks",
        headers=alice.headers,
        json={"title": "Bio", "material_ids": [material_id], "generate": {"count": 20}},
    )
    assert (await wait_job(client, alice, deck.json()["job"]["id"]))["status"] == "succeeded"
    url = f"/api/decks/{deck.json()['deck']['id']}/cards?limit=100"
    cards = (await client.get(url, headers=alice.headers)).json()["items"]
    step = await next_step(client, alice, path["id"])
    assert step["action"] == "review_cards" and step["cards_due"] == len(cards), step
    for card in cards:
        for rating in ("good", "easy"):
            assert (await review(client, alice, card["id"], rating)).status_code == 201
    assert (await next_step(client, alice, path["id"]))["action"] == "requiz_topic"

    expected = {r["question_id"]: r["expected_answer"] for r in graded["results"]}
    right = [
        {"question_id": q["id"], "answer": right_answer(q, expected[q["id"]])}
        for q in quiz["questions"]
    ]
    masteries = [studied["modules"][0]["mastery"]]
    for _ in range(3):
        assert (await attempt(client, alice, quiz["id"], right)).json()["score"] == 1.0
        masteries.append((await get_path(client, alice, path["id"]))["modules"][0]["mastery"])
    assert masteries == sorted(masteries) and masteries[-1] >= 0.8, masteries
    after = await get_path(client, alice, path["id"])
    assert after["modules"][0]["status"] == "mastered"
    assert after["modules"][1]["status"] != "locked"  # unlocked by the mastered module
    assert (await next_step(client, alice, path["id"]))["action"] != "requiz_topic"


async def test_completing_a_module_unlocks_the_next(
    client: httpx.AsyncClient, alice: Account, resources: Resources
) -> None:
    material_id = await ready_material(client, alice, MORE_NOTES)
    path = await make_path(client, alice, material_id)
    first, second, _ = path["modules"]
    url = f"/api/learning-paths/{path['id']}/modules/{first['id']}/complete"
    done = await client.post(url, headers=alice.headers)
    assert done.status_code == 200, done.text
    assert done.json()["completed_at"] and done.json()["status"] == "in_progress"
    again = await client.post(url, headers=alice.headers)
    assert again.json()["completed_at"] == done.json()["completed_at"]

    after = await get_path(client, alice, path["id"])
    assert [m["status"] for m in after["modules"]] == ["in_progress", "available", "locked"]
    step = await next_step(client, alice, path["id"])
    assert step["action"] == "start_module" and step["module_id"] == second["id"]
    async with resources.db.read_session() as session:
        recorded = await session.scalar(
            select(func.count())
            .select_from(StudyEvent)
            .where(StudyEvent.user_id == alice.user_id, StudyEvent.kind == "module_completed")
        )
    assert recorded == 1
    missing = f"/api/learning-paths/{path['id']}/modules/nope/complete"
    assert_error(await client.post(missing, headers=alice.headers), 404)


async def test_exam_date_gives_a_plan_that_fits_the_days_left(
    client: httpx.AsyncClient, alice: Account, resources: Resources
) -> None:
    material_id = await ready_material(client, alice, MORE_NOTES)
    today = datetime.now(UTC).date()
    exam = today + timedelta(days=3)
    path = await make_path(
        client, alice, material_id, exam_date=exam.isoformat(), minutes_per_day=5
    )
    plan = (await next_step(client, alice, path["id"]))["plan"]
    needed = sum(m["minutes"] for m in path["modules"])
    assert plan["exam_date"] == exam.isoformat() and plan["days_left"] == 3
    assert plan["minutes_needed"] == needed
    per_day = plan["minutes_per_day_needed"]
    assert per_day == -(-needed // 2) and plan["on_track"] is (per_day <= 5)
    days = plan["schedule"]
    assert days[-1] == {
        "date": (exam - timedelta(days=1)).isoformat(),
        "minutes": 5,
        "modules": [],
        "review": True,
    }
    study = days[:-1]
    assert all(today.isoformat() <= d["date"] < days[-1]["date"] for d in study)
    assert all(d["minutes"] <= max(5, per_day) for d in study)
    assert sum(m["minutes"] for d in study for m in d["modules"]) == needed
    order = [m["module_id"] for d in study for m in d["modules"]]
    assert list(dict.fromkeys(order)) == [m["id"] for m in path["modules"]]
    async with resources.db.read_session() as session:
        assert await next_exam_date(session, alice.user_id, today) == exam
        assert await next_exam_date(session, alice.user_id, exam + timedelta(days=1)) is None


async def test_path_validation_answers_422(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    material_id = await ready_material(client, alice)
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    for body in (
        {"goal": ""},
        {"goal": "   "},
        {"minutes_per_day": 4},
        {"minutes_per_day": 601},
        {"exam_date": yesterday},
        {"exam_date": "soon"},
        {"level": "expert"},
        {"unexpected": 1},
    ):
        payload = {"goal": "Learn", "material_ids": [material_id], **body}
        assert_error(
            await client.post("/api/learning-paths", headers=alice.headers, json=payload), 422
        )
    bobs = await ready_material(client, bob)
    payload = {"goal": "Learn", "material_ids": [bobs]}  # another's id answers 404, as in a path
    response = await client.post("/api/learning-paths", headers=alice.headers, json=payload)
    assert_error(response, 404, "not_found")


async def test_another_users_path_answers_404(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    material_id = await ready_material(client, alice)
    path = await make_path(client, alice, material_id)
    base = f"/api/learning-paths/{path['id']}"
    module = path["modules"][0]["id"]
    for response in (
        await client.get(base, headers=bob.headers),
        await client.get(f"{base}/next", headers=bob.headers),
        await client.post(f"{base}/modules/{module}/complete", headers=bob.headers),
        await client.delete(base, headers=bob.headers),
    ):
        assert_error(response, 404)
    assert (await client.get("/api/learning-paths", headers=bob.headers)).json()["items"] == []
    assert (await client.delete(base, headers=alice.headers)).status_code == 204
    assert_error(await client.get(base, headers=alice.headers), 404)


# ---------------------------------------------------------------- offline clustering, plan


def test_long_sections_split_at_the_budget_in_reading_order() -> None:
    sentence = "Mitochondria release energy from glucose during cellular respiration. "
    chunks = [StudyChunk(f"c{n}", "m1", "Bio", "Cells", sentence * 25) for n in range(6)]
    chunks.append(
        StudyChunk("c6", "m1", "Bio", None, "Enzymes are proteins that speed up reactions.")
    )
    modules = build_modules(chunks, "beginner", 5)  # a beginner's 5 minutes: 500 words
    assert modules == build_modules(chunks, "beginner", 5)
    assert [m.title for m in modules[:3]] == ["Cells", "Cells (part 2)", "Cells (part 3)"]
    assert [c for m in modules for c in m.chunk_ids] == [c.chunk_id for c in chunks]
    assert modules[-1].chunk_ids == ["c6"] and modules[-1].objectives == ["Define Enzymes"]
    assert len(modules) == 4 and all(m.minutes <= 5 for m in modules)
    bigger = build_modules(chunks, "advanced", 60)
    assert len(bigger) < len(modules)


def _module(n: int, minutes: int) -> PathModule:
    return PathModule(
        id=f"m{n}", position=n, title=f"M{n}", minutes=minutes, chunk_ids=[], topics=[]
    )


def test_plan_fits_the_remaining_modules_before_the_review_day() -> None:
    today = date(2026, 3, 1)
    path = LearningPath(minutes_per_day=30, exam_date=today + timedelta(days=4))
    states = [
        guidance.ModuleState(_module(1, 50), "mastered", Evidence()),
        guidance.ModuleState(_module(2, 50), "available", Evidence()),
        guidance.ModuleState(_module(3, 70), "locked", Evidence()),
    ]
    plan = guidance.plan(path, states, today)
    assert plan is not None and plan.minutes_needed == 120
    assert plan.minutes_per_day_needed == 40 and not plan.on_track
    assert [(d.date.day, d.minutes, d.review) for d in plan.schedule] == [
        (1, 40, False),
        (2, 40, False),
        (3, 40, False),
        (4, 30, True),
    ]
    assert [(m.module_id, m.minutes) for m in plan.schedule[1].modules] == [("m2", 10), ("m3", 30)]
    path.exam_date = today  # the exam is today: everything today, no review day
    same_day = guidance.plan(path, states, today)
    assert same_day is not None and [d.minutes for d in same_day.schedule] == [120]


# ---------------------------------------------------------------- a generative provider

GOOD_PATH = {
    "modules": [
        {
            "title": "Inside the cell",
            "objectives": ["Describe what mitochondria do", "Define osmosis"],
            "passages": [1],
            "minutes": 25,
            "topics": ["Cell biology"],
        },
        {
            "title": "Photosynthesis",
            "objectives": ["Explain how plants store light energy"],
            "passages": [2],
            "minutes": 20,
            "topics": ["Photosynthesis"],
        },
        {  # unusable: cites a passage that was not shown; dropped, the rest kept
            "title": "Genetics",
            "objectives": ["Explain DNA"],
            "passages": [99],
            "minutes": 10,
            "topics": [],
        },
    ]
}


@pytest.fixture(scope="module")
def gemini() -> Any:
    with FakeGemini() as fake:
        yield fake


async def test_gemini_plans_schema_checked_modules_retried_when_invalid(
    make_stack: Any, gemini: FakeGemini
) -> None:
    async with make_stack(**gemini.stack_settings()) as stack:
        stack.workers.start()
        client = stack.client
        account = await sign_up(client)
        material_id = await ready_material(client, account, NOTES)
        chunks = await chunk_ids(client, account, material_id)
        assert len(chunks) == 2

        gemini.replies.extend(
            ["not json at all", json.dumps({"modules": []}), json.dumps(GOOD_PATH)]
        )
        path = await make_path(client, account, material_id, level="advanced")
        assert path["job"]["status"] == "succeeded", path["job"]
        modules = path["modules"]
        assert [m["title"] for m in modules] == ["Inside the cell", "Photosynthesis"]
        assert [m["chunk_ids"] for m in modules] == [[chunks[0]], [chunks[1]]]
        assert [m["minutes"] for m in modules] == [25, 20]
        # The cited passage's own label (as offline quizzes and decks name it), then the model's.
        assert modules[0]["topics"][-1] == "Cell biology" and len(modules[0]["topics"]) == 2
        assert modules[1]["topics"] == ["Energy", "Photosynthesis"]
        calls = [body for p, body in gemini.requests if p.endswith(":generateContent")]
        assert len(calls) == 3
        config = calls[-1]["generationConfig"]
        assert config["responseMimeType"] == "application/json"
        assert config["responseJsonSchema"]["required"] == ["modules"]
        prompt = calls[-1]["contents"][0]["parts"][0]["text"]
        assert "Goal: Pass my biology exam" in prompt and "Level: advanced" in prompt

        gemini.replies.extend(["[]"] * 3)
        failed = await make_path(client, account, material_id)
        assert failed["status"] == "failed" and failed["job"]["status"] == "failed"
        assert "could not be used after 3 tries" in failed["error"]
