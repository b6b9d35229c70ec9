"""The account as a whole, over HTTP with the real worker: `GET /api/me/export` (a zip of
every owned table and the uploaded files, no credential hashes, nobody else's data) and
`DELETE /api/me` (password checked; then no row, vector, file or job snapshot of the user
is left, every credential is refused, and other learners keep everything)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    inspect,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.account.owned import owned_tables
from shared.clients.vectorstore import connect
from shared.config import Settings
from shared.jobs.service import snapshot_key
from tests.conftest import Account, assert_error, wait_job
from tests.test_flashcards import add_card, make_deck, ready_material, review
from tests.test_quizzes import attempt, make_quiz

pytestmark = pytest.mark.usefixtures("worker")

UPLOAD = b"""# Plants

Xylem vessels carry water and dissolved minerals from the roots up to the leaves.
Phloem tissue moves the sugars made by photosynthesis to the rest of the plant.
"""


@dataclass
class Created:
    material_ids: list[str]
    deck_id: str
    quiz_id: str
    api_key: str


async def populate(client: httpx.AsyncClient, account: Account) -> Created:
    """A text material and an uploaded file, a chat, a reviewed card, an attempted quiz,
    a learning path and an API key."""
    text_id = await ready_material(client, account)
    uploaded = await client.post(
        "/api/materials", headers=account.headers, files=[("files", ("plants.md", UPLOAD))]
    )
    assert uploaded.status_code == 202, uploaded.text
    [item] = uploaded.json()["items"]
    assert (await wait_job(client, account, item["job"]["id"]))["status"] == "succeeded"
    chat = await client.post("/api/chat/sessions", headers=account.headers, json={})
    message = await client.post(
        f"/api/chat/sessions/{chat.json()['id']}/messages",
        headers=account.headers,
        json={"content": "What does the xylem carry?"},
    )
    assert message.status_code == 200, message.text
    deck_id = await make_deck(client, account)
    card = await add_card(client, account, deck_id, "Powerhouse of the cell?", "Mitochondrion")
    assert (await review(client, account, card["id"], "good")).status_code == 201
    quiz = await make_quiz(client, account, text_id, num_questions=3)
    assert quiz["status"] == "ready", quiz
    answer = [{"question_id": quiz["questions"][0]["id"], "answer": "zzz"}]
    assert (await attempt(client, account, quiz["id"], answer)).status_code == 201
    path = await client.post(
        "/api/learning-paths",
        headers=account.headers,
        json={"goal": "Learn cells", "material_ids": [text_id]},
    )
    assert path.status_code == 202, path.text
    assert (await wait_job(client, account, path.json()["job"]["id"]))["status"] == "succeeded"
    key = await client.post("/api/auth/api-keys", headers=account.headers, json={"name": "cli"})
    return Created([text_id, item["material"]["id"]], deck_id, quiz["id"], key.json()["key"])


def test_a_child_table_without_user_id_belongs_to_its_parents_owner() -> None:
    """Tables added later are covered by the rule, whether or not they carry user_id."""
    metadata = MetaData()
    Table("users", metadata, Column("id", String, primary_key=True))
    Table("settings", metadata, Column("key", String, primary_key=True))  # nobody's
    Table(
        "notes",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("user_id", ForeignKey("users.id")),
    )
    Table(
        "note_links",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("note_id", ForeignKey("notes.id")),
        Column("position", Integer),
        Column("token_hash", String),
    )
    owned = {o.table.name: o for o in owned_tables(metadata)}
    assert list(owned) == ["users", "notes", "note_links"]
    links = owned["note_links"]
    assert [c.name for c in links.order] == ["note_id", "position", "id"]
    assert links.secret_columns == ["token_hash"]
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as connection:
        for user, note in (("a", 1), ("b", 2)):
            connection.execute(metadata.tables["users"].insert(), {"id": user})
            connection.execute(metadata.tables["notes"].insert(), {"id": note, "user_id": user})
            connection.execute(links.table.insert(), {"id": note * 10, "note_id": note})
        mine = select(links.table.c.id).where(links.mine("a"))
        assert list(connection.scalars(mine)) == [10]


async def export_zip(client: httpx.AsyncClient, account: Account) -> zipfile.ZipFile:
    response = await client.get("/api/me/export", headers=account.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    disposition = response.headers["content-disposition"]
    assert re.fullmatch(
        r'attachment; filename="brainwave-export-\d{4}-\d{2}-\d{2}\.zip"', disposition
    )
    return zipfile.ZipFile(io.BytesIO(response.content))


def rows(archive: zipfile.ZipFile, table: str) -> list[dict[str, Any]]:
    lines = archive.read(f"tables/{table}.jsonl").decode().splitlines()
    return [json.loads(line) for line in lines]


def everything(archive: zipfile.ZipFile) -> bytes:
    return b"".join(archive.read(name) for name in archive.namelist())


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The database itself, not through the app."""
    engine = create_async_engine(settings.resolved_database_url)
    yield engine
    await engine.dispose()


async def owned_row_counts(engine: AsyncEngine, user_id: str) -> dict[str, int]:
    """Rows naming the user in every table the database holds (reflected, not the models)."""

    def columns_by_table(connection: Any) -> dict[str, set[str]]:
        inspector = inspect(connection)
        return {
            t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()
        }

    counts = {}
    async with engine.connect() as connection:
        tables = await connection.run_sync(columns_by_table)
        for table, columns in tables.items():
            column = "id" if table == "users" else "user_id"
            if column in columns:
                query = text(f'SELECT count(*) FROM "{table}" WHERE {column} = :u')
                counts[table] = int(await connection.scalar(query, {"u": user_id}) or 0)
    return counts


async def secrets_of(engine: AsyncEngine, user_id: str) -> list[str]:
    async with engine.connect() as connection:
        password = await connection.scalar(
            text("SELECT password_hash FROM users WHERE id = :u"), {"u": user_id}
        )
        keys = await connection.scalars(
            text("SELECT key_hash FROM api_keys WHERE user_id = :u"), {"u": user_id}
        )
        return [password, *keys]


async def stored_files(engine: AsyncEngine, settings: Settings, user_id: str) -> list[Path]:
    async with engine.connect() as connection:
        paths = await connection.scalars(
            text("SELECT file_path FROM materials WHERE user_id = :u AND file_path IS NOT NULL"),
            {"u": user_id},
        )
        return [settings.data_dir.resolve() / p for p in paths]


async def vector_counts(settings: Settings, user_id: str) -> int:
    chroma = await connect(settings.chroma_url)
    total = 0
    for collection in await chroma.list_collections():
        total += len((await collection.get(where={"user_id": user_id}, include=[]))["ids"])
    return total


async def test_export_holds_everything_of_mine_and_nothing_secret(
    client: httpx.AsyncClient,
    alice: Account,
    bob: Account,
    database: AsyncEngine,
    settings: Settings,
) -> None:
    created = await populate(client, alice)
    await ready_material(client, bob, "# Bob\n\nThe aorta is the largest artery of the body.")
    archive = await export_zip(client, alice)
    assert list((settings.data_dir / "exports" / "accounts").iterdir()) == []  # sent, deleted

    manifest = json.loads(archive.read("manifest.json"))
    assert "README.txt" in archive.namelist()
    assert set(manifest["tables"]) == {t.table.name for t in owned_tables()}
    for table, entry in manifest["tables"].items():
        assert entry["rows"] == len(rows(archive, table)), table
    counts = {table: entry["rows"] for table, entry in manifest["tables"].items()}
    assert counts["users"] == 1 and counts["materials"] == 2
    assert counts["chat_sessions"] == 1 and counts["chat_messages"] == 2
    assert counts["decks"] == counts["cards"] == counts["reviews"] == 1
    assert counts["quizzes"] == counts["quiz_attempts"] == 1
    assert counts["quiz_questions"] == 3 and counts["api_keys"] == 1
    assert counts["learning_paths"] == 1 and counts["path_modules"] >= 1
    assert counts["jobs"] >= 4 and counts["refresh_tokens"] >= 1 and counts["study_events"]

    [user] = rows(archive, "users")
    assert user["email"] == alice.email and "password_hash" not in user
    assert "password_hash" in manifest["tables"]["users"]["omitted_columns"]
    assert "key_hash" not in rows(archive, "api_keys")[0]
    materials = {m["id"]: m for m in rows(archive, "materials")}
    assert list(materials) == created.material_ids
    chunks = [c for c in rows(archive, "chunks") if c["material_id"] == created.material_ids[0]]
    assert [c["position"] for c in chunks] == list(
        range(materials[chunks[0]["material_id"]]["chunk_count"])
    )
    assert "mitochondrion" in " ".join(c["text"] for c in chunks)
    assert rows(archive, "reviews")[0]["rating"] in {"good", 3}
    [upload] = [f for f in manifest["files"] if f["id"] == created.material_ids[1]]
    assert upload["included"] and archive.read(upload["archive_path"]) == UPLOAD

    dump = everything(archive)
    for secret in [*await secrets_of(database, alice.user_id), alice.password, created.api_key]:
        assert secret.encode() not in dump
    for token in (alice.access_token, alice.refresh_token):
        assert token.encode() not in dump
    assert bob.user_id.encode() not in dump

    bobs = everything(await export_zip(client, bob))
    assert alice.user_id.encode() not in bobs and b"mitochondrion" not in bobs
    for material_id in created.material_ids:
        assert material_id.encode() not in bobs


async def test_delete_me_erases_everything_and_only_mine(
    client: httpx.AsyncClient,
    alice: Account,
    bob: Account,
    database: AsyncEngine,
    settings: Settings,
) -> None:
    created = await populate(client, alice)
    bobs_material = await ready_material(client, bob, "# Bob\n\nThe aorta is the largest artery.")
    alices_files = await stored_files(database, settings, alice.user_id)
    bobs_files = await stored_files(database, settings, bob.user_id)
    assert len(alices_files) == 2 and all(p.is_file() for p in alices_files + bobs_files)
    before = await owned_row_counts(database, alice.user_id)
    assert all(before[t] for t in ("chunks", "reviews", "quiz_attempts", "path_modules"))
    assert await vector_counts(settings, alice.user_id) > 0

    wrong = await client.request(
        "DELETE", "/api/me", headers=alice.headers, json={"password": "not my password"}
    )
    assert_error(wrong, 403, "forbidden")
    assert_error(await client.request("DELETE", "/api/me", headers=alice.headers), 422)
    assert await owned_row_counts(database, alice.user_id) == before
    assert all(p.is_file() for p in alices_files)
    assert (await client.get("/api/auth/me", headers=alice.headers)).status_code == 200

    erased = await client.request(
        "DELETE", "/api/me", headers=alice.headers, json={"password": alice.password}
    )
    assert erased.status_code == 204, erased.text

    after = await owned_row_counts(database, alice.user_id)
    assert set(after) >= set(before) and not any(after.values()), after
    assert await vector_counts(settings, alice.user_id) == 0
    assert not any(p.exists() for p in alices_files)
    redis = Redis.from_url(settings.redis_url)
    assert [k async for k in redis.scan_iter(match=f"brainwave:job:{alice.user_id}:*")] == []
    # a job's last state announced after the erase (a worker finishing): still not served
    late_job = "f" * 32
    await redis.set(snapshot_key(alice.user_id, late_job), b'{"id": "late"}', ex=60)
    assert_error(await client.get(f"/api/jobs/{late_job}", headers=alice.headers), 401)
    await redis.delete(snapshot_key(alice.user_id, late_job))
    await redis.aclose()

    assert_error(await client.get("/api/auth/me", headers=alice.headers), 401)
    assert_error(await client.get("/api/auth/me", headers={"X-API-Key": created.api_key}), 401)
    login = await client.post(
        "/api/auth/login", data={"username": alice.email, "password": alice.password}
    )
    assert_error(login, 401)
    refresh = await client.post("/api/auth/refresh", json={"refresh_token": alice.refresh_token})
    assert_error(refresh, 401)

    assert all(p.is_file() for p in bobs_files)
    assert await vector_counts(settings, bob.user_id) > 0
    listed = (await client.get("/api/materials", headers=bob.headers)).json()["items"]
    assert [m["id"] for m in listed] == [bobs_material]
    hits = (await client.get("/api/search", params={"q": "aorta"}, headers=bob.headers)).json()
    assert hits["hits"] and hits["hits"][0]["material_id"] == bobs_material
