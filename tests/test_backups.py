"""Backups and restore with the real pieces: a worker process takes a backup while a learner
keeps writing, `python -m scripts.restore` loads it into a fresh data dir and a second Chroma
server, and search on the restored system finds the material."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.backups.schemas import DATABASE_FILE, MANIFEST_NAME, Manifest
from shared.backups.service import take_backup
from shared.clients.vectorstore import connect
from tests.conftest import (
    BIN,
    ROOT,
    Account,
    Stack,
    assert_error,
    free_port,
    process_env,
    sign_up,
    stop_process,
    wait_http,
    wait_job,
)
from tests.test_workers import long_text
from worker.tasks.backups import DAILY_KEY_PREFIX, daily_backup

sqlite_only = pytest.mark.skipif(
    bool(os.environ.get("TEST_DATABASE_URL")), reason="backs up and restores a SQLite file"
)
ADMIN = "ops@example.com"
PASSWORD = "correct horse battery staple"
RAN = ("started_at", "finished_at")
CELL_TEXT = "The mitochondria is the powerhouse of the cell; it makes ATP by respiration."


@contextmanager
def chroma_server(path: Path) -> Iterator[str]:
    """A second, empty Chroma server to restore into."""
    port = free_port()
    command = [str(BIN / "chroma"), "run", "--path", str(path), "--host", "127.0.0.1"]
    with (path / "chroma.log").open("wb") as log:
        process = subprocess.Popen([*command, "--port", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/api/v2/heartbeat", process=process)
        yield url
    finally:
        stop_process(process)


async def sign_up_admin(client: httpx.AsyncClient) -> Account:
    registered = await client.post(
        "/api/auth/register", json={"email": ADMIN, "password": PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    return await log_in(client, ADMIN, registered.json()["id"])


async def log_in(client: httpx.AsyncClient, email: str, user_id: str) -> Account:
    login = await client.post("/api/auth/login", data={"username": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    tokens = login.json()
    return Account(email, PASSWORD, tokens["access_token"], tokens["refresh_token"], user_id)


def restore(backup: Path, data_dir: Path, chroma_url: str, stack: Stack, *flags: str) -> Any:
    command = [sys.executable, "-m", "scripts.restore", str(backup), "--data-dir", str(data_dir)]
    return subprocess.run(
        [*command, "--chroma-url", chroma_url, *flags],
        cwd=ROOT,
        env=process_env(stack.settings),
        capture_output=True,
        text=True,
        check=False,
    )


def table_counts(path: Path) -> dict[str, int]:
    with closing(sqlite3.connect(path)) as db:
        tables = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        names = [n for (n,) in db.execute(tables)]
        return {n: db.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


async def add_material(stack: Stack, account: Account, title: str, text: str) -> dict[str, Any]:
    response = await stack.client.post(
        "/api/materials/text", headers=account.headers, json={"title": title, "text": text}
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


async def keep_writing(stack: Stack, account: Account, stop: asyncio.Event) -> list[float]:
    """Notes and cards, one after another, until told to stop; returns when each landed."""
    deck = await stack.client.post("/api/decks", headers=account.headers, json={"title": "Live"})
    landed: list[float] = []
    while not stop.is_set():
        n = len(landed)
        await add_material(stack, account, f"Note {n}", f"Live note {n}: {long_text(n, 2)}")
        card = await stack.client.post(
            f"/api/decks/{deck.json()['id']}/cards",
            headers=account.headers,
            json={"front": f"Question {n}", "back": f"Answer {n}"},
        )
        assert card.status_code == 201, card.text
        landed.append(time.time())
    return landed


@sqlite_only
async def test_backup_during_writes_restores_to_a_searchable_system(
    make_stack: Any, tmp_path: Path
) -> None:
    stack: Stack
    async with make_stack(admin_emails=[ADMIN]) as stack:
        stack.workers.start()
        admin = await sign_up_admin(stack.client)
        learner = await sign_up(stack.client)
        created = [await add_material(stack, learner, "Cells", CELL_TEXT)]
        for i in range(4):
            created.append(await add_material(stack, learner, f"Part {i}", long_text(i, 150)))
        for c in created:
            done = await wait_job(stack.client, learner, c["job"]["id"], timeout=120)
            assert done["status"] == "succeeded", done

        stop = asyncio.Event()
        writers = [asyncio.create_task(keep_writing(stack, learner, stop)) for _ in range(2)]
        await asyncio.sleep(0.3)
        started = await stack.client.post("/api/admin/backups", headers=admin.headers)
        assert started.status_code == 202, started.text
        job = await wait_job(stack.client, admin, started.json()["job"]["id"], timeout=120)
        stop.set()
        landed = [t for times in await asyncio.gather(*writers) for t in times]
        assert job["status"] == "succeeded", job
        backup_from, backup_to = (datetime.fromisoformat(job[k]).timestamp() for k in RAN)
        during = [t for t in landed if backup_from <= t <= backup_to]
        assert during, "the learner's writes should have gone on while the backup ran"

        listed = (await stack.client.get("/api/admin/backups", headers=admin.headers)).json()
        [entry] = listed["items"]
        assert entry["name"] == job["result"]["backup"]
        assert entry["size_bytes"] == job["result"]["size_bytes"] > 0
        backup = stack.settings.backups_dir / entry["name"]
        manifest = Manifest.model_validate_json((backup / MANIFEST_NAME).read_bytes())
        assert manifest.alembic_revision and manifest.embedding_model == "offline-hash-v2-768"
        live = table_counts(Path(stack.settings.data_dir) / "data" / "brainwave.db")
        assert 0 < manifest.tables["materials"] < live["materials"]  # taken mid-stream
        print(f"\nbackup: {entry['size_bytes']} bytes, {manifest.seconds}, {len(during)} writes")

        restored_dir = tmp_path / "restored"
        chroma_dir = tmp_path / "chroma2"
        chroma_dir.mkdir()
        with chroma_server(chroma_dir) as chroma_url:
            result = restore(backup, restored_dir, chroma_url, stack)
            assert result.returncode == 0, result.stdout + result.stderr
            restored_db = restored_dir / "data" / "brainwave.db"
            assert table_counts(restored_db) == manifest.tables
            await assert_ready_materials_have_their_vectors(restored_db, chroma_url)
            async with make_stack(data_dir=restored_dir, chroma_url=chroma_url) as restored:
                again = await log_in(restored.client, learner.email, learner.user_id)
                found = await restored.client.get(
                    "/api/search", params={"q": "mitochondria powerhouse"}, headers=again.headers
                )
                assert found.status_code == 200, found.text
                hits = found.json()["hits"]
                assert hits and hits[0]["material_id"] == created[0]["material"]["id"]
                assert "powerhouse of the cell" in hits[0]["text"]


async def assert_ready_materials_have_their_vectors(database: Path, chroma_url: str) -> None:
    """The copy is consistent with the snapshot: every chunk of a ready material in the
    restored database has its vector in the restored Chroma."""
    with closing(sqlite3.connect(database)) as db:
        chunks = dict(
            db.execute(
                "SELECT m.id, count(c.id) FROM materials m JOIN chunks c ON c.material_id = m.id "
                "WHERE m.status = 'ready' GROUP BY m.id"
            ).fetchall()
        )
    client = await connect(chroma_url)
    [collection] = await client.list_collections()
    for material_id, count in chunks.items():
        vectors = await collection.get(where={"material_id": material_id}, include=[])
        assert len(vectors["ids"]) == count, material_id


async def test_backups_are_for_admins_only(client: httpx.AsyncClient, alice: Account) -> None:
    for method in ("POST", "GET"):
        response = await client.request(method, "/api/admin/backups", headers=alice.headers)
        assert_error(response, 403, "forbidden")
        assert_error(await client.request(method, "/api/admin/backups"), 401)


@sqlite_only
async def test_daily_backup_runs_once_and_old_backups_are_deleted(make_stack: Any) -> None:
    stack: Stack
    async with make_stack(admin_emails=[ADMIN], backup_keep=2) as stack:
        admin = await sign_up_admin(stack.client)
        redis = stack.resources.redis
        async for key in redis.scan_iter(DAILY_KEY_PREFIX + "*"):
            await redis.delete(key)
        ctx = {"resources": stack.resources}
        first = await daily_backup(ctx)
        assert "skipped" in await daily_backup(ctx)  # another worker, the same day
        second = await take_backup(stack.resources, _no_progress)
        third = await take_backup(stack.resources, _no_progress)
        assert third["deleted"] == [first["backup"]]
        listed = (await stack.client.get("/api/admin/backups", headers=admin.headers)).json()
        assert [b["name"] for b in listed["items"]] == [third["backup"], second["backup"]]
        assert sorted(p.name for p in stack.settings.backups_dir.iterdir()) == [
            second["backup"],
            third["backup"],
        ]


@sqlite_only
async def test_restore_refuses_a_target_that_holds_data(
    make_stack: Any, tmp_path: Path, chroma_url: str
) -> None:
    stack: Stack
    async with make_stack() as stack:
        await sign_up(stack.client)
        probe = {"user_id": "nobody", "material_id": "probe"}
        await stack.resources.store.upsert(["probe"], [[1.0] * 768], [probe])
        try:
            taken = await take_backup(stack.resources, _no_progress)
        finally:
            await stack.resources.store.delete_material("probe")
        backup = stack.settings.backups_dir / taken["backup"]
        live_db = Path(stack.settings.data_dir) / "data" / "brainwave.db"
        before = table_counts(live_db)

        into_live = restore(backup, Path(stack.settings.data_dir), chroma_url, stack)
        assert into_live.returncode == 2, into_live.stdout + into_live.stderr
        assert "holds data" in into_live.stderr and "--force" in into_live.stderr
        assert table_counts(live_db) == before

        empty_dir = tmp_path / "empty"
        into_chroma = restore(backup, empty_dir, chroma_url, stack)
        assert into_chroma.returncode == 2
        assert "holds vectors" in into_chroma.stderr
        assert not (empty_dir / "data" / DATABASE_FILE).exists()


async def test_with_a_database_server_only_the_vectors_are_backed_up(make_stack: Any) -> None:
    stack: Stack
    async with make_stack() as stack:
        server = stack.settings.model_copy(
            update={"database_url": "postgresql+asyncpg://brainwave@db.invalid/brainwave"}
        )
        probe = {"user_id": "nobody", "material_id": "probe"}
        await stack.resources.store.upsert(["probe"], [[1.0] * 768], [probe])
        try:
            taken = await take_backup(replace(stack.resources, settings=server), _no_progress)
        finally:
            await stack.resources.store.delete_material("probe")
        assert taken["database_included"] is False
        assert "pg_dump" in taken["note"] and taken["vectors"] >= 1
        backup = server.backups_dir / taken["backup"]
        manifest = Manifest.model_validate_json((backup / MANIFEST_NAME).read_bytes())
        assert manifest.database_note == taken["note"] and manifest.tables == {}
        assert not (backup / DATABASE_FILE).exists()


async def _no_progress(_percent: int, _stage: str) -> None:
    return None
