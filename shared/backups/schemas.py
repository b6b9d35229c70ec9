"""The manifest written beside every backup, and what the admin API lists."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.jobs.schemas import JobOut

MANIFEST_NAME = "manifest.json"
DATABASE_FILE = "brainwave.db"
FORMAT_VERSION = 1


class CollectionSnapshot(BaseModel):
    """One Chroma collection: `<file>.jsonl` (id, document, metadata per line) and
    `<file>.f32` (the embeddings, float32, row-major, in the same order)."""

    name: str
    metadata: dict[str, Any] | None
    dimension: int
    count: int
    file: str


class Manifest(BaseModel):
    format: int = FORMAT_VERSION
    created_at: datetime
    embedding_model: str
    database_included: bool
    database_note: str | None = Field(
        default=None, description="Why the database is not in this backup, when it is not."
    )
    alembic_revision: str | None = None
    tables: dict[str, int] = Field(default_factory=dict, description="Rows per table.")
    collections: list[CollectionSnapshot] = Field(default_factory=list)
    seconds: dict[str, float] = Field(default_factory=dict, description="Time per part.")


class BackupOut(BaseModel):
    name: str
    created_at: datetime
    size_bytes: int
    database_included: bool
    vectors: int


class BackupList(BaseModel):
    items: list[BackupOut]


class BackupStarted(BaseModel):
    job: JobOut
