"""Restoring a backup: the database into place, the vectors into a Chroma server.

Run it with the API and workers stopped (`python -m scripts.restore`). It refuses to
overwrite a database that holds data or a collection that holds vectors unless forced,
and checks afterwards that every table has the rows and every collection the vectors
that the manifest recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from chromadb.api import AsyncClientAPI

from shared.backups import database, vectors
from shared.backups.schemas import DATABASE_FILE, FORMAT_VERSION, MANIFEST_NAME, Manifest
from shared.clients.vectorstore import connect
from shared.config import Settings
from shared.storage import ensure_layout


class RestoreRefused(Exception):
    """The target is not empty (and the restore was not forced), or does not fit."""


class RestoreMismatch(Exception):
    """After the restore, the counts differ from the manifest's."""


def read_manifest(backup: Path) -> Manifest:
    path = backup / MANIFEST_NAME
    if not path.is_file():
        raise RestoreRefused(f"{backup} is not a backup: it has no {MANIFEST_NAME}.")
    manifest = Manifest.model_validate_json(path.read_bytes())
    if manifest.format != FORMAT_VERSION:
        raise RestoreRefused(f"Backup format {manifest.format} is not {FORMAT_VERSION}.")
    return manifest


async def restore(
    backup: Path, settings: Settings, *, force: bool, echo: Callable[[str], None]
) -> Manifest:
    """Restore `backup` into the database and Chroma server that `settings` name."""
    manifest = read_manifest(backup)
    client = await connect(settings.chroma_url)
    await _check_target(manifest, settings, client, force=force)
    if manifest.database_included:
        ensure_layout(settings)
        target = database.database_path(settings)
        database.put_in_place(backup / DATABASE_FILE, target)
        _verify("rows", manifest.tables, database.table_counts(target))
        echo(f"database: {sum(manifest.tables.values())} rows in {len(manifest.tables)} tables")
    else:
        echo(f"database: not in this backup. {manifest.database_note or ''}".strip())
    counts = await vectors.import_collections(client, backup, manifest.collections)
    _verify("vectors", {c.name: c.count for c in manifest.collections}, counts)
    echo(f"vectors: {sum(counts.values())} in {len(counts)} collections at {settings.chroma_url}")
    return manifest


async def _check_target(
    manifest: Manifest, settings: Settings, client: AsyncClientAPI, *, force: bool
) -> None:
    if manifest.database_included and not settings.is_sqlite:
        raise RestoreRefused(
            "This backup holds a SQLite database but DATABASE_URL names a database server; "
            "unset DATABASE_URL (or pass --data-dir) to restore into SQLite."
        )
    occupied = []
    target = database.database_path(settings)
    if manifest.database_included and database.holds_data(target):
        occupied.append(f"the database {target} holds data")
    wanted = {c.name for c in manifest.collections}
    for collection in await client.list_collections():
        if collection.name in wanted and await collection.count() > 0:
            occupied.append(f"the Chroma collection {collection.name} holds vectors")
    if occupied and not force:
        raise RestoreRefused(
            "Refusing to overwrite: " + "; ".join(occupied) + ". Pass --force to replace them."
        )


def _verify(what: str, expected: Mapping[str, int], actual: Mapping[str, int]) -> None:
    wrong = {k: (n, actual.get(k)) for k, n in expected.items() if actual.get(k) != n}
    if wrong:
        details = ", ".join(f"{k}: expected {n}, found {found}" for k, (n, found) in wrong.items())
        raise RestoreMismatch(f"The restored {what} do not match the manifest: {details}")
