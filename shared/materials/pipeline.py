"""The `process_material` job: from any material to indexed, searchable chunks."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from sqlalchemy import delete, update

from shared.jobs.errors import JobCancelled, PermanentJobError
from shared.materials.acquire import Acquired, acquire
from shared.materials.ingest import Progress, chunk_text, embed_and_index
from shared.materials.models import Chunk, Material, MaterialStatus
from shared.resources import Resources


async def _load(resources: Resources, material_id: str, user_id: str) -> Material:
    async with resources.db.read_session() as session:
        material = await session.get(Material, material_id)
    if material is None or material.user_id != user_id:
        raise JobCancelled("The material was deleted.")
    return material


async def process_material(
    resources: Resources, user_id: str, payload: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """Acquire, extract, chunk, embed and index a material, then mark it ready.

    Safe to run twice: chunk ids are deterministic, vectors are upserted over the old ones
    (those past the new last chunk deleted), and chunk rows are replaced in one transaction.
    """
    settings = resources.settings
    material = await _load(resources, str(payload["material_id"]), user_id)
    await set_material_status(resources, material.id, MaterialStatus.PROCESSING)
    await progress(2, "starting")
    acquired = await acquire(resources, material, progress)
    await progress(20, "chunking")
    drafts = await chunk_text(
        acquired.segments, settings.chunk_tokens, settings.chunk_overlap_tokens
    )
    if not drafts:
        raise PermanentJobError("The material contains no text to study.")
    indexed = await embed_and_index(
        drafts,
        material_id=material.id,
        user_id=user_id,
        embedder=resources.embedder,
        store=resources.store,
        progress=progress,
    )
    async with resources.db.session() as session:
        current = await session.get(Material, material.id)
        if current is None:  # deleted while we worked: leave no vectors behind
            await resources.store.delete_material(material.id)
            raise JobCancelled("The material was deleted.")
        await session.execute(delete(Chunk).where(Chunk.material_id == material.id))
        session.add_all(indexed.chunks)
        _record(current, acquired, indexed.embedding_model, len(indexed.chunks))
    await progress(100, "ready")
    return {"material_id": material.id, "chunks": len(indexed.chunks)}


def _record(material: Material, acquired: Acquired, embedding_model: str, chunks: int) -> None:
    material.status = MaterialStatus.READY
    material.error = None
    material.char_count = sum(len(s.text) for s in acquired.segments)
    material.chunk_count = chunks
    material.embedding_model = embedding_model
    material.page_count = acquired.page_count
    material.duration_s = acquired.duration_s
    material.acquisition = acquired.acquisition or material.acquisition
    if acquired.file_path:
        material.file_path = acquired.file_path
    if (
        acquired.title
        and material.source == "url"
        and material.title
        in (
            "YouTube video",
            _host(material.source_ref),
        )
    ):
        material.title = acquired.title[:300]


def _host(url: str | None) -> str:
    return urlparse(url or "").hostname or ""


async def set_material_status(
    resources: Resources, material_id: str, status: MaterialStatus, error: str | None = None
) -> None:
    async with resources.db.session() as session:
        await session.execute(
            update(Material).where(Material.id == material_id).values(status=status, error=error)
        )


async def mark_material_failed(resources: Resources, payload: dict[str, Any], error: str) -> None:
    await set_material_status(
        resources, str(payload["material_id"]), MaterialStatus.FAILED, error=error
    )
