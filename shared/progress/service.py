"""The learner's progress: totals, streak, mastery and predicted recall per topic, and a
daily history — all days in the learner's time zone."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.flashcards.models import Card
from shared.paths.service import next_exam_date
from shared.progress import mastery
from shared.progress.events import local_day, user_zone
from shared.progress.models import StudyEvent
from shared.progress.schemas import DayProgress, ProgressHistory, ProgressOut, TopicProgress

EXAM_HOUR = 9  # predicted recall "on the exam date" means on its morning


def streak(days: set[dt.date], today: dt.date) -> int:
    """Consecutive study days ending today — or yesterday, since today is not over yet."""
    day = today if today in days else today - dt.timedelta(days=1)
    count = 0
    while day in days:
        count += 1
        day -= dt.timedelta(days=1)
    return count


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


async def _topics(
    session: AsyncSession, user_id: str, now: dt.datetime, exam_at: dt.datetime | None
) -> list[TopicProgress]:
    answers = await mastery.answers(session, user_id)
    memories = await mastery.cards(session, user_id)
    on_exam = mastery.by_topic([], memories, exam_at) if exam_at else {}
    topics = []
    for name, evidence in mastery.by_topic(answers, memories, now).items():
        exam = on_exam.get(name)
        topics.append(
            TopicProgress(
                topic=name,
                mastery=evidence.mastery,
                quiz_accuracy=_rounded(evidence.quiz_accuracy),
                questions_answered=len(evidence.answers),
                cards=len(evidence.recall),
                predicted_recall=_rounded(evidence.mean_recall),
                predicted_recall_on_exam=_rounded(exam.mean_recall) if exam else None,
            )
        )
    return sorted(topics, key=lambda t: (t.mastery, t.topic.lower()))


async def progress(
    session: AsyncSession, user_id: str, *, exam_date: dt.date | None = None
) -> ProgressOut:
    tz = await user_zone(session, user_id)
    now = dt.datetime.now(dt.UTC)
    today = local_day(now, tz)
    exam_date = exam_date or await next_exam_date(session, user_id, today)
    exam_at = dt.datetime.combine(exam_date, dt.time(EXAM_HOUR), tzinfo=tz) if exam_date else None
    rows = (
        await session.execute(
            select(
                StudyEvent.kind, StudyEvent.local_date, StudyEvent.minutes, StudyEvent.details
            ).where(StudyEvent.user_id == user_id)
        )
    ).all()
    days = {dt.date.fromisoformat(r.local_date) for r in rows}
    attempts = [r.details for r in rows if r.kind == "quiz_attempt"]
    answered = sum(int(d.get("total", 0)) for d in attempts)
    correct = sum(int(d.get("correct", 0)) for d in attempts)
    due = await session.scalar(
        select(func.count()).select_from(Card).where(Card.user_id == user_id, Card.due_at <= now)
    )
    return ProgressOut(
        timezone=str(tz),
        today=today,
        streak_days=streak(days, today),
        study_minutes=round(sum(r.minutes for r in rows), 2),
        study_minutes_today=round(
            sum(r.minutes for r in rows if r.local_date == today.isoformat()), 2
        ),
        cards_reviewed=sum(r.kind == "review" for r in rows),
        questions_answered=answered,
        quiz_accuracy=round(correct / answered, 4) if answered else None,
        cards_due=due or 0,
        exam_date=exam_date,
        topics=await _topics(session, user_id, now, exam_at),
    )


async def history(session: AsyncSession, user_id: str, *, days: int) -> ProgressHistory:
    tz: ZoneInfo = await user_zone(session, user_id)
    today = local_day(dt.datetime.now(dt.UTC), tz)
    first = today - dt.timedelta(days=days - 1)
    rows = await session.execute(
        select(
            StudyEvent.kind, StudyEvent.local_date, StudyEvent.minutes, StudyEvent.details
        ).where(StudyEvent.user_id == user_id, StudyEvent.local_date >= first.isoformat())
    )
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for kind, local_date, minutes, details in rows:
        day = totals[local_date]
        day["minutes"] += minutes
        day[kind] += 1
        if kind == "quiz_attempt":
            day["answered"] += int(details.get("total", 0))
            day["correct"] += int(details.get("correct", 0))
    series = []
    for offset in range(days):
        date = first + dt.timedelta(days=offset)
        day = totals.get(date.isoformat(), {})
        answered = int(day.get("answered", 0))
        series.append(
            DayProgress(
                date=date,
                study_minutes=round(day.get("minutes", 0.0), 2),
                cards_reviewed=int(day.get("review", 0)),
                questions_answered=answered,
                questions_correct=int(day.get("correct", 0)),
                quiz_accuracy=round(day.get("correct", 0) / answered, 4) if answered else None,
                chat_questions=int(day.get("chat", 0)),
                modules_completed=int(day.get("module_completed", 0)),
            )
        )
    return ProgressHistory(timezone=str(tz), days=series)
