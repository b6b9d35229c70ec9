"""Flashcards through HTTP: decks and cards, FSRS reviews, the due queue, generation from
material by the real worker, CSV and Anki export, CSV import, ownership."""

from __future__ import annotations

import csv
import io
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.flashcards.generate import Passage, build_cards
from tests.conftest import Account, assert_error, wait_job

pytestmark = pytest.mark.usefixtures("worker")

NOTES = """# Cells

The mitochondrion is the organelle where cellular respiration releases energy from glucose.
Enzymes are proteins that speed up chemical reactions in the cell.
Osmosis refers to the movement of water across a semi-permeable membrane.

# Photosynthesis

Photosynthesis converts light energy into chemical energy stored in glucose.
It takes place in the chloroplasts, which contain the green pigment chlorophyll.
"""


async def make_deck(client: httpx.AsyncClient, account: Account, title: str = "Biology") -> str:
    response = await client.post("/api/decks", headers=account.headers, json={"title": title})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def add_card(
    client: httpx.AsyncClient, account: Account, deck_id: str, front: str = "Q", back: str = "A"
) -> dict[str, Any]:
    response = await client.post(
        f"/api/decks/{deck_id}/cards", headers=account.headers, json={"front": front, "back": back}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def review(
    client: httpx.AsyncClient, account: Account, card_id: str, rating: str, at: str | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"rating": rating, "duration_ms": 4200}
    if at is not None:
        body["reviewed_at"] = at
    return await client.post(f"/api/cards/{card_id}/reviews", headers=account.headers, json=body)


async def ready_material(client: httpx.AsyncClient, account: Account, text: str = NOTES) -> str:
    created = await client.post(
        "/api/materials/text", headers=account.headers, json={"title": "Biology", "text": text}
    )
    assert created.status_code == 202, created.text
    job = await wait_job(client, account, created.json()["job"]["id"])
    assert job["status"] == "succeeded", job
    return str(created.json()["material"]["id"])


async def test_deck_and_card_crud(client: httpx.AsyncClient, alice: Account) -> None:
    deck_id = await make_deck(client, alice)
    listed = (await client.get("/api/decks", headers=alice.headers)).json()
    assert [d["id"] for d in listed["items"]] == [deck_id]
    card = await add_card(client, alice, deck_id, "What is ATP?", "The energy currency.")
    assert card["state"] == "new" and card["deck_id"] == deck_id and card["chunk_id"] is None
    await add_card(client, alice, deck_id)
    detail = (await client.get(f"/api/decks/{deck_id}", headers=alice.headers)).json()
    assert detail["card_count"] == 2 and detail["due_count"] == 2

    patched = await client.patch(
        f"/api/cards/{card['id']}", headers=alice.headers, json={"back": "Adenosine triphosphate"}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["front"] == "What is ATP?"
    assert patched.json()["back"] == "Adenosine triphosphate"
    page = (await client.get(f"/api/decks/{deck_id}/cards?limit=1", headers=alice.headers)).json()
    assert [c["id"] for c in page["items"]] == [card["id"]] and page["next_cursor"]
    rest = await client.get(
        f"/api/decks/{deck_id}/cards?cursor={page['next_cursor']}", headers=alice.headers
    )
    assert len(rest.json()["items"]) == 1 and rest.json()["next_cursor"] is None

    assert_error(
        await client.post(
            f"/api/decks/{deck_id}/cards", headers=alice.headers, json={"front": " ", "back": "x"}
        ),
        422,
    )
    deleted = await client.delete(f"/api/cards/{card['id']}", headers=alice.headers)
    assert deleted.status_code == 204
    assert_error(
        await client.patch(f"/api/cards/{card['id']}", headers=alice.headers, json={}), 404
    )
    assert (await client.delete(f"/api/decks/{deck_id}", headers=alice.headers)).status_code == 204
    assert_error(await client.get(f"/api/decks/{deck_id}", headers=alice.headers), 404)
    assert_error(await client.get(f"/api/decks/{deck_id}/cards", headers=alice.headers), 404)


async def test_another_users_deck_and_card_answer_404(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    deck_id = await make_deck(client, alice)
    card_id = (await add_card(client, alice, deck_id))["id"]
    h = bob.headers
    for response in (
        await client.get(f"/api/decks/{deck_id}", headers=h),
        await client.get(f"/api/decks/{deck_id}/cards", headers=h),
        await client.post(
            f"/api/decks/{deck_id}/cards", headers=h, json={"front": "a", "back": "b"}
        ),
        await client.get(f"/api/decks/{deck_id}/export?format=csv", headers=h),
        await client.get(f"/api/decks/{deck_id}/export?format=apkg", headers=h),
        await client.get(f"/api/reviews/due?deck_id={deck_id}", headers=h),
        await client.patch(f"/api/cards/{card_id}", headers=h, json={"front": "stolen"}),
        await client.post(f"/api/cards/{card_id}/reviews", headers=h, json={"rating": "good"}),
        await client.get(f"/api/cards/{card_id}/reviews", headers=h),
        await client.delete(f"/api/cards/{card_id}", headers=h),
        await client.delete(f"/api/decks/{deck_id}", headers=h),
    ):
        assert_error(response, 404, "not_found")
    assert (await client.get("/api/decks", headers=h)).json()["items"] == []
    assert (await client.get("/api/reviews/due", headers=h)).json()["items"] == []
    detail = (await client.get(f"/api/decks/{deck_id}", headers=alice.headers)).json()
    assert detail["card_count"] == 1
    cards = (await client.get(f"/api/decks/{deck_id}/cards", headers=alice.headers)).json()
    assert cards["items"][0]["front"] == "Q"
    assert_error(await client.get(f"/api/decks/{deck_id}"), 401)


async def test_a_bad_rating_is_422_and_stores_nothing(
    client: httpx.AsyncClient, alice: Account
) -> None:
    card_id = (await add_card(client, alice, await make_deck(client, alice)))["id"]
    for body in ({"rating": "perfect"}, {"rating": 3}, {}, {"rating": "good", "duration_ms": -1}):
        response = await client.post(
            f"/api/cards/{card_id}/reviews", headers=alice.headers, json=body
        )
        assert_error(response, 422, "validation_error")
    naive = await review(client, alice, card_id, "good", at="2030-01-01T00:00:00")
    assert_error(naive, 422)
    history = await client.get(f"/api/cards/{card_id}/reviews", headers=alice.headers)
    assert history.json() == []


async def test_fsrs_intervals_grow_with_good_and_shrink_with_again(
    client: httpx.AsyncClient, alice: Account
) -> None:
    """Each review happens when the card comes due, as a learner who keeps up would."""
    card_id = (await add_card(client, alice, await make_deck(client, alice)))["id"]
    at: str | None = None
    intervals: list[float] = []
    for rating in ("good", "good", "good", "good", "again"):
        response = await review(client, alice, card_id, rating, at)
        assert response.status_code == 201, response.text
        result = response.json()
        assert result["due_at"] == result["card"]["due_at"]
        assert result["state"] == result["card"]["state"] == result["review"]["state"]
        intervals.append(result["review"]["scheduled_days"])
        at = result["due_at"]
    assert result["state"] == "relearning"
    reviews_of_good = intervals[:4]
    assert reviews_of_good == sorted(reviews_of_good) and len(set(reviews_of_good)) == 4
    assert reviews_of_good[-1] > 10
    assert intervals[4] < intervals[3] / 10

    history = (await client.get(f"/api/cards/{card_id}/reviews", headers=alice.headers)).json()
    assert [r["rating"] for r in history] == ["good", "good", "good", "good", "again"]
    assert all(r["duration_ms"] == 4200 for r in history)
    assert [r["scheduled_days"] for r in history] == intervals
    earlier = await review(client, alice, card_id, "good", history[0]["reviewed_at"])
    assert_error(earlier, 409, "conflict")  # valid on its own, not after the card's history


async def test_desired_retention_is_a_user_setting(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    assert (await client.get("/api/me/settings", headers=bob.headers)).json() == {
        "desired_retention": 0.9,
        "timezone": "UTC",
    }
    for bad in (0.5, 1.0, "high"):
        response = await client.patch(
            "/api/me/settings", headers=bob.headers, json={"desired_retention": bad}
        )
        assert_error(response, 422)
    updated = await client.patch(
        "/api/me/settings", headers=bob.headers, json={"desired_retention": 0.97}
    )
    assert updated.status_code == 200
    assert updated.json() == {"desired_retention": 0.97, "timezone": "UTC"}

    async def interval_after_goods(account: Account) -> float:
        card_id = (await add_card(client, account, await make_deck(client, account)))["id"]
        at = None
        for _ in range(3):
            result = (await review(client, account, card_id, "good", at)).json()
            at = result["due_at"]
        return float(result["review"]["scheduled_days"])

    assert await interval_after_goods(bob) < await interval_after_goods(alice)


async def test_due_queue(client: httpx.AsyncClient, alice: Account) -> None:
    first = await make_deck(client, alice, "One")
    second = await make_deck(client, alice, "Two")
    a = (await add_card(client, alice, first, "a", "1"))["id"]
    b = (await add_card(client, alice, first, "b", "2"))["id"]
    c = (await add_card(client, alice, second, "c", "3"))["id"]
    due = (await client.get("/api/reviews/due", headers=alice.headers)).json()
    assert [x["id"] for x in due["items"]] == [a, b, c] and due["due_count"] == 3
    assert (await review(client, alice, a, "good")).status_code == 201
    due = (await client.get("/api/reviews/due", headers=alice.headers)).json()
    assert [x["id"] for x in due["items"]] == [b, c] and due["due_count"] == 2
    one = (
        await client.get(f"/api/reviews/due?deck_id={first}&limit=1", headers=alice.headers)
    ).json()
    assert [x["id"] for x in one["items"]] == [b] and one["due_count"] == 1
    assert_error(await client.get("/api/reviews/due?limit=0", headers=alice.headers), 422)
    assert_error(await client.get("/api/reviews/due?deck_id=nope", headers=alice.headers), 404)


async def test_generated_deck_cites_its_chunks(client: httpx.AsyncClient, alice: Account) -> None:
    material_id = await ready_material(client, alice)
    created = await client.post(
        "/api/decks",
        headers=alice.headers,
        json={"title": "Cells", "material_ids": [material_id], "generate": {"count": 4}},
    )
    assert created.status_code == 202, created.text
    body = created.json()
    assert body["deck"]["material_ids"] == [material_id]
    assert body["deck"]["job_id"] == body["job"]["id"] and body["job"]["kind"] == "generate_deck"
    job = await wait_job(client, alice, body["job"]["id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["cards"] == 4

    deck_id = body["deck"]["id"]
    cards = (await client.get(f"/api/decks/{deck_id}/cards", headers=alice.headers)).json()
    assert len(cards["items"]) == 4
    chunks = await client.get(f"/api/materials/{material_id}/chunks", headers=alice.headers)
    chunk_text = {c["id"]: c["text"] for c in chunks.json()["items"]}
    fronts = [c["front"] for c in cards["items"]]
    assert "What is the mitochondrion?" in fronts and "What are Enzymes?" in fronts
    for card in cards["items"]:
        assert card["material_id"] == material_id
        assert card["chunk_id"] in chunk_text
        assert (
            card["back"] in chunk_text[card["chunk_id"]]
            or card["back"] in card["front"]
            or (card["front"].replace("_____", card["back"]) in chunk_text[card["chunk_id"]])
        )
    assert any("_____" in f for f in fronts)


async def test_generation_without_usable_sentences_fails_clearly(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    material_id = await ready_material(client, alice, "x y z")
    created = await client.post(
        "/api/decks",
        headers=alice.headers,
        json={"title": "Empty", "material_ids": [material_id], "generate": {"count": 5}},
    )
    job = await wait_job(client, alice, created.json()["job"]["id"])
    assert job["status"] == "failed"
    assert "no sentences" in job["error"]
    stolen = await client.post(
        "/api/decks",
        headers=bob.headers,
        json={"title": "Mine", "material_ids": [material_id], "generate": {"count": 5}},
    )
    assert_error(stolen, 404, "not_found")  # another's id answers 404, as in a path
    too_many = await client.post(
        "/api/decks", headers=alice.headers, json={"title": "x", "generate": {"count": 0}}
    )
    assert_error(too_many, 422)


TRICKY = [
    ("What is 2, 3?", 'A "pair", really'),
    ("Line one\nline two", "Ünïcödé ✓"),
    ("=SUM(A1)", "  padded  "),
]


async def test_csv_export_import_round_trip(client: httpx.AsyncClient, alice: Account) -> None:
    deck_id = await make_deck(client, alice, "Round trip")
    for front, back in TRICKY:
        await add_card(client, alice, deck_id, front, back)
    exported = await client.get(f"/api/decks/{deck_id}/export?format=csv", headers=alice.headers)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert 'filename="Round_trip.csv"' in exported.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == ["front", "back"]
    assert [tuple(r) for r in rows[1:]] == [(f, b.strip()) for f, b in TRICKY]

    imported = await client.post(
        "/api/decks/import",
        headers=alice.headers,
        files={"file": ("round.csv", exported.content, "text/csv")},
        data={"title": "Imported"},
    )
    assert imported.status_code == 201, imported.text
    assert imported.json()["imported"] == 3
    new_id = imported.json()["deck"]["id"]
    assert imported.json()["deck"]["title"] == "Imported"
    cards = (await client.get(f"/api/decks/{new_id}/cards", headers=alice.headers)).json()
    assert [(c["front"], c["back"]) for c in cards["items"]] == [(f, b.strip()) for f, b in TRICKY]
    assert all(c["state"] == "new" for c in cards["items"])


async def test_malformed_or_oversized_csv_is_refused(
    client: httpx.AsyncClient, alice: Account
) -> None:
    async def upload(content: bytes) -> httpx.Response:
        return await client.post(
            "/api/decks/import",
            headers=alice.headers,
            files={"file": ("cards.csv", content, "text/csv")},
        )

    for content in (
        b"",
        b"question,answer\nq,a\n",
        b'front,back\n"unterminated,a\n',
        b"front,back\nonly-front\n",
        b"front,back\n,\n\n",
        b"front,back\nq,\xff\xfe\n",
        b"front,back\nq,a\x00b\n",
    ):
        assert_error(await upload(content), 422)
    assert_error(await upload(b"front,back\n" + b"q,a\n" * 600_000), 413)
    ok = await upload(b"Front,Back,Extra\nq,a,x\n")
    assert ok.status_code == 201 and ok.json()["deck"]["title"] == "cards"
    decks = (await client.get("/api/decks", headers=alice.headers)).json()["items"]
    assert len(decks) == 1


async def test_apkg_export_is_an_anki_collection(
    client: httpx.AsyncClient, alice: Account, tmp_path: Path
) -> None:
    deck_id = await make_deck(client, alice, "Anki deck")
    for front, back in TRICKY:
        await add_card(client, alice, deck_id, front, back)
    response = await client.get(f"/api/decks/{deck_id}/export?format=apkg", headers=alice.headers)
    assert response.status_code == 200
    assert 'filename="Anki_deck.apkg"' in response.headers["content-disposition"]
    path = tmp_path / "deck.apkg"
    path.write_bytes(response.content)
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        assert names & {"collection.anki2", "collection.anki21"}
        archive.extract("collection.anki2", tmp_path)
    with sqlite3.connect(tmp_path / "collection.anki2") as db:
        notes = [row[0].split("\x1f") for row in db.execute("select flds from notes order by id")]
        decks = db.execute("select decks from col").fetchone()[0]
    assert notes[0] == ["What is 2, 3?", "A &quot;pair&quot;, really"]
    assert notes[1][0] == "Line one<br>line two"
    assert len(notes) == 3 and "Anki deck" in decks
    assert_error(
        await client.get(f"/api/decks/{deck_id}/export?format=pdf", headers=alice.headers), 422
    )


def test_generator_is_deterministic_and_bounded() -> None:
    passages = [Passage("m-00000", "m", NOTES), Passage("m-00001", "m", NOTES)]
    cards = build_cards(passages, 50)
    assert cards == build_cards(passages, 50)
    assert len({c.front for c in cards}) == len(cards)  # overlapping chunks: no duplicates
    assert {c.chunk_id for c in cards} == {"m-00000"}
    assert len(build_cards(passages, 2)) == 2
    assert build_cards([Passage("c", "m", "# Just a heading\n\n- short\n")], 5) == []
