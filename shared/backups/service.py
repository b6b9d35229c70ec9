"""Taking, listing and pruning backups, and who may ask for them.

A backup is a directory `<DATA_DIR>/exports/backups/<UTC timestamp>/` holding the SQLite
database (copied through the online backup API while writes go on), a Chroma snapshot
(exported over HTTP) and `manifest.json` (time, Alembic revision, rows per table, vectors
per collection, embedder). It is written into a hidden temporary directory beside the
others, flushed to disk, and renamed into place, so a listed backup is always complete.

The database is copied before the vectors are exported. A material is marked ready only
after its vectors are in Chroma, so every chunk in the copied database has its vector in
the snapshot, unless its material was deleted while the backup ran. Vectors of materials
still being indexed meanwhile may be extra; search ignores vectors without a chunk row.

With a database server (DATABASE_URL is PostgreSQL) the database is not copied: that
service backs it up (pg_dump, RDS snapshots, point-in-time recovery). The vectors exist
only in Chroma, so they are still snapshotted, and the manifest and the job result say
that the database is not included.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth.models import User
from shared.backups import database, vectors
from shared.backups.schemas import DATABASE_FILE, MANIFEST_NAME, BackupOut, Manifest
from shared.clients.vectorstore import connect
from shared.config import Settings
from shared.errors import Forbidden
from shared.jobs.models import Job
from shared.jobs.service import create_job
from shared.resources import Resources

BACKUP = "backup"
PARTIAL_PREFIX = ".partial-"
SERVER_DATABASE_NOTE = (
    "The database is not in this backup: DATABASE_URL names a database server, which is "
    "backed up by that service (pg_dump, RDS snapshots, point-in-time recovery). "
    "The vectors are."
)
Progress = Callable[[int, str], Awaitable[None]]


async def require_admin(session: AsyncSession, settings: Settings, user_id: str) -> None:
    """Raise Forbidden unless the user's email is one of ADMIN_EMAILS."""
    email = await session.scalar(select(User.email).where(User.id == user_id))
    admins = {a.strip().lower() for a in settings.admin_emails}
    if email is None or email.lower() not in admins:
        raise Forbidden("Only an administrator can manage backups.")


def start_backup(session: AsyncSession, user_id: str) -> Job:
    """A queued backup job; the caller commits and enqueues it."""
    return create_job(session, user_id, BACKUP, {})


async def take_backup(resources: Resources, progress: Progress) -> dict[str, Any]:
    """Write one backup, then keep only the newest BACKUP_KEEP. Returns a small summary."""
    settings = resources.settings
    root = settings.backups_dir
    root.mkdir(parents=True, exist_ok=True)
    created = datetime.now(UTC)
    name = backup_name(created)
    partial = Path(tempfile.mkdtemp(prefix=PARTIAL_PREFIX, dir=root))
    try:
        manifest = await _write(resources, partial, created, progress)
        await progress(97, "saving")
        await asyncio.to_thread(_publish, partial, root / name)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    deleted = await asyncio.to_thread(
        prune, root, settings.backup_keep, settings.job_timeout_seconds
    )
    return {
        "backup": name,
        "size_bytes": _size(root / name),
        "database_included": manifest.database_included,
        "vectors": sum(c.count for c in manifest.collections),
        "seconds": manifest.seconds,
        "deleted": deleted,
        "note": manifest.database_note,
    }


def backup_name(created: datetime) -> str:
    """A UTC timestamp that sorts by time, e.g. `20261125T030000.123Z`."""
    return f"{created:%Y%m%dT%H%M%S}.{created.microsecond // 1000:03d}Z"


async def _write(
    resources: Resources, directory: Path, created: datetime, progress: Progress
) -> Manifest:
    settings = resources.settings
    manifest = Manifest(
        created_at=created,
        embedding_model=resources.embedder.model_id,
        database_included=settings.is_sqlite,
    )
    if settings.is_sqlite:
        await progress(5, "copying the database")
        started = time.perf_counter()
        await asyncio.to_thread(
            _copy_database, database.database_path(settings), directory, manifest
        )
        manifest.seconds["database"] = round(time.perf_counter() - started, 3)
    else:
        manifest.database_note = SERVER_DATABASE_NOTE

    async def step(done: int, total: int) -> None:
        await progress(30 + 65 * done // max(total, 1), f"exporting vectors {done}/{total}")

    await progress(30, "exporting vectors")
    started = time.perf_counter()
    client = await connect(settings.chroma_url)
    manifest.collections = await vectors.export_collections(client, directory, step)
    manifest.seconds["vectors"] = round(time.perf_counter() - started, 3)
    (directory / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2))
    return manifest


def _copy_database(source: Path, directory: Path, manifest: Manifest) -> None:
    copy = directory / DATABASE_FILE
    database.copy_live_database(source, copy)
    manifest.tables = database.table_counts(copy)
    manifest.alembic_revision = database.alembic_revision(copy)


def _publish(partial: Path, final: Path) -> None:
    """Flush every file, then rename the directory into place (refused if it exists)."""
    for path in partial.iterdir():
        with path.open("rb") as f:
            os.fsync(f.fileno())
    partial.chmod(0o755)  # mkdtemp made it private
    os.rename(partial, final)
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune(root: Path, keep: int, partial_max_age_s: float) -> list[str]:
    """Delete all but the newest `keep` backups, and partial ones older than a job may run
    (left by a killed worker). Returns the names of the deleted backups."""
    names = sorted(p.name for p in root.glob("[!.]*") if p.is_dir())
    doomed = names[: max(0, len(names) - keep)]
    for name in doomed:
        shutil.rmtree(root / name)
    stale_before = time.time() - partial_max_age_s
    for partial in root.glob(PARTIAL_PREFIX + "*"):
        if partial.stat().st_mtime < stale_before:
            shutil.rmtree(partial, ignore_errors=True)
    return doomed


def list_backups(root: Path) -> list[BackupOut]:
    """The complete backups under `root`, newest first (blocking: call it in a thread)."""
    found = []
    for path in sorted(root.glob("[!.]*"), reverse=True):
        manifest_path = path / MANIFEST_NAME
        if not manifest_path.is_file():
            continue
        manifest = Manifest.model_validate_json(manifest_path.read_bytes())
        found.append(
            BackupOut(
                name=path.name,
                created_at=manifest.created_at,
                size_bytes=_size(path),
                database_included=manifest.database_included,
                vectors=sum(c.count for c in manifest.collections),
            )
        )
    return found


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
