from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class TopicProgress(BaseModel):
    topic: str
    mastery: float = Field(description="0–1: recent quiz accuracy and card recall, averaged.")
    quiz_accuracy: float | None = Field(description="Of the last 20 answers on the topic.")
    questions_answered: int
    cards: int
    predicted_recall: float | None = Field(
        description="Mean FSRS retrievability of the topic's cards now (never reviewed = 0)."
    )
    predicted_recall_on_exam: float | None = Field(
        description="The same on the morning of the exam date, when one is set."
    )


class ProgressOut(BaseModel):
    timezone: str
    today: dt.date
    streak_days: int = Field(description="Consecutive days with study, up to today.")
    study_minutes: float = Field(description="All time; measured for reviews, else estimated.")
    study_minutes_today: float
    cards_reviewed: int
    questions_answered: int
    quiz_accuracy: float | None
    cards_due: int
    exam_date: dt.date | None
    topics: list[TopicProgress] = Field(description="Weakest first.")


class DayProgress(BaseModel):
    date: dt.date
    study_minutes: float
    cards_reviewed: int
    questions_answered: int
    questions_correct: int
    quiz_accuracy: float | None
    chat_questions: int
    modules_completed: int


class ProgressHistory(BaseModel):
    timezone: str
    days: list[DayProgress] = Field(description="One row per day, oldest first, today last.")
