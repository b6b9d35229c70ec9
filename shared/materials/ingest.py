"""The material pipeline's steps after acquisition: chunk, embed, index, store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.clients.embeddings import Embedder
from shared.clients.vectorstore import VectorStore
from shared.materials.chunking import ChunkDraft, Segment, chunk_segments
from shared.materials.models import Chunk

EMBED_BATCH = 64
UPSERT_BATCH = 512
"""Vectors per Chroma upsert: most of the server's CPU for a request of 64 was a cost per
request, not per vector (about 1.5x less CPU per vector at 256 per request, 1.7x at
1,000, measured with 768 dimensions)."""

Progress = Callable[[int, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class IndexedMaterial:
    chunks: list[Chunk]
    embedding_model: str


def chunk_id(material_id: str, position: int) -> str:
    """Deterministic, so a re-run of the job overwrites instead of duplicating."""
    return f"{material_id}-{position:05d}"


async def chunk_text(segments: list[Segment], max_tokens: int, overlap: int) -> list[ChunkDraft]:
    return await asyncio.to_thread(
        chunk_segments, segments, max_tokens=max_tokens, overlap_tokens=overlap
    )


async def embed_and_index(
    drafts: list[ChunkDraft],
    *,
    material_id: str,
    user_id: str,
    embedder: Embedder,
    store: VectorStore,
    progress: Progress,
) -> IndexedMaterial:
    """Embed in batches and upsert into the vector store, reporting progress as it goes."""
    chunks = [
        Chunk(
            id=chunk_id(material_id, position),
            material_id=material_id,
            user_id=user_id,
            position=position,
            text=draft.text,
            token_count=draft.token_count,
            heading=draft.heading,
            page=draft.page,
            start_s=draft.start_s,
            end_s=draft.end_s,
        )
        for position, draft in enumerate(drafts)
    ]
    # Upsert over what an earlier run left, then drop its extra chunks; never delete and
    # re-add an id: Chroma 1.5 can leave such a vector unreachable by query (get still
    # returns it; chroma-core/chroma#7758), so a re-run would lose passages from search.
    total = len(chunks)
    pending: list[tuple[Chunk, list[float]]] = []
    for start in range(0, total, EMBED_BATCH):
        batch = chunks[start : start + EMBED_BATCH]
        embeddings = await embedder.embed([c.text for c in batch])
        pending += zip(batch, embeddings, strict=True)
        done = start + len(batch)
        if len(pending) >= UPSERT_BATCH or done == total:
            await _upsert(store, pending, user_id, material_id)
            pending = []
        await progress(20 + int(75 * done / total), f"embedding {done}/{total} chunks")
    await store.delete_material(material_id, from_position=total)
    return IndexedMaterial(chunks=chunks, embedding_model=embedder.model_id)


async def _upsert(
    store: VectorStore, vectors: list[tuple[Chunk, list[float]]], user_id: str, material_id: str
) -> None:
    await store.upsert(
        ids=[chunk.id for chunk, _ in vectors],
        embeddings=[embedding for _, embedding in vectors],
        metadatas=[
            {"user_id": user_id, "material_id": material_id, "position": chunk.position}
            for chunk, _ in vectors
        ],
    )
