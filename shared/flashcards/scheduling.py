"""FSRS scheduling through the `fsrs` package: a card's memory state in, the next one out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import fsrs

DEFAULT_RETENTION = 0.9
RATINGS: dict[str, fsrs.Rating] = {
    "again": fsrs.Rating.Again,
    "hard": fsrs.Rating.Hard,
    "good": fsrs.Rating.Good,
    "easy": fsrs.Rating.Easy,
}
_STATES = {
    fsrs.State.Learning: "learning",
    fsrs.State.Review: "review",
    fsrs.State.Relearning: "relearning",
}


def fsrs_card_id(card_id: str) -> int:
    """A stable integer id for FSRS from our time-ordered hex id (fits in 63 bits)."""
    return int(card_id[:15], 16)


def new_memory(card_id: str, now: datetime) -> dict[str, Any]:
    """The FSRS state of a card never reviewed: due at once."""
    return dict(fsrs.Card(card_id=fsrs_card_id(card_id), due=now).to_dict())


def state_name(memory: fsrs.Card) -> str:
    return "new" if memory.last_review is None else _STATES[memory.state]


@dataclass(frozen=True, slots=True)
class Scheduled:
    memory: dict[str, Any]
    log: dict[str, Any]
    state: str
    due_at: datetime
    last_review_at: datetime
    scheduled_days: float


def review(
    memory: dict[str, Any],
    rating: str,
    *,
    reviewed_at: datetime,
    duration_ms: int | None,
    desired_retention: float | None,
) -> Scheduled:
    """Apply one review with the learner's desired retention; return the new state."""
    scheduler = fsrs.Scheduler(desired_retention=desired_retention or DEFAULT_RETENTION)
    card = fsrs.Card.from_dict(cast(fsrs.card.CardDict, memory))
    when = reviewed_at.astimezone(UTC)
    card, log = scheduler.review_card(
        card, RATINGS[rating], review_datetime=when, review_duration=duration_ms
    )
    return Scheduled(
        memory=dict(card.to_dict()),
        log=dict(log.to_dict()),
        state=state_name(card),
        due_at=card.due,
        last_review_at=when,
        scheduled_days=(card.due - when).total_seconds() / 86400,
    )
