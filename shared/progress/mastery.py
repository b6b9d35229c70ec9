"""Mastery from evidence: quiz answers and flashcard memory, per topic or per passage set.

Mastery (0–1) is the mean of what we know: the accuracy of the learner's most recent quiz
answers on the topic, and the mean FSRS *retrievability* of its cards now (the predicted
probability of recalling each card; a card never reviewed counts 0). A topic with no
evidence has mastery 0. Evidence is matched by passage (chunk id) first, so questions and
cards about the same text meet even when their topic labels differ, and by topic label.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import fsrs
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.flashcards.models import Card
from shared.quizzes.models import Attempt

MASTERED = 0.8
RECENT_ANSWERS = 20  # per topic: older answers say less about what is known now
_SCHEDULER = fsrs.Scheduler()


@dataclass(frozen=True, slots=True)
class Answer:
    topic: str
    chunk_id: str | None
    correct: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class CardMemory:
    topic: str | None
    chunk_id: str | None
    memory: dict[str, Any]
    reviewed: bool


@dataclass(slots=True)
class Evidence:
    answers: list[Answer] = field(default_factory=list)
    recall: list[float] = field(default_factory=list)  # one per card

    @property
    def quiz_accuracy(self) -> float | None:
        recent = sorted(self.answers, key=lambda a: a.at, reverse=True)[:RECENT_ANSWERS]
        return sum(a.correct for a in recent) / len(recent) if recent else None

    @property
    def mean_recall(self) -> float | None:
        return sum(self.recall) / len(self.recall) if self.recall else None

    @property
    def has_evidence(self) -> bool:
        return bool(self.answers) or any(r > 0 for r in self.recall)

    @property
    def mastery(self) -> float:
        parts = [p for p in (self.quiz_accuracy, self.mean_recall) if p is not None]
        return round(sum(parts) / len(parts), 4) if parts else 0.0


def retrievability(memory: dict[str, Any], at: datetime) -> float:
    """FSRS's predicted probability of recalling the card at `at` (0 if never reviewed)."""
    card = fsrs.Card.from_dict(cast(fsrs.card.CardDict, memory))
    if card.last_review is None:
        return 0.0
    return float(_SCHEDULER.get_card_retrievability(card, current_datetime=at))


async def answers(session: AsyncSession, user_id: str) -> list[Answer]:
    """Every quiz answer the learner gave, from their graded attempts."""
    rows = await session.execute(
        select(Attempt.results, Attempt.created_at).where(Attempt.user_id == user_id)
    )
    out = []
    for results, created_at in rows:
        for r in results:
            chunk_id = (r.get("source") or {}).get("chunk_id")
            out.append(
                Answer(str(r.get("topic", "General")), chunk_id, bool(r["correct"]), created_at)
            )
    return out


async def cards(session: AsyncSession, user_id: str) -> list[CardMemory]:
    rows = await session.execute(
        select(Card.topic, Card.chunk_id, Card.fsrs, Card.last_review_at).where(
            Card.user_id == user_id
        )
    )
    return [CardMemory(t, c, m, last is not None) for t, c, m, last in rows]


def evidence_for(
    answered: Iterable[Answer],
    memories: Iterable[CardMemory],
    *,
    chunk_ids: set[str],
    topics: set[str],
    at: datetime,
) -> Evidence:
    """The evidence about one set of passages and topic labels."""
    wanted = {t.lower() for t in topics}

    def matches(chunk_id: str | None, topic: str | None) -> bool:
        return (chunk_id is not None and chunk_id in chunk_ids) or (
            topic is not None and topic.lower() in wanted
        )

    evidence = Evidence()
    evidence.answers = [a for a in answered if matches(a.chunk_id, a.topic)]
    evidence.recall = [
        retrievability(c.memory, at) for c in memories if matches(c.chunk_id, c.topic)
    ]
    return evidence


def by_topic(
    answered: Iterable[Answer], memories: Iterable[CardMemory], at: datetime
) -> dict[str, Evidence]:
    """Evidence grouped by topic label (case-insensitively; the first spelling names it)."""
    names: dict[str, str] = {}
    grouped: dict[str, Evidence] = defaultdict(Evidence)
    for a in answered:
        key = names.setdefault(a.topic.lower(), a.topic)
        grouped[key].answers.append(a)
    for c in memories:
        if c.topic:
            key = names.setdefault(c.topic.lower(), c.topic)
            grouped[key].recall.append(retrievability(c.memory, at))
    return dict(grouped)
