"""Decks, cards, reviews and the due queue (services flush; the caller commits)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth.models import User
from shared.errors import Conflict, NotFound
from shared.flashcards import scheduling
from shared.flashcards.generate import CardDraft
from shared.flashcards.models import Card, Deck, Review
from shared.flashcards.schemas import (
    CardIn,
    CardOut,
    CardPatch,
    DeckDetail,
    DeckIn,
    DeckOut,
    DueCards,
    RatingName,
    ReviewIn,
    ReviewOut,
    ReviewResult,
)
from shared.ids import new_id
from shared.jobs import service as jobs
from shared.jobs.models import Job
from shared.materials.service import require_owned
from shared.pagination import Page, newest_first, page_of
from shared.progress import events

GENERATE_DECK = "generate_deck"


async def create_deck(session: AsyncSession, user_id: str, data: DeckIn) -> tuple[Deck, Job | None]:
    """A deck; with `generate`, also a queued `generate_deck` job (enqueued after commit)."""
    material_ids = list(dict.fromkeys(data.material_ids))
    await require_owned(session, user_id, material_ids)
    deck = Deck(user_id=user_id, title=data.title, material_ids=material_ids)
    session.add(deck)
    await session.flush()
    if data.generate is None:
        return deck, None
    job = jobs.create_job(
        session, user_id, GENERATE_DECK, {"deck_id": deck.id, "count": data.generate.count}
    )
    await session.flush()
    deck.job_id = job.id
    return deck, job


async def get_deck(session: AsyncSession, user_id: str, deck_id: str) -> Deck:
    deck = await session.scalar(select(Deck).where(Deck.id == deck_id, Deck.user_id == user_id))
    if deck is None:
        raise NotFound("Deck not found.")
    return deck


async def deck_detail(session: AsyncSession, user_id: str, deck_id: str) -> DeckDetail:
    deck = await get_deck(session, user_id, deck_id)
    counts = select(func.count()).select_from(Card).where(Card.deck_id == deck.id)
    total = await session.scalar(counts)
    due = await session.scalar(counts.where(Card.due_at <= datetime.now(UTC)))
    return DeckDetail(
        **DeckOut.model_validate(deck).model_dump(), card_count=total or 0, due_count=due or 0
    )


async def list_decks(
    session: AsyncSession, user_id: str, *, limit: int, cursor: str | None
) -> Page[DeckOut]:
    query = select(Deck).where(Deck.user_id == user_id)
    page = await newest_first(session, query, Deck.id, limit=limit, cursor=cursor)
    return page.validated(DeckOut)


async def delete_deck(session: AsyncSession, user_id: str, deck_id: str) -> str | None:
    """Delete the deck with its cards and reviews; return its job id (to cancel) if any."""
    deck = await get_deck(session, user_id, deck_id)
    await session.delete(deck)
    await session.flush()
    return deck.job_id


def new_cards(deck: Deck, drafts: Sequence[CardDraft | tuple[str, str]]) -> list[Card]:
    """Cards due at once with a fresh FSRS state, their ids in the order given.

    A draft is a generated `CardDraft` (citing its chunk) or a plain (front, back).
    """
    now = datetime.now(UTC)
    ids = sorted(new_id() for _ in drafts)  # ids made in one millisecond would not sort
    cards = []
    for card_id, draft in zip(ids, drafts, strict=True):
        if isinstance(draft, CardDraft):
            source = {
                "chunk_id": draft.chunk_id,
                "material_id": draft.material_id,
                "topic": draft.topic,
            }
            front, back = draft.front, draft.back
        else:
            source = {}
            front, back = draft
        cards.append(
            Card(
                id=card_id,
                deck_id=deck.id,
                user_id=deck.user_id,
                front=front,
                back=back,
                fsrs=scheduling.new_memory(card_id, now),
                state="new",
                due_at=now,
                **source,
            )
        )
    return cards


async def add_card(session: AsyncSession, user_id: str, deck_id: str, data: CardIn) -> Card:
    deck = await get_deck(session, user_id, deck_id)
    (card,) = new_cards(deck, [(data.front, data.back)])
    session.add(card)
    await _touch(session, deck.id)
    await session.flush()
    return card


async def _touch(session: AsyncSession, deck_id: str) -> None:
    await session.execute(
        update(Deck).where(Deck.id == deck_id).values(updated_at=datetime.now(UTC))
    )


async def list_cards(
    session: AsyncSession, user_id: str, deck_id: str, *, limit: int, cursor: str | None
) -> Page[CardOut]:
    """A deck's cards, oldest first."""
    await get_deck(session, user_id, deck_id)
    query = select(Card).where(Card.deck_id == deck_id)
    if cursor:
        query = query.where(Card.id > cursor)
    rows = list(await session.scalars(query.order_by(Card.id).limit(limit + 1)))
    items = [CardOut.model_validate(r) for r in rows]
    return page_of(items, limit, items[limit - 1].id if len(items) > limit else None)


async def get_card(session: AsyncSession, user_id: str, card_id: str) -> Card:
    card = await session.scalar(select(Card).where(Card.id == card_id, Card.user_id == user_id))
    if card is None:
        raise NotFound("Card not found.")
    return card


async def update_card(session: AsyncSession, user_id: str, card_id: str, data: CardPatch) -> Card:
    card = await get_card(session, user_id, card_id)
    if data.front is not None:
        card.front = data.front
    if data.back is not None:
        card.back = data.back
    await session.flush()
    return card


async def delete_card(session: AsyncSession, user_id: str, card_id: str) -> None:
    card = await get_card(session, user_id, card_id)
    await session.delete(card)
    await session.flush()


async def desired_retention(session: AsyncSession, user_id: str) -> float:
    stored = await session.scalar(select(User.desired_retention).where(User.id == user_id))
    return stored or scheduling.DEFAULT_RETENTION


async def review_card(
    session: AsyncSession, user_id: str, card_id: str, data: ReviewIn
) -> ReviewResult:
    """Schedule the card's next review with FSRS and store the review."""
    card = await get_card(session, user_id, card_id)
    reviewed_at = (data.reviewed_at or datetime.now(UTC)).astimezone(UTC)
    if card.last_review_at is not None and reviewed_at < card.last_review_at:
        # 409: valid on its own, it conflicts with the card's history
        raise Conflict("A review cannot be older than the card's previous review.")
    retention = await desired_retention(session, user_id)
    review = _apply_review(card, data.rating, reviewed_at, data.duration_ms, retention)
    session.add(review)
    await events.record(
        session,
        user_id,
        "review",
        minutes=events.review_minutes(data.duration_ms),
        details={"card_id": card.id, "rating": data.rating},
        at=reviewed_at,
    )
    await session.flush()
    out = CardOut.model_validate(card)
    return ReviewResult(
        review=ReviewOut.model_validate(review), card=out, due_at=out.due_at, state=out.state
    )


def _apply_review(
    card: Card, rating: RatingName, reviewed_at: datetime, duration_ms: int | None, retention: float
) -> Review:
    """Move the card's FSRS memory on by one review; return the review to store."""
    scheduled = scheduling.review(
        card.fsrs,
        rating,
        reviewed_at=reviewed_at,
        duration_ms=duration_ms,
        desired_retention=retention,
    )
    card.fsrs = scheduled.memory
    card.state = scheduled.state
    card.due_at = scheduled.due_at
    card.last_review_at = scheduled.last_review_at
    return Review(
        card_id=card.id,
        user_id=card.user_id,
        rating=rating,
        duration_ms=duration_ms,
        reviewed_at=reviewed_at,
        state=scheduled.state,
        scheduled_days=scheduled.scheduled_days,
        log=scheduled.log,
    )


async def forget_related(
    session: AsyncSession, user_id: str, *, chunk_ids: set[str], topics: set[str]
) -> int:
    """Count a wrong quiz answer as an `again` review of the learner's cards on the same
    passages or topics, so quizzes and flashcards share one memory model. Returns how
    many cards were rescheduled."""
    conditions = []
    if chunk_ids:
        conditions.append(Card.chunk_id.in_(chunk_ids))
    if topics:
        conditions.append(func.lower(Card.topic).in_({t.lower() for t in topics}))
    if not conditions:
        return 0
    cards = list(
        await session.scalars(select(Card).where(Card.user_id == user_id, or_(*conditions)))
    )
    now = datetime.now(UTC)
    retention = await desired_retention(session, user_id)
    # A card reviewed "in the future" (a client clock ahead) keeps its history in order.
    forgotten = [c for c in cards if c.last_review_at is None or c.last_review_at <= now]
    session.add_all(_apply_review(card, "again", now, None, retention) for card in forgotten)
    await session.flush()
    return len(forgotten)


async def list_reviews(session: AsyncSession, user_id: str, card_id: str) -> list[Review]:
    card = await get_card(session, user_id, card_id)
    return list(await session.scalars(select(Review).where(Review.card_id == card.id)))


async def due_cards(
    session: AsyncSession, user_id: str, *, deck_id: str | None, limit: int
) -> DueCards:
    """Cards due now, the most overdue first."""
    now = datetime.now(UTC)
    where = [Card.user_id == user_id, Card.due_at <= now]
    if deck_id is not None:
        await get_deck(session, user_id, deck_id)
        where.append(Card.deck_id == deck_id)
    rows = await session.scalars(
        select(Card).where(*where).order_by(Card.due_at, Card.id).limit(limit)
    )
    total = await session.scalar(select(func.count()).select_from(Card).where(*where))
    return DueCards(items=[CardOut.model_validate(r) for r in rows], due_count=total or 0)
