"""The `generate_deck` job: cards built from the deck's materials, each citing its chunk."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from shared.flashcards.generate import Passage, build_cards
from shared.flashcards.models import Card, Deck
from shared.flashcards.service import new_cards
from shared.jobs.errors import JobCancelled, PermanentJobError
from shared.materials.ingest import Progress
from shared.materials.passages import ready_chunks
from shared.resources import Resources


async def generate_deck(
    resources: Resources, user_id: str, payload: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """Fill the deck with up to `count` term/definition and cloze cards.

    Safe to run twice: a card whose front the deck already has is not added again.
    """
    deck_id = str(payload["deck_id"])
    async with resources.db.read_session() as session:
        deck = await session.get(Deck, deck_id)
    if deck is None or deck.user_id != user_id:
        raise JobCancelled("The deck was deleted.")
    await progress(10, "reading the materials")
    chunks = await ready_chunks(resources.db, deck.user_id, deck.material_ids)
    passages = [Passage(c.chunk_id, c.material_id, c.text) for c in chunks]
    drafts = build_cards(passages, int(payload.get("count", 20)))
    if not drafts:
        raise PermanentJobError(
            "The materials have no sentences to make cards from. Add some text and try again."
        )
    await progress(60, f"writing {len(drafts)} cards")
    async with resources.db.session() as session:
        current = await session.get(Deck, deck_id)
        if current is None:
            raise JobCancelled("The deck was deleted.")
        existing = set(await session.scalars(select(Card.front).where(Card.deck_id == deck_id)))
        added = new_cards(current, [d for d in drafts if d.front not in existing])
        session.add_all(added)
    await progress(100, "done")
    return {"deck_id": deck_id, "cards": len(drafts), "added": len(added)}
