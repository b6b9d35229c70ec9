"""The learner's own settings."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ReadSessionDep, SessionDep, UserId
from api.errors import responses
from shared.auth import preferences
from shared.auth.preferences import UserSettingsIn, UserSettingsOut

router = APIRouter(prefix="/api/me", tags=["me"])


@router.get("/settings", responses=responses(401))
async def get_settings(user_id: UserId, session: ReadSessionDep) -> UserSettingsOut:
    return await preferences.get_settings(session, user_id)


@router.patch("/settings", responses=responses(401, 422))
async def update_settings(
    data: UserSettingsIn, user_id: UserId, session: SessionDep
) -> UserSettingsOut:
    """`desired_retention` (0.7–0.99, default 0.9): the recall probability FSRS aims for
    when a card comes due; higher means more frequent reviews. `timezone` (IANA name,
    default UTC): the learner's days for streaks and daily history. Fields left out keep
    their value."""
    updated = await preferences.update_settings(session, user_id, data)
    await session.commit()
    return updated
