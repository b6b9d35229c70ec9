"""Semantic search over a learner's own chunks."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.clients.embeddings import Embedder
from shared.clients.vectorstore import VectorStore
from shared.materials.models import Chunk, Material
from shared.materials.schemas import Location, SearchHit

MIN_SCORE = 1e-6


async def search(
    session: AsyncSession,
    store: VectorStore,
    embedder: Embedder,
    user_id: str,
    query: str,
    *,
    limit: int,
    material_ids: list[str] | None = None,
) -> list[SearchHit]:
    [embedding] = await embedder.embed([query])
    vector_hits = await store.query(
        embedding, user_id=user_id, limit=limit, material_ids=material_ids
    )
    if not vector_hits:
        return []
    rows = await session.execute(
        select(Chunk, Material.title)
        .join(Material, Material.id == Chunk.material_id)
        .where(Chunk.id.in_([h.chunk_id for h in vector_hits]), Material.user_id == user_id)
    )
    by_id = {chunk.id: (chunk, title) for chunk, title in rows}
    hits = []
    for hit in vector_hits:
        found = by_id.get(hit.chunk_id)
        score = 1.0 - hit.distance
        if found is None or score <= MIN_SCORE:  # row gone meanwhile, or no shared terms
            continue
        chunk, title = found
        hits.append(
            SearchHit(
                chunk_id=chunk.id,
                material_id=chunk.material_id,
                material_title=title,
                text=chunk.text,
                score=round(score, 6),
                location=Location(
                    position=chunk.position,
                    heading=chunk.heading,
                    page=chunk.page,
                    start_s=chunk.start_s,
                    end_s=chunk.end_s,
                ),
            )
        )
    return hits
