"""The learner's own settings."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ReadSessionDep, SessionDep, UserId
from api.errors import responses
from shared.flashcards import service as flashcards
from shared.flashcards.schemas import UserSettingsIn, UserSettingsOut

router = APIRouter(prefix="/api/me", tags=["me"])


@router.get("/settings", responses=responses(401))
async def get_settings(user_id: UserId, session: ReadSessionDep) -> UserSettingsOut:
    return UserSettingsOut(desired_retention=await flashcards.desired_retention(session, user_id))


@router.patch("/settings", responses=responses(401, 422))
async def update_settings(
    data: UserSettingsIn, user_id: UserId, session: SessionDep
) -> UserSettingsOut:
    """`desired_retention` (0.7–0.99, default 0.9): the recall probability FSRS aims for
    when a card comes due. Higher means more frequent reviews."""
    value = await flashcards.set_desired_retention(session, user_id, data.desired_retention)
    await session.commit()
    return UserSettingsOut(desired_retention=value)
