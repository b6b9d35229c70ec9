"""Which rows, columns and files belong to a user — found from the schema, not listed.

Every table of `shared.models` is owned when it has a `user_id` column, or a foreign key to
an owned table (a child row belongs to whoever owns its parent), `users` itself by its
`id`. A table added later is picked up without touching this package. Columns that hold
credentials (`password…`, `…secret…`, `…_hash`) are never exported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Column, ColumnElement, MetaData, Table, select

from shared.config import Settings
from shared.models import Base

USERS = "users"
FILE_COLUMN = "file_path"
"""A column of this name holds a stored file's path, relative to the data dir."""
_SECRET_COLUMN = re.compile(r"password|secret|_hash$")


@dataclass(frozen=True, slots=True)
class OwnedTable:
    """A table with the rule that picks a user's rows out of it."""

    table: Table
    column: Column[Any]
    """`user_id` (or `users.id`), or the foreign key to the owned `parent`."""
    parent: OwnedTable | None = None
    parent_column: Column[Any] | None = None

    def mine(self, user_id: str) -> ColumnElement[bool]:
        if self.parent is None or self.parent_column is None:
            return self.column == user_id
        parents = select(self.parent_column).where(self.parent.mine(user_id))
        return self.column.in_(parents)

    @property
    def public_columns(self) -> list[Column[Any]]:
        return [c for c in self.table.columns if not _SECRET_COLUMN.search(c.name)]

    @property
    def secret_columns(self) -> list[str]:
        return [c.name for c in self.table.columns if _SECRET_COLUMN.search(c.name)]

    @property
    def order(self) -> list[Column[Any]]:
        """Children grouped under their parents, in `position` order, then by id (time)."""
        keys = [
            c
            for c in self.table.columns
            if any(fk.column.table.name != USERS for fk in c.foreign_keys)
        ]
        if "position" in self.table.c:
            keys.append(self.table.c.position)
        return keys + [c for c in self.table.primary_key.columns if c not in keys]


def owned_tables(metadata: MetaData = Base.metadata) -> list[OwnedTable]:
    """Every owned table, parents before children (delete them in reverse)."""
    found: dict[str, OwnedTable] = {}
    for table in metadata.sorted_tables:
        owned = _ownership(table, found)
        if owned is not None:
            found[table.name] = owned
    return list(found.values())


def _ownership(table: Table, found: dict[str, OwnedTable]) -> OwnedTable | None:
    if table.name == USERS:
        return OwnedTable(table, table.c.id)
    if "user_id" in table.c:
        return OwnedTable(table, table.c.user_id)
    for fk in table.foreign_keys:
        parent = found.get(fk.column.table.name)
        if parent is not None:
            return OwnedTable(table, fk.parent, parent, fk.column)
    return None


def stored_file(settings: Settings, relative: str | None) -> Path | None:
    """The file a `file_path` value names, or None if it would leave `uploads/`."""
    if not relative:
        return None
    uploads = (settings.data_dir.resolve() / "uploads").resolve()
    path = (uploads.parent / relative).resolve()
    return path if path.is_relative_to(uploads) else None
