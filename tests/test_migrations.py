"""Alembic: migrations apply on an empty database, are idempotent, go down and up again,
and match the models — on SQLite, and on PostgreSQL whenever one answers (the server at
TEST_DATABASE_URL, else the default local one), whichever database the suite runs on."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config import Settings
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
