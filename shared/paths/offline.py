"""Offline learning paths: the material's chunks clustered into modules, in reading order.

Consecutive chunks of one material form a module until the heading changes, the material
changes, or the module would outgrow its word budget. The budget fits a module into one
day (`minutes_per_day`) and is capped by the level: a beginner gets smaller steps.

- title: the section heading ("… (part 2)" when a long section is split), else the
  module's `topic_of`;
- objectives: the terms its sentences define, then its most used key terms
  (`shared.materials.keyterms`);
- minutes: reading time at `WORDS_PER_MINUTE` plus practice time, a share of the reading
  time that is larger for beginners;
- topics: the `topic_of` of each chunk, with the frequency taken over all the path's
  chunks — exactly as the offline quiz and deck generators label their questions and
  cards, so evidence about the same material meets under the same labels.

Nothing is random: the same material and settings give the same path.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from shared.materials.keyterms import definition, key_term, sentences, term_frequency, topic_of
from shared.materials.passages import StudyChunk
from shared.paths.drafts import ModuleDraft

WORDS_PER_MINUTE = 200
PRACTICE_SHARE = {"beginner": 1.0, "intermediate": 0.75, "advanced": 0.5}
MAX_WORDS = {"beginner": 800, "intermediate": 1200, "advanced": 1800}
MIN_WORDS = 150
MAX_OBJECTIVES = {"beginner": 3, "intermediate": 4, "advanced": 5}
MIN_MINUTES = 5


def estimate_minutes(words: int, level: str) -> int:
    reading = words / WORDS_PER_MINUTE
    return max(MIN_MINUTES, math.ceil(reading * (1 + PRACTICE_SHARE[level])))


def word_budget(level: str, minutes_per_day: int) -> int:
    """The most words a module holds: a day's study at this level, within the level's cap."""
    per_day = minutes_per_day * WORDS_PER_MINUTE / (1 + PRACTICE_SHARE[level])
    return max(MIN_WORDS, min(MAX_WORDS[level], int(per_day)))


def _words(text: str) -> int:
    return len(text.split())


def _groups(chunks: Sequence[StudyChunk], budget: int) -> list[list[StudyChunk]]:
    groups: list[list[StudyChunk]] = []
    words = 0
    for chunk in chunks:
        last = groups[-1][-1] if groups else None
        same_section = (
            last is not None
            and last.material_id == chunk.material_id
            and last.heading == chunk.heading
        )
        if not same_section or words + _words(chunk.text) > budget:
            groups.append([])
            words = 0
        groups[-1].append(chunk)
        words += _words(chunk.text)
    return groups


def objectives(texts: Sequence[str], frequency: Counter[str], count: int) -> list[str]:
    """Defined terms first ("Define osmosis"), then the module's most used key terms."""
    defined: dict[str, str] = {}
    used: Counter[str] = Counter()
    spelled: dict[str, str] = {}
    for text in texts:
        for sentence in sentences(text):
            found = definition(sentence)
            if found is not None:
                defined.setdefault(found.term.lower(), found.term)
                continue
            term = key_term(sentence, frequency)
            if term is not None:
                used[term.lower()] += 1
                spelled.setdefault(term.lower(), term)
    out = [f"Define {term}" for term in defined.values()]
    for term, _ in used.most_common():
        if term not in defined:
            out.append(f"Explain {spelled[term]}")
    return out[:count]


def _title(group: list[StudyChunk], part: int, frequency: Counter[str]) -> str:
    heading = group[0].heading
    if heading is None:
        return topic_of(" ".join(c.text for c in group), frequency)[:200]
    return (heading if part == 1 else f"{heading} (part {part})")[:200]


def build_modules(
    chunks: Sequence[StudyChunk], level: str, minutes_per_day: int
) -> list[ModuleDraft]:
    """Modules in reading order; every chunk belongs to exactly one."""
    frequency = term_frequency(c.text for c in chunks)
    drafts: list[ModuleDraft] = []
    part = 0
    previous: StudyChunk | None = None
    for group in _groups(chunks, word_budget(level, minutes_per_day)):
        first = group[0]
        continues = previous is not None and (previous.material_id, previous.heading) == (
            first.material_id,
            first.heading,
        )
        part = part + 1 if continues else 1
        previous = group[-1]
        texts = [c.text for c in group]
        title = _title(group, part, frequency)
        drafts.append(
            ModuleDraft(
                title=title,
                objectives=objectives(texts, frequency, MAX_OBJECTIVES[level])
                or [f"Summarise {title} in your own words"],
                chunk_ids=[c.chunk_id for c in group],
                material_ids=list(dict.fromkeys(c.material_id for c in group)),
                topics=list(dict.fromkeys(topic_of(t, frequency) for t in texts)),
                minutes=estimate_minutes(sum(_words(t) for t in texts), level),
            )
        )
    return drafts
