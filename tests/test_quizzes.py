"""Quizzes through HTTP with the real worker: offline generation from material, answers
hidden until an attempt, grading (short answers by meaning), source citations, a wrong
answer rescheduling the flashcards on the same passage, validation and ownership; and a
generative provider (the fake Gemini) writing schema-checked JSON, retried when invalid."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from shared.materials.passages import StudyChunk
from shared.quizzes.grading import choice, short_answer_matches, truth
from shared.quizzes.offline import build_questions
from tests.conftest import Account, assert_error, wait_job
from tests.fakes.gemini import FakeGemini
from tests.test_flashcards import NOTES, ready_material, review

pytestmark = pytest.mark.usefixtures("worker")

ALL_TYPES = ["multiple_choice", "true_false", "short_answer"]
MORE_NOTES = (
    NOTES
    + """
# Genetics

Chromosomes carry the genes that an organism inherits from its parents.
A mutation is a change in the sequence of nucleotides in a strand of DNA.
Ribosomes assemble proteins by reading the instructions carried by messenger RNA.
"""
)


async def make_quiz(
    client: httpx.AsyncClient, account: Account, material_id: str, **body: Any
) -> dict[str, Any]:
    payload = {"material_ids": [material_id], "num_questions": 6, **body}
    created = await client.post("/api/quizzes", headers=account.headers, json=payload)
    assert created.status_code == 202, created.text
    job = await wait_job(client, account, created.json()["job"]["id"])
    quiz = await client.get(f"/api/quizzes/{created.json()['quiz']['id']}", headers=account.headers)
    return {"job": job, **quiz.json()}


async def attempt(
    client: httpx.AsyncClient, account: Account, quiz_id: str, answers: list[dict[str, Any]]
) -> httpx.Response:
    return await client.post(
        f"/api/quizzes/{quiz_id}/attempts", headers=account.headers, json={"answers": answers}
    )


def right_answer(question: dict[str, Any], expected: str) -> Any:
    """How a learner would give the expected answer: a letter, a bool, their own words."""
    if question["type"] == "multiple_choice":
        return "ABCDEF"[question["options"].index(expected)]
    if question["type"] == "true_false":
        return expected == "true"
    return f"the {expected.upper()}"  # graded by meaning: case and articles do not matter


def wrong_answer(question: dict[str, Any], expected: str) -> Any:
    if question["type"] == "multiple_choice":
        return next(o for o in question["options"] if o != expected)
    if question["type"] == "true_false":
        return "false" if expected == "true" else "true"
    return "photons and protons and neutrons and quarks"


async def test_offline_quiz_hides_answers_then_grades_an_attempt(
    client: httpx.AsyncClient, alice: Account
) -> None:
    material_id = await ready_material(client, alice, MORE_NOTES)
    quiz = await make_quiz(client, alice, material_id, question_types=ALL_TYPES)
    assert quiz["job"]["status"] == "succeeded", quiz["job"]
    assert quiz["status"] == "ready" and quiz["title"] == "Quiz: Biology"
    questions = quiz["questions"]
    assert len(questions) == 6
    assert {q["type"] for q in questions} == set(ALL_TYPES)
    for q in questions:
        assert "answer" not in q and "explanation" not in q and q["topic"]
        if q["type"] == "multiple_choice":
            assert len(q["options"]) == 4 and len(set(q["options"])) == 4
        else:
            assert q["options"] is None

    # Nothing answered but the first question: everything else counts as wrong.
    first = await attempt(
        client, alice, quiz["id"], [{"question_id": questions[0]["id"], "answer": "zzz"}]
    )
    assert first.status_code == 201, first.text
    graded = first.json()
    assert graded["total"] == 6 and graded["correct"] == 0 and graded["score"] == 0
    results = {r["question_id"]: r for r in graded["results"]}
    for r in graded["results"]:
        assert r["expected_answer"] and r["explanation"].startswith("The material says")
        assert r["source"]["material_id"] == material_id and r["source"]["title"] == "Biology"
        assert r["source"]["chunk_id"]
    assert results[questions[1]["id"]]["your_answer"] is None

    answers = [
        {"question_id": q["id"], "answer": right_answer(q, results[q["id"]]["expected_answer"])}
        for q in questions
    ]
    second = (await attempt(client, alice, quiz["id"], answers)).json()
    assert second["correct"] == 6 and second["score"] == 1.0, second

    half = [
        {
            "question_id": q["id"],
            "answer": (right_answer if n % 2 else wrong_answer)(
                q, results[q["id"]]["expected_answer"]
            ),
        }
        for n, q in enumerate(questions)
    ]
    third = (await attempt(client, alice, quiz["id"], half)).json()
    assert third["correct"] == 3 and third["score"] == 0.5
    listed = (await client.get(f"/api/quizzes/{quiz['id']}/attempts", headers=alice.headers)).json()
    assert [a["id"] for a in listed] == [third["id"], second["id"], graded["id"]]
    page = (await client.get("/api/quizzes", headers=alice.headers)).json()
    assert [q["id"] for q in page["items"]] == [quiz["id"]]


async def test_a_wrong_answer_is_an_again_review_of_the_cards_on_that_passage(
    client: httpx.AsyncClient, alice: Account
) -> None:
    material_id = await ready_material(client, alice)
    deck = await client.post(
        "/api/decks",
        headers=alice.headers,
        json={"title": "Bio", "material_ids": [material_id], "generate": {"count": 20}},
    )
    assert (await wait_job(client, alice, deck.json()["job"]["id"]))["status"] == "succeeded"
    deck_id = deck.json()["deck"]["id"]
    cards = (await client.get(f"/api/decks/{deck_id}/cards", headers=alice.headers)).json()["items"]
    assert cards and all(c["topic"] for c in cards)
    for card in cards:  # learn every card well: due days from now
        for rating in ("good", "easy"):
            assert (await review(client, alice, card["id"], rating)).status_code == 201
    due = (await client.get("/api/reviews/due", headers=alice.headers)).json()
    assert due["due_count"] == 0

    quiz = await make_quiz(client, alice, material_id, question_types=["short_answer"])
    answers = [{"question_id": q["id"], "answer": "no idea"} for q in quiz["questions"]]
    graded = (await attempt(client, alice, quiz["id"], answers)).json()
    assert graded["correct"] == 0 and graded["cards_to_review"] > 0

    missed_chunks = {r["source"]["chunk_id"] for r in graded["results"]}
    missed_topics = {r["topic"].lower() for r in graded["results"]}
    related = [
        c for c in cards if c["chunk_id"] in missed_chunks or c["topic"].lower() in missed_topics
    ]
    assert len(related) == graded["cards_to_review"]
    due = (await client.get("/api/reviews/due?limit=100", headers=alice.headers)).json()
    # `again` puts a card back into (re)learning within minutes; not due *this* second.
    after = {
        c["id"]: c
        for c in (
            await client.get(f"/api/decks/{deck_id}/cards?limit=100", headers=alice.headers)
        ).json()["items"]
    }
    for card in related:
        assert after[card["id"]]["state"] == "relearning"
        reviews = (
            await client.get(f"/api/cards/{card['id']}/reviews", headers=alice.headers)
        ).json()
        assert [r["rating"] for r in reviews][-1] == "again"
    untouched = [c for c in cards if c["id"] not in {r["id"] for r in related}]
    assert all(after[c["id"]]["state"] == "review" for c in untouched)
    assert due["due_count"] <= len(related)


async def test_quiz_validation_answers_422(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    material_id = await ready_material(client, alice)
    h = alice.headers
    bad_bodies: list[dict[str, Any]] = [
        {"num_questions": 0},
        {"num_questions": 51},
        {"question_types": []},
        {"question_types": ["essay"]},
        {"difficulty": "impossible"},
        {"material_ids": "abc"},
        {"unexpected": 1},
    ]
    for body in bad_bodies:
        assert_error(
            await client.post(
                "/api/quizzes", headers=h, json={"material_ids": [material_id], **body}
            ),
            422,
        )
    bobs = await ready_material(client, bob)
    response = await client.post("/api/quizzes", headers=h, json={"material_ids": [bobs]})
    assert_error(response, 404, "not_found")  # another's id answers 404, as in a path

    quiz = await make_quiz(client, alice, material_id, num_questions=2)
    qid = quiz["questions"][0]["id"]
    for answers in (
        [],
        [{"question_id": "not-a-question", "answer": "x"}],
        [{"question_id": qid, "answer": "x"}, {"question_id": qid, "answer": "y"}],
        [{"question_id": qid, "answer": "x" * 2001}],
        [{"question_id": qid}],
    ):
        assert_error(await attempt(client, alice, quiz["id"], answers), 422)
    assert_error(await client.post(f"/api/quizzes/{quiz['id']}/attempts", headers=h, json={}), 422)


async def test_another_users_quiz_answers_404(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    material_id = await ready_material(client, alice)
    quiz = await make_quiz(client, alice, material_id, num_questions=2)
    answer = [{"question_id": quiz["questions"][0]["id"], "answer": "x"}]
    for response in (
        await client.get(f"/api/quizzes/{quiz['id']}", headers=bob.headers),
        await client.get(f"/api/quizzes/{quiz['id']}/attempts", headers=bob.headers),
        await attempt(client, bob, quiz["id"], answer),
        await client.delete(f"/api/quizzes/{quiz['id']}", headers=bob.headers),
    ):
        assert_error(response, 404)
    assert (await client.get("/api/quizzes", headers=bob.headers)).json()["items"] == []
    assert (
        await client.delete(f"/api/quizzes/{quiz['id']}", headers=alice.headers)
    ).status_code == 204
    assert_error(await client.get(f"/api/quizzes/{quiz['id']}", headers=alice.headers), 404)


async def test_material_without_sentences_fails_the_quiz_clearly(
    client: httpx.AsyncClient, alice: Account
) -> None:
    material_id = await ready_material(client, alice, "Cells\n\nATP\n\nDNA")
    quiz = await make_quiz(client, alice, material_id)
    assert quiz["job"]["status"] == "failed"
    assert quiz["status"] == "failed" and "no sentences" in quiz["error"]
    response = await attempt(client, alice, quiz["id"], [{"question_id": "x", "answer": "y"}])
    assert_error(response, 409)


# ---------------------------------------------------------------- offline generator, grading

SOURCES = [
    StudyChunk("c1", "m1", "Biology", None, NOTES.split("# Photosynthesis")[0]),
    StudyChunk(
        "c2", "m1", "Biology", None, "# Photosynthesis" + NOTES.split("# Photosynthesis")[1]
    ),
]


def test_offline_questions_are_deterministic_and_well_formed() -> None:
    first = build_questions(SOURCES, 6, ALL_TYPES, "medium")
    assert first == build_questions(SOURCES, 6, ALL_TYPES, "medium")
    assert [q.kind for q in first[:3]] == ALL_TYPES
    for q in first:
        assert q.chunk_id in {"c1", "c2"} and q.topic
        if q.kind == "multiple_choice":
            assert q.options is not None and q.answer in q.options and len(set(q.options)) == 4
            assert "_____" in q.prompt or q.prompt.startswith("Which term")
        if q.kind == "true_false":
            assert q.answer in {"true", "false"}
    assert len({q.prompt for q in first}) == len(first)
    easy = build_questions(SOURCES, 3, ["short_answer"], "easy")
    assert all(q.prompt.startswith("Which term") for q in easy)  # definitions first


def test_short_answers_are_graded_by_meaning() -> None:
    assert short_answer_matches("the Mitochondrion", "mitochondria")
    assert short_answer_matches("chlorophyl", "chlorophyll")  # a typo
    assert short_answer_matches(
        "light energy into chemical energy", "converts light energy to chemical energy"
    )
    assert not short_answer_matches("glucose", "chlorophyll")
    assert not short_answer_matches("", "chlorophyll")
    assert not short_answer_matches(
        "osmosis enzymes chlorophyll glucose membrane mitochondria respiration", "chlorophyll"
    )
    assert choice("b", ["x", "y", "z"]) == "y" and choice(" Z ", ["x", "y", "z"]) == "z"
    assert choice("w", ["x", "y", "z"]) is None
    assert truth(True) is True and truth("False") is False and truth("maybe") is None


# ---------------------------------------------------------------- a generative provider

GOOD_QUIZ = {
    "questions": [
        {
            "type": "multiple_choice",
            "question": "Where does photosynthesis take place?",
            "options": ["Chloroplasts", "Mitochondria", "Nucleus", "Ribosomes"],
            "answer": "Chloroplasts",
            "explanation": "Passage 1 says it takes place in the chloroplasts.",
            "topic": "Photosynthesis",
            "passage": 1,
        },
        {
            "type": "short_answer",
            "question": "What does photosynthesis convert light energy into?",
            "answer": "chemical energy",
            "explanation": "It converts light energy into chemical energy.",
            "topic": "Photosynthesis",
            "passage": 1,
        },
        {  # unusable: the answer is not among the options; dropped, the rest kept
            "type": "multiple_choice",
            "question": "Which pigment is green?",
            "options": ["Carotene", "Melanin", "Haem"],
            "answer": "Chlorophyll",
            "explanation": "x",
            "topic": "Pigments",
            "passage": 1,
        },
    ]
}


@pytest.fixture(scope="module")
def gemini() -> Any:
    with FakeGemini() as fake:
        yield fake


async def test_gemini_writes_schema_checked_questions_retried_when_invalid(
    make_stack: Any, gemini: FakeGemini
) -> None:
    from tests.conftest import sign_up

    async with make_stack(**gemini.stack_settings()) as stack:
        stack.workers.start()
        client = stack.client
        account = await sign_up(client)
        material_id = await ready_material(client, account)

        gemini.replies.extend(
            ["not json at all", json.dumps({"questions": "nope"}), json.dumps(GOOD_QUIZ)]
        )
        quiz = await make_quiz(
            client,
            account,
            material_id,
            num_questions=3,
            question_types=["multiple_choice", "short_answer"],
        )
        assert quiz["job"]["status"] == "succeeded", quiz["job"]
        assert [q["question"] for q in quiz["questions"]] == [
            "Where does photosynthesis take place?",
            "What does photosynthesis convert light energy into?",
        ]
        generate_calls = [
            body for path, body in gemini.requests if path.endswith(":generateContent")
        ]
        assert len(generate_calls) == 3
        config = generate_calls[-1]["generationConfig"]
        assert config["responseMimeType"] == "application/json"
        assert config["responseJsonSchema"]["required"] == ["questions"]
        assert "Passages:" in generate_calls[-1]["contents"][0]["parts"][0]["text"]

        # A short answer the lenient match rejects goes to the model, which accepts it.
        mc, short = quiz["questions"]
        gemini.replies.append(json.dumps({"verdicts": [{"index": 0, "correct": True}]}))
        graded = (
            await attempt(
                client,
                account,
                quiz["id"],
                [
                    {"question_id": mc["id"], "answer": "Chloroplasts"},
                    {"question_id": short["id"], "answer": "stored sugar power"},
                ],
            )
        ).json()
        assert graded["correct"] == 2, graded
        assert "stored sugar power" in json.dumps(gemini.requests[-1][1])

        gemini.replies.extend(["[]"] * 3)
        failed = await make_quiz(client, account, material_id, num_questions=3)
        assert failed["status"] == "failed" and failed["job"]["status"] == "failed"
        assert "could not be used after 3 tries" in failed["error"]
