from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, TimestampMixin, UTCDateTime, utcnow
from shared.ids import new_id


class Deck(TimestampMixin, Base):
    __tablename__ = "decks"
    __table_args__ = (Index("ix_decks_user_id_id", "user_id", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    material_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    job_id: Mapped[str | None] = mapped_column(String(32))


class Card(TimestampMixin, Base):
    """A flashcard and its FSRS memory state (`fsrs.Card.to_dict()`), due time indexed."""

    __tablename__ = "cards"
    __table_args__ = (
        Index("ix_cards_deck_id_id", "deck_id", "id"),
        Index("ix_cards_user_id_due_at", "user_id", "due_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    deck_id: Mapped[str] = mapped_column(ForeignKey("decks.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(32))
    front: Mapped[str] = mapped_column(Text)
    back: Mapped[str] = mapped_column(Text)
    chunk_id: Mapped[str | None] = mapped_column(String(48))
    material_id: Mapped[str | None] = mapped_column(String(32))
    topic: Mapped[str | None] = mapped_column(String(120))
    fsrs: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="new")
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_review_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Review(Base):
    """One review: the history an FSRS optimizer needs (`fsrs.ReviewLog.to_dict()`)."""

    __tablename__ = "reviews"
    __table_args__ = (Index("ix_reviews_card_id_id", "card_id", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    card_id: Mapped[str] = mapped_column(ForeignKey("cards.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(32), index=True)
    rating: Mapped[str] = mapped_column(String(8))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    reviewed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16))
    scheduled_days: Mapped[float] = mapped_column(Float)
    log: Mapped[dict[str, Any]] = mapped_column(JSON)
