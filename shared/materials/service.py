"""Materials: creation (file on disk + row + job), reads, deletion of everything they own."""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.clients.vectorstore import VectorStore
from shared.config import Settings
from shared.errors import NotFound
from shared.ids import new_id
from shared.jobs import service as jobs
from shared.jobs.models import Job
from shared.jobs.service import JobState
from shared.jobs.writer import JobStateWriter, NewRows
from shared.materials.models import Chunk, Material, MaterialStatus
from shared.materials.schemas import MaterialOut, TextMaterialIn
from shared.pagination import Page, newest_first, page_of
from shared.storage import TextFiles

log = logging.getLogger(__name__)

PROCESS_MATERIAL = "process_material"


async def require_owned(session: AsyncSession, user_id: str, material_ids: list[str]) -> None:
    """Refuse (404, like an id in a path) a list naming a material that is not the user's
    or does not exist."""
    if not material_ids:
        return
    owned = await session.scalar(
        select(func.count())
        .select_from(Material)
        .where(Material.id.in_(material_ids), Material.user_id == user_id)
    )
    if owned != len(set(material_ids)):
        raise NotFound("Some of the materials do not exist.", details=material_ids)


def material_file(settings: Settings, relative: str) -> Path:
    return _resolved(settings.data_dir) / relative


@functools.lru_cache(maxsize=8)
def _resolved(data_dir: Path) -> Path:
    """The data root as an absolute path, resolved once (~20 µs of system calls each time,
    on every note's POST)."""
    return data_dir.resolve()


async def create_text_material(
    writer: JobStateWriter,
    files: TextFiles,
    settings: Settings,
    user_id: str,
    data: TextMaterialIn,
) -> tuple[MaterialOut, JobState]:
    """The note's file first, then the material and its job in one insert, group-committed
    with other requests' by the process's writer, which then enqueues the job."""
    now = datetime.now(UTC)
    material_id = new_id()
    relative = f"uploads/documents/{material_id}.txt"
    path = material_file(settings, relative)
    await files.write(path, data.text)
    job, state = jobs.new_job_row(user_id, PROCESS_MATERIAL, {"material_id": material_id}, now)
    material: dict[str, Any] = {
        "id": material_id,
        "user_id": user_id,
        "title": data.title.strip(),
        "kind": "text",
        "source": "text",
        "source_ref": None,
        "acquisition": "text",
        "original_filename": None,
        "byte_size": None,
        "file_path": relative,
        "status": MaterialStatus.PENDING,
        "error": None,
        "job_id": job["id"],
        "embedding_model": None,
        "char_count": 0,
        "chunk_count": 0,
        "page_count": None,
        "duration_s": None,
        "created_at": now,
        "updated_at": now,
    }
    try:
        rows = ((Material.__table__, material), (Job.__table__, job))
        await writer.insert(NewRows(rows, jobs=(state,)))  # type: ignore[arg-type]
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return MaterialOut.model_validate(material), state


async def get_material(session: AsyncSession, user_id: str, material_id: str) -> Material:
    material = await session.scalar(
        select(Material).where(Material.id == material_id, Material.user_id == user_id)
    )
    if material is None:
        raise NotFound("Material not found.")
    return material


async def list_materials(
    session: AsyncSession, user_id: str, *, limit: int, cursor: str | None
) -> Page[Material]:
    query = select(Material).where(Material.user_id == user_id)
    return await newest_first(session, query, Material.id, limit=limit, cursor=cursor)


async def list_chunks(
    session: AsyncSession, user_id: str, material_id: str, *, limit: int, cursor: int | None
) -> Page[Chunk]:
    await get_material(session, user_id, material_id)
    query = select(Chunk).where(Chunk.material_id == material_id)
    if cursor is not None:
        query = query.where(Chunk.position > cursor)
    items = list(await session.scalars(query.order_by(Chunk.position).limit(limit + 1)))
    next_cursor = str(items[limit - 1].position) if len(items) > limit else None
    return page_of(items, limit, next_cursor)


async def delete_material(
    session: AsyncSession, settings: Settings, store: VectorStore, user_id: str, material_id: str
) -> str | None:
    """Delete the row (chunks cascade), its vectors and its file; return its job id."""
    material = await get_material(session, user_id, material_id)
    await store.delete_material(material.id)
    if material.file_path:
        path = material_file(settings, material.file_path)
        await asyncio.to_thread(path.unlink, missing_ok=True)
    await session.execute(delete(Chunk).where(Chunk.material_id == material.id))
    await session.delete(material)
    return material.job_id
