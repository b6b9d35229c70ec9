from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import ReadSessionDep, ResourcesDep, SessionDep, UserId
from api.errors import responses
from shared.errors import Conflict
from shared.jobs import service as jobs
from shared.jobs.schemas import JobOut
from shared.materials import service as materials
from shared.materials.schemas import ChunkOut, MaterialCreated, MaterialOut, TextMaterialIn
from shared.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page

router = APIRouter(prefix="/api/materials", tags=["materials"])

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


@router.post("/text", status_code=status.HTTP_202_ACCEPTED, responses=responses(401, 413, 422))
async def create_text_material(
    data: TextMaterialIn, user_id: UserId, session: SessionDep, resources: ResourcesDep
) -> MaterialCreated:
    """Store a note; a `process_material` job makes it searchable. Poll the job."""
    material, job = await materials.create_text_material(session, resources.settings, user_id, data)
    await jobs.commit_and_enqueue(session, resources.redis)
    return MaterialCreated(
        material=MaterialOut.model_validate(material), job=JobOut.model_validate(job)
    )


@router.get("", responses=responses(401, 422))
async def list_materials(
    user_id: UserId,
    session: ReadSessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[MaterialOut]:
    page = await materials.list_materials(session, user_id, limit=limit, cursor=cursor)
    return Page(
        items=[MaterialOut.model_validate(m) for m in page.items], next_cursor=page.next_cursor
    )


@router.get("/{material_id}", responses=responses(401, 404))
async def get_material(material_id: str, user_id: UserId, session: ReadSessionDep) -> MaterialOut:
    return MaterialOut.model_validate(await materials.get_material(session, user_id, material_id))


@router.get("/{material_id}/chunks", responses=responses(401, 404, 422))
async def list_chunks(
    material_id: str,
    user_id: UserId,
    session: ReadSessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Annotated[int | None, Query(ge=0)] = None,
) -> Page[ChunkOut]:
    page = await materials.list_chunks(session, user_id, material_id, limit=limit, cursor=cursor)
    return Page(
        items=[ChunkOut.model_validate(c) for c in page.items], next_cursor=page.next_cursor
    )


@router.delete(
    "/{material_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 404)
)
async def delete_material(
    material_id: str, user_id: UserId, session: SessionDep, resources: ResourcesDep
) -> Response:
    """Remove the material with its chunks, vectors and files (and cancel its job)."""
    job_id = await materials.delete_material(
        session, resources.settings, resources.store, user_id, material_id
    )
    if job_id:
        with contextlib.suppress(Conflict):  # the job had already finished
            await jobs.cancel_job(session, resources.redis, user_id, job_id)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
