"""The generated test PDFs of `pdf_ingest` and `rss`: seeded pseudo-English, one heading a page."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime

from fpdf import FPDF

PAGES = int(os.environ.get("BENCH_PDF_PAGES", "100"))
WORDS_PER_PAGE = int(os.environ.get("BENCH_PDF_WORDS", "400"))

# fmt: off
_FUNCTION_WORDS = [
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "was", "on", "be",
    "by", "this", "are", "from", "at", "or", "an", "which", "but", "not", "have", "has", "can",
    "will", "its", "their", "these", "when", "between", "into", "more", "also", "than", "such",
]
_ONSETS = [
    "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
    "br", "cl", "dr", "fl", "gr", "pl", "pr", "sc", "sh", "st", "th", "tr",
]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou"]
# fmt: on
_CODAS = ["", "", "n", "r", "s", "t", "l", "m", "nd", "st", "rk", "ng"]
_SUFFIXES = ["", "", "", "tion", "ment", "ity", "ous", "ive", "al", "ing", "ed", "ly"]


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        syllables = rng.choice((1, 1, 2, 2, 2, 3))
        stem = "".join(
            rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)
        )
        words.add(stem + rng.choice(_SUFFIXES))
    return sorted(words)


def _sentence(rng: random.Random, vocabulary: list[str]) -> str:
    words = [
        rng.choice(_FUNCTION_WORDS) if rng.random() < 0.35 else rng.choice(vocabulary)
        for _ in range(rng.randint(6, 18))
    ]
    return " ".join(words).capitalize() + rng.choice(".....?;")[0]


def _wrap(pdf: FPDF, words: list[str], width: float, widths: dict[str, float]) -> list[str]:
    """Greedy line breaking (fpdf2's multi_cell is too slow for 900 PDF pages)."""
    space = pdf.get_string_width(" ")
    lines: list[str] = []
    line: list[str] = []
    used = 0.0
    for word in words:
        if word not in widths:
            widths[word] = pdf.get_string_width(word)
        needed = widths[word] + (space if line else 0.0)
        if line and used + needed > width:
            lines.append(" ".join(line))
            line, used, needed = [], 0.0, widths[word]
        line.append(word)
        used += needed
    if line:
        lines.append(" ".join(line))
    return lines


def make_pdf(seed: int, pages: int = PAGES, words_per_page: int = WORDS_PER_PAGE) -> bytes:
    """A deterministic text PDF: one heading and ~words_per_page words on every page."""
    rng = random.Random(seed)
    vocabulary = _vocabulary(rng, 6000)
    pdf = FPDF(format="A4")
    pdf.set_creation_date(datetime(2024, 1, 1, tzinfo=UTC))
    pdf.set_auto_page_break(auto=False)
    margin, line_height = 15.0, 4.2
    width = pdf.w - 2 * margin
    widths: dict[str, float] = {}
    for page in range(1, pages + 1):
        pdf.add_page()
        topic = " ".join(rng.sample(vocabulary, 3)).title()
        pdf.set_font("helvetica", "B", 14)
        y = margin + 6
        pdf.text(margin, y, f"Chapter {page}: {topic}")
        pdf.set_font("helvetica", size=9)
        y += 4
        written = 0
        while written < words_per_page:
            paragraph: list[str] = []
            while written < words_per_page and len(paragraph) < 6:
                sentence = _sentence(rng, vocabulary)
                paragraph.append(sentence)
                written += sentence.count(" ") + 1
            y += 2
            for line in _wrap(pdf, " ".join(paragraph).split(), width, widths):
                y += line_height
                pdf.text(margin, y, line)
        if y > pdf.h - 10:
            raise RuntimeError(f"page {page} overflowed; lower BENCH_PDF_WORDS")
    if pdf.page_no() != pages:
        raise RuntimeError(f"generated {pdf.page_no()} pages, wanted {pages}")
    return bytes(pdf.output())
