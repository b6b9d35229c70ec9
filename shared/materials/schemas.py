from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.fields import NOT_BLANK
from shared.jobs.schemas import JobOut
from shared.materials.models import MaterialStatus

MAX_TEXT_CHARS = 2_000_000


class TextMaterialIn(BaseModel):
    title: str = Field(min_length=1, max_length=300, pattern=NOT_BLANK)
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, pattern=NOT_BLANK)

    @field_validator("title", "text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class MaterialOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    kind: str
    source: str
    source_ref: str | None = Field(description="The URL a link material came from.")
    acquisition: str | None = Field(
        description="How the content was obtained: text, upload, captions, audio, web_page, "
        "download."
    )
    original_filename: str | None
    byte_size: int | None
    status: MaterialStatus
    error: str | None
    job_id: str | None
    embedding_model: str | None
    char_count: int
    chunk_count: int
    page_count: int | None
    duration_s: float | None
    created_at: datetime
    updated_at: datetime


class MaterialCreated(BaseModel):
    material: MaterialOut
    job: JobOut


class RejectedUpload(BaseModel):
    filename: str
    message: str


class UploadResult(BaseModel):
    items: list[MaterialCreated]
    rejected: list[RejectedUpload]


class UrlMaterialIn(BaseModel):
    url: str = Field(
        min_length=1,
        max_length=2048,
        examples=["https://youtu.be/dQw4w9WgXcQ"],
        # documents what shared.clients.urlguard.check_url enforces (after strip())
        json_schema_extra={"pattern": r"^\s*[Hh][Tt][Tt][Pp][Ss]?://"},
        description="An http(s) link; addresses inside private networks are refused (422).",
    )
    title: str | None = Field(default=None, max_length=300)


class ChunkOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    material_id: str
    position: int
    text: str
    token_count: int
    heading: str | None
    page: int | None
    start_s: float | None
    end_s: float | None


class Location(BaseModel):
    position: int
    heading: str | None
    page: int | None
    start_s: float | None
    end_s: float | None


class SearchHit(BaseModel):
    chunk_id: str
    material_id: str
    material_title: str
    text: str
    score: float = Field(description="Cosine similarity, 1 is identical.")
    location: Location


class SearchResults(BaseModel):
    query: str
    hits: list[SearchHit]
