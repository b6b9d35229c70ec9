"""The SQLite part of a backup and a restore: plain `sqlite3`, called in a thread."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from sqlalchemy.engine import make_url

from shared.config import Settings

BUSY_TIMEOUT_S = 30.0


def database_path(settings: Settings) -> Path:
    """The SQLite file DATABASE_URL names (only meaningful when `settings.is_sqlite`)."""
    return Path(make_url(settings.resolved_database_url).database or "")


def copy_live_database(source: Path, target: Path) -> None:
    """Copy a database that is being written to, consistently, through the online backup API.

    One step (`pages=-1`, the default) copies every page inside one read transaction: in
    WAL mode writers go on meanwhile, and the copy is the database as of that moment (a
    copy in several steps would start over whenever another connection writes). The copy
    is switched to a rollback journal so it is one self-contained file, then checked.
    """
    with (
        closing(sqlite3.connect(source, timeout=BUSY_TIMEOUT_S)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
        (check,) = dst.execute("PRAGMA quick_check").fetchone()
    if check != "ok":
        raise RuntimeError(f"the database copy failed its integrity check: {check}")


def table_counts(path: Path) -> dict[str, int]:
    """Rows per table (SQLite's own tables left out)."""
    with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)) as db:
        names = [
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        # The names come from sqlite_master, not from a request.
        count = 'SELECT count(*) FROM "{}"'
        return {name: db.execute(count.format(name)).fetchone()[0] for name in names}


def alembic_revision(path: Path) -> str | None:
    with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)) as db:
        try:
            row = db.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError:  # never migrated
            return None
    return str(row[0]) if row else None


def holds_data(path: Path) -> bool:
    """Whether a database file exists with rows in any table but Alembic's."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    counts = table_counts(path)
    return any(n for name, n in counts.items() if name != "alembic_version")


def put_in_place(copy: Path, target: Path) -> None:
    """Replace the database at `target` with `copy` (the services must be stopped).

    The copy is written beside the target and renamed over it; the target's old WAL and
    shared-memory files are removed first, or SQLite would replay them onto the copy.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(target.name + ".restoring")
    with closing(sqlite3.connect(copy)) as src, closing(sqlite3.connect(staged)) as dst:
        src.backup(dst)
    for suffix in ("-wal", "-shm"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    staged.replace(target)
