"""Recording study events as they happen (the caller's transaction commits them).

Study time is measured where we can (a review's `duration_ms`) and otherwise estimated
with the constants below, which the README states: the backend never sees the learner's
screen, so an estimate is the honest best.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth.models import User
from shared.progress.models import StudyEvent

EventKind = Literal["review", "quiz_attempt", "chat", "module_completed"]
REVIEW_MINUTES = 0.25  # a review without a measured duration
QUESTION_MINUTES = 0.75  # per quiz question answered
CHAT_MINUTES = 1.0  # per question asked to the tutor
MAX_REVIEW_MINUTES = 5.0  # a card left open over lunch is not 60 minutes of study


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


async def user_zone(session: AsyncSession, user_id: str) -> ZoneInfo:
    return zone(await session.scalar(select(User.timezone).where(User.id == user_id)))


def local_day(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


async def record(
    session: AsyncSession,
    user_id: str,
    kind: EventKind,
    *,
    minutes: float,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> StudyEvent:
    occurred = (at or datetime.now(UTC)).astimezone(UTC)
    tz = await user_zone(session, user_id)
    event = StudyEvent(
        user_id=user_id,
        kind=kind,
        occurred_at=occurred,
        local_date=local_day(occurred, tz).isoformat(),
        minutes=round(minutes, 2),
        details=details or {},
    )
    session.add(event)
    return event


def review_minutes(duration_ms: int | None) -> float:
    if duration_ms is None:
        return REVIEW_MINUTES
    return min(duration_ms / 60_000, MAX_REVIEW_MINUTES)
