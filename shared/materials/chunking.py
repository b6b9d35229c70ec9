"""Structure-aware chunking to a token budget with overlap.

Input is a list of segments (a page of a PDF, a transcript segment, a whole note); each
keeps its location. Blocks are split at blank lines, Markdown headings and new pages start
a new chunk (so a citation's page is exact),
long paragraphs are split at sentences, and each chunk after the first in a section
begins with the last sentences of the previous one (the overlap), so a passage cut at a
boundary is still found whole. Tokens are estimated from words (about 1.3 per word),
which is close enough for budgeting and needs no tokenizer download.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_BLANK_LINES = re.compile(r"\n\s*\n")
TOKENS_PER_WORD = 1.3


@dataclass(frozen=True, slots=True)
class Segment:
    text: str
    page: int | None = None
    start_s: float | None = None
    end_s: float | None = None


@dataclass(frozen=True, slots=True)
class ChunkDraft:
    text: str
    token_count: int
    heading: str | None
    page: int | None
    start_s: float | None
    end_s: float | None


@dataclass(frozen=True, slots=True)
class _Unit:
    """A sentence-or-paragraph piece that is never split further (unless oversize)."""

    text: str
    words: int
    heading: str | None
    segment: Segment
    block: int


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text.split()) * TOKENS_PER_WORD)


def _split_long(text: str, max_words: int) -> Iterator[str]:
    for sentence in _SENTENCE_END.split(text):
        words = sentence.split()
        for start in range(0, len(words), max_words):
            yield " ".join(words[start : start + max_words])


def _units(segments: list[Segment], max_words: int) -> Iterator[_Unit]:
    heading: str | None = None
    block_number = 0
    for segment in segments:
        for block in _BLANK_LINES.split(segment.text):
            block_number += 1
            first_line, _, rest = block.strip().partition("\n")
            match = _HEADING.match(first_line)
            if match:
                heading = match.group(2)[:300]
                block = rest
            text = " ".join(block.split())
            if not text:
                continue
            words = len(text.split())
            pieces = [text] if words <= max_words else list(_split_long(text, max_words))
            for piece in pieces:
                yield _Unit(piece, len(piece.split()), heading, segment, block_number)


def _overlap_tail(units: list[_Unit], overlap_words: int) -> list[_Unit]:
    tail: list[_Unit] = []
    total = 0
    for unit in reversed(units):
        sentences = _SENTENCE_END.split(unit.text)
        for sentence in reversed(sentences):
            n = len(sentence.split())
            if total + n > overlap_words:
                return tail
            tail.insert(0, _Unit(sentence, n, unit.heading, unit.segment, unit.block))
            total += n
    return tail


def _draft(units: list[_Unit]) -> ChunkDraft:
    text = units[0].text
    for previous, unit in itertools.pairwise(units):
        text += (" " if unit.block == previous.block else "\n\n") + unit.text
    first, last = units[0].segment, units[-1].segment
    return ChunkDraft(
        text=text,
        token_count=estimate_tokens(text),
        heading=units[-1].heading,
        page=first.page,
        start_s=first.start_s,
        end_s=last.end_s,
    )


def chunk_segments(
    segments: list[Segment], *, max_tokens: int = 300, overlap_tokens: int = 50
) -> list[ChunkDraft]:
    max_words = max(1, int(max_tokens / TOKENS_PER_WORD))
    overlap_words = int(overlap_tokens / TOKENS_PER_WORD)
    chunks: list[ChunkDraft] = []
    current: list[_Unit] = []
    fresh = 0  # words in `current` that are not overlap from the previous chunk
    for unit in _units(segments, max_words):
        new_section = bool(current) and (
            unit.heading != current[-1].heading or unit.segment.page != current[-1].segment.page
        )
        full = sum(u.words for u in current) + unit.words > max_words
        if current and (new_section or full):
            if fresh:
                chunks.append(_draft(current))
            current = [] if new_section else _overlap_tail(current, overlap_words)
            fresh = 0
        current.append(unit)
        fresh += unit.words
    if current and fresh:
        chunks.append(_draft(current))
    return chunks
