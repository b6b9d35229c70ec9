"""The text a generator works from: the chunks of a learner's ready materials, in
reading order. Shared by the card, quiz and learning-path jobs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from shared.clients.llm.base import ProviderError
from shared.db import Database
from shared.jobs.errors import JobError, PermanentJobError, TransientJobError
from shared.materials.models import Chunk, Material, MaterialStatus

MAX_CHUNKS = 5000
_UNFINISHED = (MaterialStatus.PENDING, MaterialStatus.PROCESSING)


@dataclass(frozen=True, slots=True)
class StudyChunk:
    chunk_id: str
    material_id: str
    title: str  # the material's
    heading: str | None
    text: str


async def ready_chunks(
    db: Database, user_id: str, material_ids: list[str], *, limit: int = MAX_CHUNKS
) -> list[StudyChunk]:
    """The chunks of the named materials (all of the learner's when none are named), in
    the order the materials were named (else oldest first), each in position order.

    Raises `TransientJobError` while any of them is still being processed, so the job is
    retried once they are ready; failed materials are left out.
    """
    async with db.read_session() as session:
        query = select(Material.id, Material.status).where(Material.user_id == user_id)
        if material_ids:
            query = query.where(Material.id.in_(material_ids))
        materials = (await session.execute(query.order_by(Material.id))).all()
        if any(status in _UNFINISHED for _, status in materials):
            raise TransientJobError("Waiting for the materials to finish processing.")
        ready = {m for m, status in materials if status == MaterialStatus.READY}
        rows = await session.execute(
            select(Chunk.id, Chunk.material_id, Chunk.heading, Chunk.text, Material.title)
            .join(Material, Material.id == Chunk.material_id)
            .where(Chunk.material_id.in_(ready), Chunk.user_id == user_id)
            .order_by(Chunk.material_id, Chunk.position)
            .limit(limit)
        )
        found = [StudyChunk(r.id, r.material_id, r.title, r.heading, r.text) for r in rows]
    order = [m for m in material_ids if m in ready] or sorted(ready)
    rank = {m: n for n, m in enumerate(order)}
    return sorted(found, key=lambda c: rank[c.material_id])  # stable: positions kept


def spread(sources: list[StudyChunk], count: int, budget: int) -> list[StudyChunk]:
    """At most `count` sources evenly spaced in reading order, within `budget` characters."""
    step = max(1, len(sources) / count)
    picked = [sources[int(i * step)] for i in range(min(count, len(sources)))]
    out: list[StudyChunk] = []
    used = 0
    for source in picked:
        if out and used + len(source.text) > budget:
            break
        out.append(source)
        used += len(source.text)
    return out


def job_error(exc: ProviderError) -> JobError:
    """A provider failure as the job wrapper understands it: retried later if transient."""
    if exc.transient:
        return TransientJobError(exc.message)
    return PermanentJobError(exc.message)
