from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.fields import Id

TutorStyle = Literal["direct", "socratic"]


class SessionIn(BaseModel):
    title: str = Field(default="New chat", min_length=1, max_length=200)
    material_ids: list[Id] = Field(
        default_factory=list,
        max_length=100,
        description="Limit retrieval to these materials; empty means all of mine.",
    )
    style: TutorStyle = Field(
        default="direct", description="direct answers, or socratic: guiding questions first."
    )


class SessionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    style: TutorStyle
    material_ids: list[str]
    created_at: datetime
    updated_at: datetime


class Citation(BaseModel):
    material_id: str
    chunk_id: str
    title: str
    page: int | None = None
    start_s: float | None = None
    quote: str


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    role: Literal["user", "assistant"]
    content: str
    citations: list[Citation]
    usage: dict[str, Any] | None
    created_at: datetime


class SessionDetail(SessionOut):
    messages: list[MessageOut]


class MessageIn(BaseModel):
    # No NUL: PostgreSQL cannot store one, and the question is saved after an SSE answer
    # has started, too late for a 422.
    content: str = Field(min_length=1, max_length=8000, pattern=r"^[^\x00]*$")
