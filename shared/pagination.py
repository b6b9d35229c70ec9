"""Cursor pagination over time-ordered ids: newest first, the cursor is the last id seen."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


def page_of(items: list[T], limit: int, cursor_of: str | None) -> Page[T]:
    """Build a page from up to limit+1 fetched rows; `cursor_of` is the id of row limit-1."""
    has_more = len(items) > limit
    return Page(items=items[:limit], next_cursor=cursor_of if has_more else None)
