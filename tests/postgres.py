"""PostgreSQL for the suite: a fresh database per use on the server at `TEST_DATABASE_URL`.

When that variable is set, the suite runs on PostgreSQL instead of SQLite files: the
session migrates one template database with Alembic, and every database a test needs is
`CREATE DATABASE … TEMPLATE` of it (a file copy, ~10x faster than migrating), dropped with
`WITH (FORCE)` afterwards. `python -m tests.postgres [URL]` exits 0 when the server answers
(what `make test` asks before the PostgreSQL run).
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import asyncpg
from sqlalchemy.engine import make_url

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
PREFIX = "bw_"


def configured_url() -> str:
    """TEST_DATABASE_URL, or "" when the suite runs on SQLite."""
    return os.environ.get("TEST_DATABASE_URL", "")


class PostgresServer:
    """Creates and drops databases on one server, from sync or async code alike."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.template: str | None = None

    def url_for(self, database: str) -> str:
        return self.url.set(database=database).render_as_string(hide_password=False)

    def _dsn(self) -> str:
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def _execute(self, *statements: str) -> None:
        connection = await asyncpg.connect(self._dsn(), timeout=5)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    def execute(self, *statements: str) -> None:
        """Run statements outside any event loop the caller may be inside (a test's own)."""
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, self._execute(*statements)).result()

    def ping(self) -> bool:
        try:
            self.execute("SELECT 1")
        except Exception:  # refused, timed out, unknown role or database: not usable
            return False
        return True

    def create(self, *, template: str | None = None) -> str:
        """A new database (empty, or a copy of `template`); returns its name."""
        name = f"{PREFIX}{uuid.uuid4().hex[:16]}"
        source = f' TEMPLATE "{template}"' if template else ""
        self.execute(f'CREATE DATABASE "{name}"{source}')
        return name

    def create_from_template(self) -> str:
        """A new database already migrated to head (needs `template` set)."""
        assert self.template is not None, "the session's template database is not ready"
        return self.create(template=self.template)

    def drop(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else configured_url() or DEFAULT_URL
    return 0 if PostgresServer(url).ping() else 1


if __name__ == "__main__":
    raise SystemExit(main())
