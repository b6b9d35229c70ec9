"""What a quiz generator produces, whichever provider made it."""

from __future__ import annotations

from dataclasses import dataclass


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
