"""What a quiz generator produces, whichever provider made it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SourceText:
    """A chunk of the learner's material offered to a generator."""

    chunk_id: str
    material_id: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class QuestionDraft:
    kind: str  # multiple_choice | true_false | short_answer
    prompt: str
    options: list[str] | None
    answer: str  # an option's text, "true"/"false", or the expected short answer
    explanation: str
    topic: str
    chunk_id: str | None
    material_id: str | None
