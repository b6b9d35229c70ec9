from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shared.fields import NOT_A_BOOLEAN, NOT_BLANK, Id, WholeNumber
from shared.jobs.schemas import JobOut

RatingName = Literal["again", "hard", "good", "easy"]
CardState = Literal["new", "learning", "review", "relearning"]
MAX_GENERATED_CARDS = 200


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


class GenerateIn(BaseModel):
    count: WholeNumber = Field(default=20, ge=1, le=MAX_GENERATED_CARDS)


class DeckIn(BaseModel):
    title: str = Field(min_length=1, max_length=200, pattern=NOT_BLANK)
    material_ids: list[Id] = Field(
        default_factory=list,
        max_length=100,
        description="The materials the deck is about; when generating, empty means all of mine.",
    )
    generate: GenerateIn | None = Field(
        default=None, description="Generate up to `count` cards from the materials (a job)."
    )

    _title = field_validator("title")(_not_blank)


class DeckOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    material_ids: list[str]
    job_id: str | None = Field(description="The generation job, when the deck was generated.")
    created_at: datetime
    updated_at: datetime


class DeckDetail(DeckOut):
    card_count: int
    due_count: int


class DeckCreated(BaseModel):
    deck: DeckOut
    job: JobOut


class CardIn(BaseModel):
    front: str = Field(min_length=1, max_length=4000, pattern=NOT_BLANK)
    back: str = Field(min_length=1, max_length=8000, pattern=NOT_BLANK)

    _text = field_validator("front", "back")(_not_blank)


class CardPatch(BaseModel):
    front: str | None = Field(default=None, min_length=1, max_length=4000, pattern=NOT_BLANK)
    back: str | None = Field(default=None, min_length=1, max_length=8000, pattern=NOT_BLANK)

    @field_validator("front", "back")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return None if value is None else _not_blank(value)


class CardOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    deck_id: str
    front: str
    back: str
    chunk_id: str | None = Field(description="The passage the card was generated from.")
    material_id: str | None
    topic: str | None = Field(description="The topic of the passage it came from.")
    state: CardState
    due_at: datetime
    last_review_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ReviewIn(BaseModel):
    rating: RatingName
    duration_ms: Annotated[int, Field(ge=0, le=24 * 3600 * 1000), NOT_A_BOOLEAN] | None = None
    reviewed_at: AwareDatetime | None = Field(
        default=None,
        description="When the review happened (for reviews made offline); defaults to now. "
        "Not before the card's previous review.",
    )


class ReviewOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    card_id: str
    rating: RatingName
    duration_ms: int | None
    reviewed_at: datetime
    state: CardState = Field(description="The card's state after this review.")
    scheduled_days: float = Field(description="Days from this review to the next due time.")


class ReviewResult(BaseModel):
    review: ReviewOut
    card: CardOut
    due_at: datetime
    state: CardState


class DueCards(BaseModel):
    items: list[CardOut]
    due_count: int = Field(description="All cards due now (in the deck, when one is given).")


class ImportResult(BaseModel):
    deck: DeckOut
    imported: int
