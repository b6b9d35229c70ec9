from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.fields import NOT_BLANK, Id, WholeNumber
from shared.jobs.schemas import JobOut

QuestionType = Literal["multiple_choice", "true_false", "short_answer"]
Difficulty = Literal["easy", "medium", "hard"]
QuizStatusName = Literal["generating", "ready", "failed"]
ALL_TYPES: tuple[QuestionType, ...] = ("multiple_choice", "true_false", "short_answer")
MAX_QUESTIONS = 50
MAX_ANSWER_CHARS = 2000


class QuizIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200, pattern=NOT_BLANK)
    material_ids: list[Id] = Field(
        default_factory=list, max_length=100, description="Empty means all of my materials."
    )
    num_questions: WholeNumber = Field(default=10, ge=1, le=MAX_QUESTIONS)
    question_types: list[QuestionType] = Field(
        default_factory=lambda: list(ALL_TYPES), min_length=1, max_length=3
    )
    difficulty: Difficulty = "medium"

    @field_validator("question_types")
    @classmethod
    def _each_once(cls, value: list[QuestionType]) -> list[QuestionType]:
        return list(dict.fromkeys(value))

    @field_validator("title")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value.strip() if value else value


class QuizOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    material_ids: list[str]
    num_questions: int = Field(description="How many questions were asked for.")
    question_types: list[QuestionType]
    difficulty: Difficulty
    status: QuizStatusName
    error: str | None = Field(description="Why generation failed, when it did.")
    job_id: str | None
    created_at: datetime
    updated_at: datetime


class Source(BaseModel):
    """Where a question comes from in the learner's material."""

    chunk_id: str | None
    material_id: str | None
    title: str | None = None
    page: int | None = None
    start_s: float | None = None


class QuestionOut(BaseModel):
    """A question as the learner sees it before answering: no answer, no explanation."""

    id: str
    position: int
    type: QuestionType
    question: str
    options: list[str] | None = Field(description="The choices, for multiple choice.")
    topic: str


class QuizDetail(QuizOut):
    questions: list[QuestionOut]


class QuizCreated(BaseModel):
    quiz: QuizOut
    job: JobOut


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question_id: str = Field(min_length=1, max_length=64)
    answer: str | bool = Field(
        description="An option's text (or its letter A–F) for multiple choice, true/false, "
        "or free text for short answers."
    )

    @field_validator("answer")
    @classmethod
    def _bounded(cls, value: str | bool) -> str | bool:
        if isinstance(value, str) and len(value) > MAX_ANSWER_CHARS:
            raise ValueError(f"at most {MAX_ANSWER_CHARS} characters")
        return value


class AttemptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answers: list[AnswerIn] = Field(min_length=1, max_length=MAX_QUESTIONS)


class QuestionResult(BaseModel):
    question_id: str
    question: str
    topic: str
    correct: bool
    your_answer: str | None = Field(description="None when the question was left unanswered.")
    expected_answer: str
    explanation: str
    source: Source


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    quiz_id: str
    score: float = Field(description="Correct answers over all questions, 0–1.")
    correct: int
    total: int
    results: list[QuestionResult]
    cards_to_review: int = Field(
        default=0,
        description="Flashcards on the missed questions' passages or topics, rescheduled as "
        "forgotten (an `again` review) by this attempt.",
    )
    created_at: datetime
