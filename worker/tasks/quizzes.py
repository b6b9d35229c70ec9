"""Quiz jobs: thin adapters from the lifecycle to the shared generator."""

from __future__ import annotations

from typing import Any

from shared.quizzes import generation
from worker.lifecycle import JobRun


async def generate_quiz(run: JobRun) -> dict[str, Any]:
    return await generation.generate_quiz(run.resources, run.user_id, run.payload, run.progress)


on_failure = generation.mark_quiz_failed
