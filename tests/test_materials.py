"""Text material → job → chunks → search, through the API with a real worker process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from shared.resources import Resources
from tests.conftest import Account, WorkerProcess, assert_error, wait_job

BIOLOGY = """# Cells

The mitochondria is the powerhouse of the cell. It produces ATP through cellular respiration.

# Plants

Photosynthesis converts light energy into chemical energy inside the chloroplasts of leaves.
"""

pytestmark = pytest.mark.usefixtures("worker")


async def add_text(client: httpx.AsyncClient, account: Account, title: str, text: str) -> dict:
    response = await client.post(
        "/api/materials/text", headers=account.headers, json={"title": title, "text": text}
    )
    assert response.status_code == 202, response.text
    return response.json()


async def test_text_material_becomes_searchable(
    client: httpx.AsyncClient, alice: Account, worker: WorkerProcess
) -> None:
    created = await add_text(client, alice, "Biology", BIOLOGY)
    assert created["material"]["status"] == "pending"
    assert created["job"]["status"] == "queued"
    job = await wait_job(client, alice, created["job"]["id"])
    assert job["status"] == "succeeded", job
    assert job["progress"] == 100
    assert job["attempts"] == 1
    assert job["worker"] == worker.worker_id
    assert job["result"]["chunks"] == 2

    material_id = created["material"]["id"]
    material = (await client.get(f"/api/materials/{material_id}", headers=alice.headers)).json()
    assert material["status"] == "ready"
    assert material["chunk_count"] == 2
    assert material["char_count"] == len(BIOLOGY)

    chunks = (
        await client.get(f"/api/materials/{material_id}/chunks", headers=alice.headers)
    ).json()
    assert [c["heading"] for c in chunks["items"]] == ["Cells", "Plants"]

    search = await client.get(
        "/api/search", params={"q": "powerhouse of the cell"}, headers=alice.headers
    )
    hits = search.json()["hits"]
    assert hits[0]["material_id"] == material_id
    assert "mitochondria" in hits[0]["text"]
    assert hits[0]["location"]["heading"] == "Cells"
    assert 0 < hits[0]["score"] <= 1


async def test_other_users_get_404_and_find_nothing(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    created = await add_text(
        client, alice, "Secret notes", "Quantum chromodynamics binds quarks with gluons."
    )
    await wait_job(client, alice, created["job"]["id"])
    material_id, job_id = created["material"]["id"], created["job"]["id"]
    for path in (
        f"/api/materials/{material_id}",
        f"/api/materials/{material_id}/chunks",
        f"/api/jobs/{job_id}",
        f"/api/jobs/{job_id}/events",
    ):
        assert_error(await client.get(path, headers=bob.headers), 404, "not_found")
    assert_error(await client.post(f"/api/jobs/{job_id}/cancel", headers=bob.headers), 404)
    assert_error(await client.delete(f"/api/materials/{material_id}", headers=bob.headers), 404)
    search = await client.get("/api/search", params={"q": "quarks gluons"}, headers=bob.headers)
    assert search.json()["hits"] == []
    assert (await client.get("/api/materials", headers=bob.headers)).json()["items"] == []
    mine = await client.get("/api/search", params={"q": "quarks gluons"}, headers=alice.headers)
    assert mine.json()["hits"][0]["material_id"] == material_id


async def test_bad_material_input(client: httpx.AsyncClient, alice: Account) -> None:
    assert_error(await client.post("/api/materials/text", headers=alice.headers, json={}), 422)
    blank = await client.post(
        "/api/materials/text", headers=alice.headers, json={"title": "  ", "text": " \n "}
    )
    assert_error(blank, 422, "validation_error")
    too_long = await client.post(
        "/api/materials/text", headers=alice.headers, json={"title": "big", "text": "a" * 2_000_001}
    )
    assert_error(too_long, 422)
    huge = await client.post(
        "/api/materials/text",
        headers={**alice.headers, "content-type": "application/json"},
        content=b'{"title": "x", "text": "' + b"a" * (11 * 1024 * 1024) + b'"}',
    )
    assert_error(huge, 413, "payload_too_large")
    assert_error(await client.get("/api/materials/does-not-exist", headers=alice.headers), 404)
    assert_error(await client.get("/api/jobs/does-not-exist", headers=alice.headers), 404)
    assert_error(await client.get("/api/search", headers=alice.headers), 422)
    assert_error(
        await client.get("/api/materials", params={"limit": 0}, headers=alice.headers), 422
    )
    assert_error(await client.post("/api/materials/text", json={"title": "t", "text": "x"}), 401)


async def test_lists_page_with_a_cursor(client: httpx.AsyncClient, alice: Account) -> None:
    created = [
        await add_text(client, alice, f"Note {i}", f"Note number {i} about topic {i}.")
        for i in range(5)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/materials", params=params, headers=alice.headers)).json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [c["material"]["id"] for c in reversed(created)]
    jobs = (await client.get("/api/jobs", params={"limit": 50}, headers=alice.headers)).json()
    assert {c["job"]["id"] for c in created} <= {j["id"] for j in jobs["items"]}
    for c in created:
        await wait_job(client, alice, c["job"]["id"])


async def test_job_events_stream_until_done(client: httpx.AsyncClient, alice: Account) -> None:
    created = await add_text(client, alice, "Stream", BIOLOGY * 20)
    statuses: list[str] = []
    async with client.stream(
        "GET", f"/api/jobs/{created['job']['id']}/events", headers=alice.headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                statuses.append(httpx.Response(200, content=line[6:]).json()["status"])
    assert statuses[-1] == "succeeded"
    assert statuses.count("succeeded") == 1


async def test_cancel_a_finished_job_is_409(client: httpx.AsyncClient, alice: Account) -> None:
    created = await add_text(client, alice, "Done", "A short note that finishes quickly.")
    await wait_job(client, alice, created["job"]["id"])
    response = await client.post(f"/api/jobs/{created['job']['id']}/cancel", headers=alice.headers)
    assert_error(response, 409, "conflict")


async def test_delete_removes_rows_vectors_and_file(
    client: httpx.AsyncClient, alice: Account, resources: Resources
) -> None:
    created = await add_text(client, alice, "Temporary", BIOLOGY)
    await wait_job(client, alice, created["job"]["id"])
    material_id = created["material"]["id"]
    stored = Path(resources.settings.data_dir) / "uploads" / "documents" / f"{material_id}.txt"
    assert stored.exists()
    collection = await resources.store._collection()
    assert len((await collection.get(where={"material_id": material_id}))["ids"]) == 2

    deleted = await client.delete(f"/api/materials/{material_id}", headers=alice.headers)
    assert deleted.status_code == 204
    assert_error(await client.get(f"/api/materials/{material_id}", headers=alice.headers), 404)
    assert not stored.exists()
    assert (await collection.get(where={"material_id": material_id}))["ids"] == []
    search = await client.get("/api/search", params={"q": "mitochondria"}, headers=alice.headers)
    assert material_id not in {h["material_id"] for h in search.json()["hits"]}


async def test_many_materials_at_once(client: httpx.AsyncClient, alice: Account) -> None:
    created = await asyncio.gather(
        *(
            add_text(client, alice, f"Topic {i}", f"Unique term zeta{i}x appears here.")
            for i in range(8)
        )
    )
    jobs = await asyncio.gather(*(wait_job(client, alice, c["job"]["id"]) for c in created))
    assert {j["status"] for j in jobs} == {"succeeded"}
    for i, c in enumerate(created):
        hits = (
            await client.get("/api/search", params={"q": f"zeta{i}x"}, headers=alice.headers)
        ).json()
        assert hits["hits"][0]["material_id"] == c["material"]["id"]


async def test_streamed_body_over_the_limit_is_413(
    client: httpx.AsyncClient, alice: Account
) -> None:
    async def body():
        yield b'{"title": "x", "text": "'
        for _ in range(11):
            yield b"a" * (1024 * 1024)
        yield b'"}'

    response = await client.post(
        "/api/materials/text",
        headers={**alice.headers, "content-type": "application/json"},
        content=body(),
    )
    assert_error(response, 413, "payload_too_large")


async def test_job_poll_fast_path_matches_the_row_and_respects_logout(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    from tests.conftest import sign_up

    account = await sign_up(client)
    created = await add_text(client, account, "Poll", "A note to poll about osmosis.")
    done = await wait_job(client, account, created["job"]["id"])
    listed = (await client.get("/api/jobs", headers=account.headers)).json()["items"]
    assert [j for j in listed if j["id"] == done["id"]] == [done]  # snapshot == row
    await resources.redis.delete(f"brainwave:job:{account.user_id}:{done['id']}")
    assert (await client.get(f"/api/jobs/{done['id']}", headers=account.headers)).json() == done
    key = await client.post("/api/auth/api-keys", headers=account.headers, json={"name": "k"})
    by_key = await client.get(f"/api/jobs/{done['id']}", headers={"X-API-Key": key.json()["key"]})
    assert by_key.json() == done
    await client.post("/api/auth/logout", headers=account.headers)
    assert_error(await client.get(f"/api/jobs/{done['id']}", headers=account.headers), 401)
