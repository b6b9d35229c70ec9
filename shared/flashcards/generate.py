"""Offline flashcards from study text, deterministically: no model, no network.

A sentence that defines something ("X is Y", "X are Y", "X refers to Y") becomes a
question card "What is X?" answered by the sentence; other informative sentences become
cloze cards that blank out their key term (see `shared.materials.keyterms`). Every card
cites the chunk it came from and carries the chunk's topic.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.materials.keyterms import (
    cloze,
    definition,
    key_term,
    sentences,
    term_frequency,
    topic_of,
)


@dataclass(frozen=True, slots=True)
class Passage:
    chunk_id: str
    material_id: str
    text: str


@dataclass(frozen=True, slots=True)
class CardDraft:
    front: str
    back: str
    chunk_id: str
    material_id: str
    topic: str


def build_cards(passages: list[Passage], count: int) -> list[CardDraft]:
    """Up to `count` cards: definitions first, then clozes, each in reading order."""
    frequency = term_frequency(p.text for p in passages)
    seen: set[str] = set()
    definitions: list[CardDraft] = []
    clozes: list[CardDraft] = []
    for passage in passages:
        topic = topic_of(passage.text, frequency)
        for sentence in sentences(passage.text):
            key = " ".join(sentence.lower().split())
            if key in seen:  # chunks overlap: the same sentence often appears twice
                continue
            seen.add(key)
            defined = definition(sentence)
            if defined is not None:
                verb = "are" if defined.plural else "is"
                definitions.append(
                    CardDraft(
                        f"What {verb} {defined.term}?",
                        sentence,
                        passage.chunk_id,
                        passage.material_id,
                        topic,
                    )
                )
                continue
            term = key_term(sentence, frequency)
            if term is not None:
                clozes.append(
                    CardDraft(
                        cloze(sentence, term), term, passage.chunk_id, passage.material_id, topic
                    )
                )
    return (definitions + clozes)[:count]
