from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, TimestampMixin, UTCDateTime, utcnow
from shared.ids import new_id


class QuizStatus(StrEnum):
    GENERATING = "generating"
    READY = "ready"
    FAILED = "failed"


class Quiz(TimestampMixin, Base):
    __tablename__ = "quizzes"
    __table_args__ = (Index("ix_quizzes_user_id_id", "user_id", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    material_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    num_questions: Mapped[int] = mapped_column(Integer)
    question_types: Mapped[list[str]] = mapped_column(JSON)
    difficulty: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default=QuizStatus.GENERATING)
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(32))


class Question(Base):
    """A question with its answer; the API shows the answer only after an attempt."""

    __tablename__ = "quiz_questions"
    __table_args__ = (Index("ix_quiz_questions_quiz_id_position", "quiz_id", "position"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    quiz_id: Mapped[str] = mapped_column(ForeignKey("quizzes.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    prompt: Mapped[str] = mapped_column(Text)
    options: Mapped[list[str] | None] = mapped_column(JSON)
    answer: Mapped[str] = mapped_column(Text)
    explanation: Mapped[str] = mapped_column(Text)
    topic: Mapped[str] = mapped_column(String(120))
    chunk_id: Mapped[str | None] = mapped_column(String(48))
    material_id: Mapped[str | None] = mapped_column(String(32))


class Attempt(Base):
    """One graded attempt; `results` keeps each question's answer and verdict."""

    __tablename__ = "quiz_attempts"
    __table_args__ = (
        Index("ix_quiz_attempts_quiz_id_id", "quiz_id", "id"),
        Index("ix_quiz_attempts_user_id_created_at", "user_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    quiz_id: Mapped[str] = mapped_column(ForeignKey("quizzes.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(32))
    score: Mapped[float] = mapped_column(Float)
    correct: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
