"""Learning-path jobs: thin adapters from the lifecycle to the shared generator."""

from __future__ import annotations

from typing import Any

from shared.paths import generation
from worker.lifecycle import JobRun


async def generate_path(run: JobRun) -> dict[str, Any]:
    return await generation.generate_path(run.resources, run.user_id, run.payload, run.progress)


on_failure = generation.mark_path_failed
