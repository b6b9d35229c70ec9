"""The `generate_path` job: ordered modules from the path's goal and materials.

A generative provider plans them as schema-checked JSON (`remote`); the offline provider
clusters the material's chunks into modules in reading order (`offline`). Safe to run
twice: the modules of an earlier, interrupted run are replaced.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from shared.clients.llm.base import ProviderError
from shared.jobs.errors import JobCancelled, PermanentJobError, TransientJobError
from shared.materials.ingest import Progress
from shared.materials.keyterms import term_frequency
from shared.materials.models import Chunk, Material, MaterialStatus
from shared.paths import offline, remote
from shared.paths.drafts import ModuleDraft, PathChunk
from shared.paths.models import LearningPath, PathModule, PathStatus
from shared.quizzes.drafts import SourceText
from shared.quizzes.generation import spread
from shared.resources import Resources

MAX_CHUNKS = 5000
PROMPT_PASSAGES = 40  # what one model call sees, spread evenly over the material
PROMPT_CHARS = 40_000


def _reading_order(path: LearningPath, material_ids: list[str]) -> list[str]:
    """The materials in the order the learner named them, else in the order they came."""
    if not path.material_ids:
        return sorted(material_ids)
    return [m for m in path.material_ids if m in set(material_ids)]


async def _chunks(resources: Resources, path: LearningPath) -> list[PathChunk]:
    async with resources.db.read_session() as session:
        query = select(Material.id, Material.status).where(Material.user_id == path.user_id)
        if path.material_ids:
            query = query.where(Material.id.in_(path.material_ids))
        materials = (await session.execute(query)).all()
        if any(s in (MaterialStatus.PENDING, MaterialStatus.PROCESSING) for _, s in materials):
            raise TransientJobError("Waiting for the materials to finish processing.")
        ready = _reading_order(path, [m for m, s in materials if s == MaterialStatus.READY])
        rows = await session.execute(
            select(Chunk.id, Chunk.material_id, Chunk.heading, Chunk.text, Material.title)
            .join(Material, Material.id == Chunk.material_id)
            .where(Chunk.material_id.in_(ready), Chunk.user_id == path.user_id)
            .order_by(Chunk.material_id, Chunk.position)
            .limit(MAX_CHUNKS)
        )
        found = [PathChunk(r.id, r.material_id, r.title, r.heading, r.text) for r in rows]
    rank = {m: n for n, m in enumerate(ready)}
    return sorted(found, key=lambda c: rank[c.material_id])  # stable: positions kept


async def _drafts(
    resources: Resources, path: LearningPath, chunks: list[PathChunk]
) -> list[ModuleDraft]:
    llm = resources.llm
    if not llm.generative:
        return offline.build_modules(chunks, path.level, path.minutes_per_day)
    frequency = term_frequency(c.text for c in chunks)
    as_sources = [SourceText(c.chunk_id, c.material_id, c.title, c.text) for c in chunks]
    shown = {s.chunk_id for s in spread(as_sources, PROMPT_PASSAGES, PROMPT_CHARS)}
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
        if exc.transient:
            raise TransientJobError(exc.message) from exc
        raise PermanentJobError(exc.message) from exc


async def generate_path(
    resources: Resources, user_id: str, payload: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    path_id = str(payload["path_id"])
    async with resources.db.read_session() as session:
        path = await session.get(LearningPath, path_id)
    if path is None or path.user_id != user_id:
        raise JobCancelled("The learning path was deleted.")
    await progress(10, "reading the materials")
    chunks = await _chunks(resources, path)
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
