"""Flashcard jobs: thin adapters from the lifecycle to the shared generator."""

from __future__ import annotations

from typing import Any

from shared.flashcards import generation
from worker.lifecycle import JobRun


async def generate_deck(run: JobRun) -> dict[str, Any]:
    return await generation.generate_deck(run.resources, run.user_id, run.payload, run.progress)
