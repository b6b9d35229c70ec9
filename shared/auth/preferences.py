"""The learner's own settings: FSRS desired retention and their time zone."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import available_timezones

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth.models import User
from shared.errors import NotFound
from shared.flashcards.scheduling import DEFAULT_RETENTION

TimeZone = Annotated[
    str, Field(max_length=64, json_schema_extra={"enum": sorted(available_timezones())})
]
"""The schema lists the zones `_known_zone` accepts (those of the server's tz database)."""


class UserSettingsIn(BaseModel):
    desired_retention: float | None = Field(
        default=None,
        ge=0.7,
        le=0.99,
        description="Target probability of recall when a card comes due (default 0.9).",
    )
    timezone: TimeZone | None = Field(
        default=None,
        description="IANA time zone, e.g. Europe/Paris: days, streaks and history follow it.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and value not in available_timezones():
            raise ValueError("not a known IANA time zone (e.g. Europe/Paris)")
        return value


class UserSettingsOut(BaseModel):
    desired_retention: float
    timezone: str


async def get_settings(session: AsyncSession, user_id: str) -> UserSettingsOut:
    row = (
        await session.execute(
            select(User.desired_retention, User.timezone).where(User.id == user_id)
        )
    ).first()
    if row is None:
        raise NotFound("User not found.")
    return UserSettingsOut(
        desired_retention=row.desired_retention or DEFAULT_RETENTION, timezone=row.timezone or "UTC"
    )


async def update_settings(
    session: AsyncSession, user_id: str, data: UserSettingsIn
) -> UserSettingsOut:
    values = data.model_dump(exclude_unset=True, exclude_none=True)
    if values:
        await session.execute(update(User).where(User.id == user_id).values(**values))
    return await get_settings(session, user_id)
