"""Alembic: migrations apply on an empty database, are idempotent, go down and up again,
and match the models — on SQLite, and on PostgreSQL whenever one answers (the server at
TEST_DATABASE_URL, else the default local one), whichever database the suite runs on."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from shared.config import Settings
from shared.db.engine import Database
from shared.models import Chunk, Material, User
from tests.conftest import BIN, ROOT, process_env
from tests.postgres import DEFAULT_URL, PostgresServer, configured_url


def alembic(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "alembic"), *args],
        cwd=ROOT,
        env=process_env(settings),
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> Iterator[Settings]:
    """Settings naming an empty database of each kind."""
    if request.param == "sqlite":
        yield settings.model_copy(update={"data_dir": tmp_path, "database_url": ""})
        return
    server = PostgresServer(configured_url() or DEFAULT_URL)
    if not server.ping():
        pytest.skip(f"no PostgreSQL answers at {server.url.render_as_string()}")
    name = server.create()
    try:
        yield settings.model_copy(
            update={"data_dir": tmp_path, "database_url": server.url_for(name)}
        )
    finally:
        server.drop(name)


def test_upgrade_twice_down_and_up_then_models_match(empty_database: Settings) -> None:
    for args in (("upgrade", "head"), ("upgrade", "head"), ("downgrade", "base")):
        result = alembic(empty_database, *args)
        assert result.returncode == 0, result.stderr
    assert "(head)" not in alembic(empty_database, "current").stdout
    result = alembic(empty_database, "upgrade", "head")
    assert result.returncode == 0, result.stderr
    assert "(head)" in alembic(empty_database, "current").stdout
    check = alembic(empty_database, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    if empty_database.is_sqlite:
        assert (empty_database.data_dir / "data" / "brainwave.db").exists()


FOUR_GIB = 4 * 1024**3


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    db = Database(settings)
    try:
        yield db
    finally:
        await db.dispose()


async def test_0007_keeps_rows_and_stores_sizes_past_2_gib(empty_database: Settings) -> None:
    """Upgrading from 0006 keeps materials and their chunks (SQLite rebuilds the table), and
    afterwards a size past 2 GiB fits (an INTEGER refused it on PostgreSQL)."""
    result = alembic(empty_database, "upgrade", "0006")
    assert result.returncode == 0, result.stderr
    async with _database(empty_database) as db, db.session() as session:
        user = User(email="film@example.com", password_hash="x")
        session.add(user)
        await session.flush()
        material = Material(user_id=user.id, title="Film", kind="video", source="upload")
        session.add(material)
        await session.flush()
        text = "The mitochondria is the powerhouse of the cell."
        chunk = Chunk(id=f"{material.id}:0", material_id=material.id, user_id=user.id)
        chunk.position, chunk.text, chunk.token_count = 0, text, 9
        session.add(chunk)
        await session.commit()
    result = alembic(empty_database, "upgrade", "head")
    assert result.returncode == 0, result.stderr
    async with _database(empty_database) as db, db.session() as session:
        sized = update(Material).where(Material.id == material.id).values(byte_size=FOUR_GIB)
        await session.execute(sized)
        await session.commit()
        assert await session.scalar(select(Material.byte_size)) == FOUR_GIB
        assert await session.scalar(select(func.count()).select_from(Chunk)) == 1
