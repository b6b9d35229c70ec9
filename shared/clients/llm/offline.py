"""The offline tutor: no network, no key, no model — and it says so.

It does not generate language. It answers by quoting the sentences of the retrieved
passages that share the most words with the question, each followed by the [n] of its
passage, and says when no passage shares a word with the question. The Socratic style
opens with guiding questions built from the key words. The answer streams word by word,
so the chat behaves as it does with a real model.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from shared.clients.embeddings import terms
from shared.clients.llm.base import (
    AnswerRequest,
    JsonRequest,
    Passage,
    ProviderError,
    StreamEvent,
    TextDelta,
    Usage,
)

MAX_QUOTES = 4
MIN_QUOTES = 2
MIN_WORDS = 4  # shorter fragments (headings, labels) are not worth quoting
MAX_QUOTE_CHARS = 400
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[^\W_]+")
_STREAM_WORD = re.compile(r"\S+\s*")

# Words that shape a question rather than name its subject; ignored unless nothing else is left.
GENERIC = frozenset(
    stem
    for words in (
        "how why explain describe define definition meaning mean means tell give",
        "example examples difference between work works make makes made use uses used",
        "happen happens called name list about into there other also main important",
        "way ways thing things kind kinds type types need",
    )
    for word in words.split()
    for stem in terms(word)
)

INTRO = "Here is what your material says about this, quoted directly:"
NOT_COVERED = (
    "Your material does not seem to cover this: none of the passages I found mentions "
    "the words of your question. Try rephrasing it, or add material on this topic."
)
NOTE = "(Offline mode: these are quotes from your material, not a generated explanation.)"


@dataclass(frozen=True, slots=True)
class Quote:
    text: str
    marker: int  # the passage's 1-based number, as in [1]
    score: int
    position: tuple[int, int]  # (passage, sentence): earlier ranks first on ties
    shared: frozenset[str]


def _sentences(text: str) -> list[str]:
    out = []
    for raw in _SENTENCE.split(text):
        sentence = raw.strip().lstrip("#>*- ").strip()
        if sentence:
            out.append(sentence)
    return out


def _clip(sentence: str) -> str:
    if len(sentence) <= MAX_QUOTE_CHARS:
        return sentence
    return sentence[:MAX_QUOTE_CHARS].rsplit(" ", 1)[0] + " …"


def _candidates(question_terms: set[str], passages: list[Passage]) -> list[Quote]:
    seen: set[str] = set()
    quotes: list[Quote] = []
    for p_index, passage in enumerate(passages):
        for s_index, sentence in enumerate(_sentences(passage.text)):
            key = " ".join(sentence.lower().split())
            if key in seen:
                continue  # chunks overlap: the same sentence often appears twice
            seen.add(key)
            shared = question_terms & set(terms(sentence))
            if shared:
                quotes.append(
                    Quote(sentence, p_index + 1, len(shared), (p_index, s_index), frozenset(shared))
                )
    long_enough = [q for q in quotes if len(q.text.split()) >= MIN_WORDS]
    pool = long_enough or quotes
    return sorted(pool, key=lambda q: (-q.score, q.position))


def question_terms(question: str) -> set[str]:
    all_terms = set(terms(question))
    return (all_terms - GENERIC) or all_terms


def select_quotes(question: str, passages: list[Passage]) -> list[Quote]:
    """The best 2–4 sentences sharing words with the question (fewer if fewer do)."""
    ranked = _candidates(question_terms(question), passages)
    if not ranked:
        return []
    best = ranked[0].score
    chosen = ranked[:MIN_QUOTES]
    chosen += [q for q in ranked[MIN_QUOTES:MAX_QUOTES] if q.score * 2 >= best]
    return chosen


def key_words(question: str, quotes: list[Quote], limit: int = 3) -> list[str]:
    """The question's own words (as typed) that the quotes share, the longest (most
    specific) `limit` of them, in the question's order."""
    shared = frozenset().union(*(q.shared for q in quotes))
    words: list[str] = []
    for word in _WORD.findall(question):
        stems = terms(word)
        if stems and stems[0] in shared and word.lower() not in (w.lower() for w in words):
            words.append(word)
    keep = set(sorted(words, key=lambda w: (-len(w), words.index(w)))[:limit])
    return [w for w in words if w in keep]


def _guiding_questions(words: list[str]) -> str:
    if not words:
        return "What do you already know about this? "
    if len(words) == 1:
        return (
            f"What do you already know about {words[0]}? "
            f"How would you explain {words[0]} in your own words? "
        )
    listed = ", ".join(words[:-1]) + f" and {words[-1]}"
    return f"What do you already know about {listed}? How might {words[0]} relate to {words[1]}? "


def compose(request: AnswerRequest) -> str:
    """The whole offline answer, deterministic for a given request."""
    quotes = select_quotes(request.question, request.passages)
    if not quotes:
        return NOT_COVERED
    body = "\n\n".join(f'"{_clip(q.text)}" [{q.marker}]' for q in quotes)
    if request.style == "socratic":
        opening = _guiding_questions(key_words(request.question, quotes))
        intro = opening + "Try to answer in your own words first, then compare with your material:"
    else:
        intro = INTRO
    return f"{intro}\n\n{body}\n\n{NOTE}"


class OfflineLLM:
    """Extractive answers from the retrieved passages; no network, no key."""

    model_id = "offline-extractive-v1"
    generative = False

    async def stream_answer(self, request: AnswerRequest) -> AsyncGenerator[StreamEvent, None]:
        answer = compose(request)
        words = _STREAM_WORD.findall(answer)
        for word in words:
            yield TextDelta(word)
            await asyncio.sleep(0)  # let other requests run between words
        read = " ".join([request.question, *(p.text for p in request.passages)])
        yield Usage(input_tokens=len(read.split()), output_tokens=len(words))

    async def generate_json(self, request: JsonRequest) -> str:
        raise ProviderError(
            "The offline provider only quotes your material; it cannot write new text.",
            kind="invalid",
            transient=False,
        )

    async def aclose(self) -> None:
        return None
