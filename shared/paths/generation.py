"""The `generate_path` job: ordered modules from the path's goal and materials.

A generative provider plans them as schema-checked JSON (`remote`); the offline provider
clusters the material's chunks into modules in reading order (`offline`). Safe to run
twice: the modules of an earlier, interrupted run are replaced.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete

from shared.clients.llm.base import ProviderError
from shared.jobs.errors import JobCancelled, PermanentJobError
from shared.materials.ingest import Progress
from shared.materials.keyterms import term_frequency
from shared.materials.passages import StudyChunk, job_error, ready_chunks, spread
from shared.paths import offline, remote
from shared.paths.drafts import ModuleDraft
from shared.paths.models import LearningPath, PathModule, PathStatus
from shared.resources import Resources

PROMPT_PASSAGES = 40  # what one model call sees, spread evenly over the material
PROMPT_CHARS = 40_000


async def _drafts(
    resources: Resources, path: LearningPath, chunks: list[StudyChunk]
) -> list[ModuleDraft]:
    llm = resources.llm
    if not llm.generative:
        return offline.build_modules(chunks, path.level, path.minutes_per_day)
    frequency = term_frequency(c.text for c in chunks)
    shown = {c.chunk_id for c in spread(chunks, PROMPT_PASSAGES, PROMPT_CHARS)}
    try:
        return await remote.generate(
            llm,
            [c for c in chunks if c.chunk_id in shown],
            frequency,
            goal=path.goal,
            level=path.level,
            minutes_per_day=path.minutes_per_day,
        )
    except remote.UnusableOutput as exc:
        raise PermanentJobError(str(exc)) from exc
    except ProviderError as exc:
        raise job_error(exc) from exc


async def generate_path(
    resources: Resources, user_id: str, payload: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    path_id = str(payload["path_id"])
    async with resources.db.read_session() as session:
        path = await session.get(LearningPath, path_id)
    if path is None or path.user_id != user_id:
        raise JobCancelled("The learning path was deleted.")
    await progress(10, "reading the materials")
    chunks = await ready_chunks(resources.db, path.user_id, path.material_ids)
    if not chunks and not resources.llm.generative:
        raise PermanentJobError("The path's materials have no text to plan modules from.")
    await progress(30, "planning modules")
    drafts = await _drafts(resources, path, chunks)
    if not drafts:
        raise PermanentJobError("No modules could be planned from these materials.")
    await progress(80, f"saving {len(drafts)} modules")
    async with resources.db.session() as session:
        current = await session.get(LearningPath, path_id)
        if current is None:
            raise JobCancelled("The learning path was deleted.")
        await session.execute(delete(PathModule).where(PathModule.path_id == path_id))
        session.add_all(_module(current, n, d) for n, d in enumerate(drafts, 1))
        current.status = PathStatus.READY
        current.error = None
    await progress(100, "done")
    return {"path_id": path_id, "modules": len(drafts)}


def _module(path: LearningPath, position: int, draft: ModuleDraft) -> PathModule:
    return PathModule(
        path_id=path.id,
        user_id=path.user_id,
        position=position,
        title=draft.title,
        objectives=draft.objectives,
        chunk_ids=draft.chunk_ids,
        material_ids=draft.material_ids,
        topics=draft.topics,
        minutes=draft.minutes,
    )


async def mark_path_failed(resources: Resources, payload: dict[str, Any], error: str) -> None:
    async with resources.db.session() as session:
        path = await session.get(LearningPath, str(payload["path_id"]))
        if path is not None:
            path.status = PathStatus.FAILED
            path.error = error
