from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.dates import IsoDate
from shared.fields import NOT_BLANK, Id, WholeNumber
from shared.jobs.schemas import JobOut

Level = Literal["beginner", "intermediate", "advanced"]
PathStatusName = Literal["generating", "ready", "failed"]
ModuleStatus = Literal["locked", "available", "in_progress", "mastered"]
Action = Literal["review_cards", "requiz_topic", "continue_module", "start_module", "done"]
MIN_MINUTES_PER_DAY = 5
MAX_MINUTES_PER_DAY = 600


class PathIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    goal: str = Field(
        min_length=1, max_length=500, pattern=NOT_BLANK, description="What I want to be able to do."
    )
    material_ids: list[Id] = Field(
        default_factory=list, max_length=100, description="Empty means all of my materials."
    )
    level: Level = "intermediate"
    minutes_per_day: WholeNumber = Field(default=30, ge=MIN_MINUTES_PER_DAY, le=MAX_MINUTES_PER_DAY)
    exam_date: IsoDate | None = Field(
        default=None, description="Today or later, in my time zone; enables the plan."
    )

    @field_validator("goal")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class PathOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    goal: str
    material_ids: list[str]
    level: Level
    minutes_per_day: int
    exam_date: date | None
    status: PathStatusName
    error: str | None = Field(description="Why generation failed, when it did.")
    job_id: str | None
    created_at: datetime
    updated_at: datetime


class ModuleOut(BaseModel):
    id: str
    position: int
    title: str
    objectives: list[str]
    chunk_ids: list[str] = Field(description="The passages to study, in reading order.")
    material_ids: list[str]
    topics: list[str]
    minutes: int = Field(description="Estimated study time: reading and practice.")
    completed_at: datetime | None
    status: ModuleStatus
    mastery: float = Field(description="0–1, from quiz answers and card memory.")
    quiz_accuracy: float | None = Field(description="Recent quiz answers on it, 0–1.")
    mean_recall: float | None = Field(description="Mean recall probability of its cards now.")


class PathDetail(PathOut):
    modules: list[ModuleOut]


class PathCreated(BaseModel):
    path: PathOut
    job: JobOut


class PlanModule(BaseModel):
    module_id: str
    title: str
    minutes: int


class PlanDay(BaseModel):
    date: date
    minutes: int
    modules: list[PlanModule]
    review: bool = Field(description="A day kept for reviewing before the exam.")


class Plan(BaseModel):
    exam_date: date
    days_left: int = Field(description="Days from today (in my time zone) to the exam.")
    minutes_needed: int = Field(description="Estimates of the modules not yet mastered.")
    minutes_per_day_needed: int
    minutes_per_day: int
    on_track: bool = Field(description="My daily time covers what is needed per day.")
    schedule: list[PlanDay]


class NextStep(BaseModel):
    action: Action
    reason: str
    module_id: str | None = None
    topic: str | None = None
    accuracy: float | None = Field(default=None, description="For requiz_topic.")
    cards_due: int | None = None
    plan: Plan | None = Field(default=None, description="When the path has an exam date.")
