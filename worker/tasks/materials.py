"""Material jobs: thin adapters from the lifecycle to the shared pipeline."""

from __future__ import annotations

from typing import Any

from shared.materials import pipeline
from worker.lifecycle import JobRun


async def process_material(run: JobRun) -> dict[str, Any]:
    return await pipeline.process_material(run.resources, run.user_id, run.payload, run.progress)


on_failure = pipeline.mark_material_failed
