"""Progress: where the learner stands, and how their days went."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import ReadSessionDep, UserId
from api.errors import responses
from shared.dates import IsoDate
from shared.progress import service as progress
from shared.progress.schemas import ProgressHistory, ProgressOut

router = APIRouter(prefix="/api/progress", tags=["progress"])


@router.get("", responses=responses(401, 422))
async def get_progress(
    user_id: UserId,
    session: ReadSessionDep,
    exam_date: Annotated[
        IsoDate | None,
        Query(description="Predict recall on this date (default: my next path's exam date)."),
    ] = None,
) -> ProgressOut:
    """Streak, study minutes, cards reviewed, quiz accuracy, cards due, and per topic:
    mastery and predicted recall now and on the exam date."""
    return await progress.progress(session, user_id, exam_date=exam_date)


@router.get("/history", responses=responses(401, 422))
async def get_history(
    user_id: UserId,
    session: ReadSessionDep,
    days: Annotated[int, Query(ge=1, le=366, description="How many days, ending today.")] = 30,
) -> ProgressHistory:
    """One row per day in my time zone, oldest first, days without study included."""
    return await progress.history(session, user_id, days=days)
