"""Cursor pagination over time-ordered ids: newest first, the cursor is the last id seen."""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

T = TypeVar("T")


class _HasId(Protocol):
    id: Any


R = TypeVar("R", bound=_HasId)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


M = TypeVar("M", bound=BaseModel)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )

    def validated(self, schema: type[M]) -> Page[M]:
        """The same page with each row read into `schema` (ORM rows → response models)."""
        items = [schema.model_validate(item) for item in self.items]
        return Page(items=items, next_cursor=self.next_cursor)


def page_of(items: list[T], limit: int, cursor_of: str | None) -> Page[T]:
    """Build a page from up to limit+1 fetched rows; `cursor_of` is the id of row limit-1."""
    has_more = len(items) > limit
    return Page(items=items[:limit], next_cursor=cursor_of if has_more else None)


async def newest_first(
    session: AsyncSession,
    query: Select[R],
    id_column: InstrumentedAttribute[str],
    *,
    limit: int,
    cursor: str | None,
) -> Page[R]:
    """One page of rows by time-ordered id, newest first, after `cursor`."""
    if cursor:
        query = query.where(id_column < cursor)
    rows = list(await session.scalars(query.order_by(id_column.desc()).limit(limit + 1)))
    return page_of(rows, limit, str(rows[limit - 1].id) if len(rows) > limit else None)
