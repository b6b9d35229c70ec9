"""Offline flashcards from study text, deterministically: no model, no network.

A sentence that defines something ("X is Y", "X are Y", "X refers to Y") becomes a
question card "What is X?" answered by the sentence; other informative sentences become
cloze cards that blank out their key term (the rarest long word the text keeps using).
Every card cites the chunk it came from.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

MIN_SENTENCE_CHARS = 25
MAX_SENTENCE_CHARS = 320
BLANK = "_____"

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD = re.compile(r"[A-Za-z][A-Za-z\-']+")
_DEFINITION = re.compile(
    r"^(?P<term>[A-Za-z][\w\-']*(?:\s+[\w\-']+){0,4}?)\s+"
    r"(?P<verb>is|are|refers to|means|is defined as|are defined as)\s+(?P<rest>.{8,})$"
)
_NOT_A_TERM = {
    "it", "this", "that", "these", "those", "there", "here", "he", "she", "they", "we",
    "you", "i", "what", "which", "who", "why", "how", "where", "when", "one", "each",
    "all", "some", "most", "many", "such", "its", "their", "our", "his", "her", "so",
}  # fmt: skip
_STOPWORDS = _NOT_A_TERM | {
    "the", "and", "for", "are", "but", "not", "with", "from", "into", "than", "then",
    "have", "has", "had", "was", "were", "been", "being", "also", "only", "very", "more",
    "other", "about", "after", "before", "between", "through", "during", "under", "over",
    "because", "while", "would", "could", "should", "might", "must", "does", "within",
    "without", "contain", "contains", "called", "takes", "place", "using", "used", "make",
}  # fmt: skip


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


def sentences(text: str) -> list[str]:
    """Sentences of prose: headings, list markers and fragments left out."""
    found: list[str] = []
    for block in re.split(r"\n\s*\n|\n(?=\s*(?:#|[-*•]\s|\d+[.)]\s))", text):
        block = block.strip()
        if not block or block.startswith("#"):
            continue
        block = re.sub(r"^(?:[-*•]|\d+[.)])\s+", "", block)
        for sentence in _SENTENCE_END.split(" ".join(block.split())):
            sentence = sentence.strip()
            if MIN_SENTENCE_CHARS <= len(sentence) <= MAX_SENTENCE_CHARS and sentence[-1] in ".!":
                found.append(sentence)
    return found


def _definition(sentence: str) -> str | None:
    match = _DEFINITION.match(sentence.rstrip(".!"))
    if match is None:
        return None
    term = match["term"]
    first = term.split()[0].lower()
    rest = {w.lower() for w in term.split()[1:]}
    if first in _NOT_A_TERM or rest & (_NOT_A_TERM | {"and", "or", "but", "not"}):
        return None
    if first in {"the", "a", "an"}:
        term = first + term[len(first) :]
    verb = "are" if match["verb"].startswith("are") else "is"
    return f"What {verb} {term}?"


def _key_term(sentence: str, frequency: Counter[str]) -> str | None:
    words: list[str] = [
        w for w in _WORD.findall(sentence) if len(w) >= 5 and w.lower() not in _STOPWORDS
    ]
    if not words:
        return None
    # Prefer a term the material keeps coming back to, then a longer (more specific) one.
    return max(words, key=lambda w: (min(frequency[w.lower()], 4), len(w), -sentence.find(w)))


def _cloze(sentence: str, term: str) -> str:
    return re.sub(rf"\b{re.escape(term)}\b", BLANK, sentence, count=1)


def build_cards(passages: list[Passage], count: int) -> list[CardDraft]:
    """Up to `count` cards: definitions first, then clozes, each in reading order."""
    frequency: Counter[str] = Counter(
        w.lower() for p in passages for w in _WORD.findall(p.text) if len(w) >= 5
    )
    seen: set[str] = set()
    definitions: list[CardDraft] = []
    clozes: list[CardDraft] = []
    for passage in passages:
        for sentence in sentences(passage.text):
            key = " ".join(sentence.lower().split())
            if key in seen:  # chunks overlap: the same sentence often appears twice
                continue
            seen.add(key)
            question = _definition(sentence)
            if question is not None:
                definitions.append(
                    CardDraft(question, sentence, passage.chunk_id, passage.material_id)
                )
                continue
            term = _key_term(sentence, frequency)
            if term is not None:
                clozes.append(
                    CardDraft(_cloze(sentence, term), term, passage.chunk_id, passage.material_id)
                )
    return (definitions + clozes)[:count]
