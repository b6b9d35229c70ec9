"""Offline quiz questions, built deterministically from the material's key sentences.

Each question tests one *fact*: a sentence of the material and its key term (the term it
defines, or the rarest long word the material keeps using — `shared.materials.keyterms`).

- multiple choice: the sentence with its term blanked (or, for a definition, what the
  term is), the term among three *distractors*: other key terms of the same material,
  the closest in length first, so they look plausible;
- true/false: the sentence as written (true), or with its term swapped for a distractor
  (false), chosen by a hash of the sentence so the mix is stable;
- short answer: the same blank, answered in the learner's own words (graded leniently,
  see `grading`).

Difficulty orders the facts: easy starts with definitions and the terms the material uses
most, hard with the rarest terms; medium keeps reading order. Nothing is random: the same
material and settings give the same quiz.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from shared.materials.keyterms import (
    Definition,
    candidate_terms,
    cloze,
    definition,
    key_term,
    sentences,
    term_frequency,
    topic_of,
)
from shared.materials.passages import StudyChunk
from shared.quizzes.drafts import QuestionDraft

DISTRACTORS = 3


@dataclass(frozen=True, slots=True)
class Fact:
    sentence: str
    term: str
    defined: Definition | None
    topic: str
    source: StudyChunk
    order: int

    @property
    def seed(self) -> int:
        return zlib.crc32(self.sentence.encode())

    def quote(self) -> str:
        return f"The material says: “{self.sentence}”"


def _facts(sources: Sequence[StudyChunk], frequency: Counter[str]) -> list[Fact]:
    facts: list[Fact] = []
    seen: set[str] = set()
    for source in sources:
        topic = topic_of(source.text, frequency)
        for sentence in sentences(source.text):
            key = " ".join(sentence.lower().split())
            if key in seen:  # chunks overlap
                continue
            seen.add(key)
            defined = definition(sentence)
            term = defined.term if defined is not None else key_term(sentence, frequency)
            if term is not None:
                facts.append(Fact(sentence, term, defined, topic, source, len(facts)))
    return facts


def _ordered(facts: list[Fact], difficulty: str, frequency: Counter[str]) -> list[Fact]:
    def uses(fact: Fact) -> int:
        return frequency[fact.term.split()[-1].lower()]

    if difficulty == "easy":
        return sorted(facts, key=lambda f: (f.defined is None, -uses(f), f.order))
    if difficulty == "hard":
        return sorted(facts, key=lambda f: (f.defined is not None, uses(f), f.order))
    return facts


def _term_pool(sources: Sequence[StudyChunk], facts: list[Fact]) -> list[str]:
    """Every key term of the material, each once (first spelling wins)."""
    pool: dict[str, str] = {}
    for fact in facts:
        pool.setdefault(fact.term.lower(), fact.term)
    for source in sources:
        for word in candidate_terms(source.text):
            pool.setdefault(word.lower(), word)
    return list(pool.values())


def _distractors(fact: Fact, pool: list[str], count: int) -> list[str]:
    sentence = fact.sentence.lower()
    term = fact.term.lower()
    eligible = [
        t
        for t in pool
        if t.lower() != term
        and t.lower() not in sentence
        and term not in t.lower()
        and t.lower() not in term
    ]
    # Plausible first: similar length, then a stable per-fact shuffle.
    ranked = sorted(
        eligible,
        key=lambda t: (abs(len(t) - len(fact.term)) // 3, zlib.crc32((t + fact.sentence).encode())),
    )
    picked: list[str] = []
    for candidate in ranked:
        if candidate.lower() not in {p.lower() for p in picked}:
            picked.append(candidate)
        if len(picked) == count:
            break
    return picked


def _blank_prompt(fact: Fact) -> str:
    if fact.defined is not None:
        verb = "are" if fact.defined.plural else "is"
        return f"Which term {verb} {fact.defined.rest.rstrip('.')}?"
    return f"Fill in the blank: {cloze(fact.sentence, fact.term)}"


def _draft(
    fact: Fact, kind: str, prompt: str, options: list[str] | None, answer: str
) -> QuestionDraft:
    return QuestionDraft(
        kind=kind,
        prompt=prompt,
        options=options,
        answer=answer,
        explanation=fact.quote(),
        topic=fact.topic,
        chunk_id=fact.source.chunk_id,
        material_id=fact.source.material_id,
    )


def multiple_choice(fact: Fact, pool: list[str]) -> QuestionDraft | None:
    distractors = _distractors(fact, pool, DISTRACTORS)
    if len(distractors) < 2:
        return None
    options = [fact.term, *distractors]
    random.Random(fact.seed).shuffle(options)
    return _draft(fact, "multiple_choice", _blank_prompt(fact), options, fact.term)


def true_false(fact: Fact, pool: list[str]) -> QuestionDraft | None:
    if fact.seed % 2 == 0:
        return _draft(fact, "true_false", f"True or false: {fact.sentence}", None, "true")
    swap = _distractors(fact, pool, 1)
    if not swap:
        return None
    altered = cloze(fact.sentence, fact.term).replace("_____", swap[0], 1)
    return _draft(fact, "true_false", f"True or false: {altered}", None, "false")


def short_answer(fact: Fact, pool: list[str]) -> QuestionDraft:
    return _draft(fact, "short_answer", _blank_prompt(fact), None, fact.term)


BUILDERS = {"multiple_choice": multiple_choice, "true_false": true_false}


def build_questions(
    sources: Sequence[StudyChunk], count: int, kinds: Sequence[str], difficulty: str
) -> list[QuestionDraft]:
    """Up to `count` questions, their kinds taken in turn from `kinds`, one per fact.

    A fact that cannot make the kind whose turn it is (too few distractors) makes a short
    answer question when short answers were asked for, and is skipped otherwise.
    """
    frequency = term_frequency(s.text for s in sources)
    facts = _ordered(_facts(sources, frequency), difficulty, frequency)
    pool = _term_pool(sources, facts)
    drafts: list[QuestionDraft] = []
    for fact in facts:
        if len(drafts) == count:
            break
        kind = kinds[len(drafts) % len(kinds)]
        builder = BUILDERS.get(kind)
        draft = builder(fact, pool) if builder is not None else short_answer(fact, pool)
        if draft is None and "short_answer" in kinds:
            draft = short_answer(fact, pool)
        if draft is not None:
            drafts.append(draft)
    return drafts
