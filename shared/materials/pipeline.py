"""The `process_material` job: from a material's stored text to indexed, searchable chunks."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import delete, update

from shared.jobs.errors import JobCancelled, PermanentJobError
from shared.materials.chunking import Segment
from shared.materials.ingest import Progress, chunk_text, embed_and_index
from shared.materials.models import Chunk, Material, MaterialStatus
from shared.materials.service import material_file
from shared.resources import Resources


async def _load(resources: Resources, material_id: str, user_id: str) -> Material:
    async with resources.db.read_session() as session:
        material = await session.get(Material, material_id)
    if material is None or material.user_id != user_id:
        raise JobCancelled("The material was deleted.")
    return material


async def _read_text(resources: Resources, material: Material) -> str:
    if not material.file_path:
        raise PermanentJobError("The material has no stored content.")
    path = material_file(resources.settings, material.file_path)
    try:
        return await asyncio.to_thread(path.read_text, encoding="utf-8")
    except FileNotFoundError as exc:
        raise PermanentJobError("The material's file is missing.") from exc


async def process_material(
    resources: Resources, user_id: str, payload: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """Chunk, embed and index a material, then mark it ready. Safe to run twice."""
    settings = resources.settings
    material = await _load(resources, str(payload["material_id"]), user_id)
    await set_material_status(resources, material.id, MaterialStatus.PROCESSING)
    await progress(5, "reading")
    text = await _read_text(resources, material)
    await progress(10, "chunking")
    drafts = await chunk_text([Segment(text)], settings.chunk_tokens, settings.chunk_overlap_tokens)
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
        current.status = MaterialStatus.READY
        current.error = None
        current.char_count = len(text)
        current.chunk_count = len(indexed.chunks)
        current.embedding_model = indexed.embedding_model
    await progress(100, "ready")
    return {"material_id": material.id, "chunks": len(indexed.chunks)}


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
