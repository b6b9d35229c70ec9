"""Everything a learner owns as one zip: a JSON Lines file per table, their stored files,
a manifest.json with counts and a README.txt.

Rows are read in batches inside one read transaction (one consistent snapshot on SQLite)
and written to a temporary file under `exports/accounts/` by worker threads, so neither
memory nor the event loop carries the whole export. The caller sends the file and deletes
it.

What is left out: columns that hold credentials (the password hash, API-key hashes; see
`shared.account.owned`). Refresh-token rows are kept — they are the account's sign-in
history (issued, used, revoked, expiry) and hold no secret: a token is a signed JWT, and
its row only knows its id.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.account.owned import FILE_COLUMN, OwnedTable, owned_tables, stored_file
from shared.config import Settings
from shared.db import Database
from shared.ids import new_id

BATCH = 500
STALE_AFTER_S = 24 * 3600
FORMAT = "brainwave-export/1"
README = """Brainwave: everything stored for your account, exported on {date}.

tables/<name>.jsonl  one JSON object per line, one line per row of that table, in order
                     (chunks: the extracted text of each material, by position).
                     Times are UTC, ISO 8601. Ids link the tables together: a card's
                     deck_id is the id of a line in decks.jsonl.
files/<table>/…      the files you uploaded (and audio fetched for your links).
manifest.json        the row count of every table, the columns left out, every file.

Left out: your password hash and the hashes of your API keys. They are not readable data,
only what the service needs to check a password or a key.
"""


def export_filename(now: datetime | None = None) -> str:
    return f"brainwave-export-{(now or datetime.now(UTC)).date().isoformat()}.zip"


class _Archive:
    """The zip being written. Its methods block: call them with `asyncio.to_thread`."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _sweep(path.parent)
        self.path = path
        self.zip = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
        self._member: IO[bytes] | None = None

    def add_lines(self, name: str, lines: list[bytes], *, append: bool) -> None:
        """Write `lines` to the member `name`; members are written one after another."""
        if not append or self._member is None:
            self._member = self.zip.open(name, "w", force_zip64=True)
        self._member.write(b"".join(lines))

    def end_member(self) -> None:
        if self._member is not None:
            self._member.close()
            self._member = None

    def add_file(self, path: Path, name: str) -> int:
        """Copy a stored file in; return its size."""
        media = path.parent.name == "media"  # audio and video are compressed already
        method = zipfile.ZIP_STORED if media else zipfile.ZIP_DEFLATED
        self.zip.write(path, name, compress_type=method)
        return path.stat().st_size

    def add_text(self, name: str, data: bytes) -> None:
        self.zip.writestr(name, data)

    def close(self) -> None:
        self.zip.close()

    def discard(self) -> None:
        self.end_member()
        self.zip.close()
        self.path.unlink(missing_ok=True)


def _sweep(directory: Path) -> None:
    """Delete exports left behind by a process that died before sending them."""
    cutoff = time.time() - STALE_AFTER_S
    for leftover in directory.glob("*.zip"):
        with contextlib.suppress(FileNotFoundError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()


@dataclass(slots=True)
class _Contents:
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)


async def build_export(db: Database, settings: Settings, user_id: str) -> Path:
    """Write the user's archive to a temporary file and return its path (delete it after)."""
    path = settings.data_dir.resolve() / "exports" / "accounts" / f"{new_id()}.zip"
    archive = await asyncio.to_thread(_Archive, path)
    try:
        contents = _Contents()
        async with db.read_session() as session:
            for owned in owned_tables():
                await _add_table(session, archive, owned, user_id, contents)
        for entry in contents.files:
            await _add_stored_file(archive, settings, entry)
        await asyncio.to_thread(_finish, archive, user_id, contents)
    except BaseException:
        await asyncio.to_thread(archive.discard)
        raise
    return path


async def _add_table(
    session: AsyncSession, archive: _Archive, owned: OwnedTable, user_id: str, into: _Contents
) -> None:
    name = f"tables/{owned.table.name}.jsonl"
    query = (
        select(*owned.public_columns)
        .where(owned.mine(user_id))
        .order_by(*owned.order)
        .execution_options(yield_per=BATCH)
    )
    rows = 0
    result = await session.stream(query)
    async for batch in result.mappings().partitions():
        records = [dict(row) for row in batch]
        lines = [orjson.dumps(r, default=_json_value) + b"\n" for r in records]
        await asyncio.to_thread(archive.add_lines, name, lines, append=rows > 0)
        rows += len(records)
        into.files += _files_of(owned, records)
    if rows:
        await asyncio.to_thread(archive.end_member)
    else:
        await asyncio.to_thread(archive.add_text, name, b"")
    into.tables[str(owned.table.name)] = {  # not a str subclass: orjson keys are plain
        "file": name,
        "rows": rows,
        "omitted_columns": [str(c) for c in owned.secret_columns],
    }


def _files_of(owned: OwnedTable, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if FILE_COLUMN not in owned.table.c:
        return []
    key = next(iter(owned.table.primary_key.columns)).name
    return [
        {"table": owned.table.name, "id": r[key], "stored_path": r[FILE_COLUMN]}
        for r in records
        if r[FILE_COLUMN]
    ]


async def _add_stored_file(archive: _Archive, settings: Settings, entry: dict[str, Any]) -> None:
    """Copy one stored file into `files/`, or record in its entry why it is not there."""
    path = stored_file(settings, entry["stored_path"])
    if path is None or not await asyncio.to_thread(path.is_file):
        entry.update(included=False, archive_path=None, bytes=None)
        return
    name = f"files/{entry['table']}/{path.name}"
    size = await asyncio.to_thread(archive.add_file, path, name)
    entry.update(included=True, archive_path=name, bytes=size)


def _finish(archive: _Archive, user_id: str, contents: _Contents) -> None:
    now = datetime.now(UTC)
    manifest = {
        "format": FORMAT,
        "exported_at": now.isoformat(),
        "user_id": user_id,
        "tables": contents.tables,
        "files": contents.files,
    }
    option = orjson.OPT_INDENT_2
    archive.add_text("manifest.json", orjson.dumps(manifest, default=_json_value, option=option))
    archive.add_text("README.txt", README.format(date=now.date().isoformat()).encode())
    archive.close()


def _json_value(value: object) -> object:
    """What orjson does not serialise itself."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"cannot export a {type(value).__name__}")
