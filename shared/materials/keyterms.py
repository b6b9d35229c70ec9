"""Key sentences and key terms of study text, found deterministically (no model).

Shared by the offline generators of flashcards, quizzes and learning paths: a *key term*
is a long word the material keeps coming back to, a *definition* is a sentence of the
form "X is Y", and a passage's *topic* is its most characteristic key term.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

MIN_SENTENCE_CHARS = 25
MAX_SENTENCE_CHARS = 320
MIN_TERM_CHARS = 5
BLANK = "_____"

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
WORD = re.compile(r"[A-Za-z][A-Za-z\-']+")
_DEFINITION = re.compile(
    r"^(?P<term>[A-Za-z][\w\-']*(?:\s+[\w\-']+){0,4}?)\s+"
    r"(?P<verb>is|are|refers to|means|is defined as|are defined as)\s+(?P<rest>.{8,})$"
)
NOT_A_TERM = {
    "it", "this", "that", "these", "those", "there", "here", "he", "she", "they", "we",
    "you", "i", "what", "which", "who", "why", "how", "where", "when", "one", "each",
    "all", "some", "most", "many", "such", "its", "their", "our", "his", "her", "so",
}  # fmt: skip
STOPWORDS = NOT_A_TERM | {
    "the", "and", "for", "are", "but", "not", "with", "from", "into", "than", "then",
    "have", "has", "had", "was", "were", "been", "being", "also", "only", "very", "more",
    "other", "about", "after", "before", "between", "through", "during", "under", "over",
    "because", "while", "would", "could", "should", "might", "must", "does", "within",
    "without", "contain", "contains", "called", "takes", "place", "using", "used", "make",
    "which", "where", "their", "there", "these", "those", "every", "often", "usually",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Definition:
    term: str
    plural: bool  # "X are Y"
    rest: str  # what the term is


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


def term_frequency(texts: Iterable[str]) -> Counter[str]:
    """How often each long word occurs (lower-cased) across `texts`."""
    return Counter(
        w.lower() for text in texts for w in WORD.findall(text) if len(w) >= MIN_TERM_CHARS
    )


def definition(sentence: str) -> Definition | None:
    """The term a sentence defines ("Osmosis is the movement of …"), if it defines one."""
    match = _DEFINITION.match(sentence.rstrip(".!"))
    if match is None:
        return None
    term = match["term"]
    first = term.split()[0].lower()
    rest = {w.lower() for w in term.split()[1:]}
    if first in NOT_A_TERM or rest & (NOT_A_TERM | {"and", "or", "but", "not"}):
        return None
    if first in {"the", "a", "an"}:
        term = first + term[len(first) :]
    return Definition(term, match["verb"].startswith("are"), match["rest"])


def candidate_terms(sentence: str) -> list[str]:
    return [
        w for w in WORD.findall(sentence) if len(w) >= MIN_TERM_CHARS and w.lower() not in STOPWORDS
    ]


def key_term(sentence: str, frequency: Counter[str]) -> str | None:
    """The sentence's most telling word: one the material keeps using, then the longest."""
    words = candidate_terms(sentence)
    if not words:
        return None
    return max(words, key=lambda w: (min(frequency[w.lower()], 4), len(w), -sentence.find(w)))


def cloze(sentence: str, term: str) -> str:
    """The sentence with its first occurrence of `term` blanked out."""
    return re.sub(rf"\b{re.escape(term)}\b", BLANK, sentence, count=1)


MAX_TOPIC_CHARS = 120  # the topic columns (cards, quiz questions) are String(120)


def topic_of(text: str, frequency: Counter[str] | None = None) -> str:
    """A short label for a passage: its most frequent key term, weighted by how much the
    whole material uses it (`frequency`), capitalised; "General" when it has none."""
    local = term_frequency([text])
    words = {w.lower(): w for w in candidate_terms(text)}
    if not words:
        return "General"
    overall = frequency or local

    def weight(word: str) -> tuple[int, int, int, str]:
        return (local[word], min(overall[word], 6), len(word), word)

    best = max(words, key=weight)[:MAX_TOPIC_CHARS]
    return best[:1].upper() + best[1:]
