from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, UTCDateTime
from shared.ids import new_id


class StudyEvent(Base):
    """Something the learner did to study, stamped with the day it was in their time zone
    (so streaks and daily history follow their calendar, not UTC's)."""

    __tablename__ = "study_events"
    __table_args__ = (Index("ix_study_events_user_id_local_date", "user_id", "local_date"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(24))  # review | quiz_attempt | chat | module_completed
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    local_date: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD in the learner's zone
    minutes: Mapped[float] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
