from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Response, UploadFile, status

from api.deps import Cursor, Limit, ReadSessionDep, ResourcesDep, SessionDep, UserId
from api.errors import responses
from api.ratelimits import LimitedRoute, before_body, limit_uploads
from shared.errors import UnsupportedMediaType
from shared.jobs import service as jobs
from shared.jobs.schemas import JobOut
from shared.materials import service as materials
from shared.materials import uploads
from shared.materials.schemas import (
    ChunkOut,
    MaterialCreated,
    MaterialOut,
    RejectedUpload,
    TextMaterialIn,
    UploadResult,
    UrlMaterialIn,
)
from shared.pagination import DEFAULT_LIMIT, Page

router = APIRouter(prefix="/api/materials", tags=["materials"], route_class=LimitedRoute)


@router.post(
    "/text",
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(401, 413, 422, 429),
)
@before_body(limit_uploads)
async def create_text_material(
    data: TextMaterialIn, user_id: UserId, resources: ResourcesDep
) -> MaterialCreated:
    """Store a note; a `process_material` job makes it searchable. Poll the job."""
    material, job = await materials.create_text_material(
        resources.job_states, resources.text_files, resources.settings, user_id, data
    )
    return MaterialCreated(material=material, job=job.job)


MAX_FILES_PER_UPLOAD = 20


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(401, 413, 415, 422, 429),
)
@before_body(limit_uploads)
async def upload_materials(
    files: Annotated[
        list[UploadFile],
        File(
            description="One or more files; each one becomes a material and a job.",
            min_length=1,
            max_length=MAX_FILES_PER_UPLOAD,
        ),
    ],
    user_id: UserId,
    session: SessionDep,
    resources: ResourcesDep,
) -> UploadResult:
    """Upload PDF, DOCX, PPTX, Markdown, text, audio or video. The type is read from the
    content, not from the name. A file of an unsupported type is listed under `rejected`
    and does not stop the others; when every file is rejected the answer is 415."""
    accepted: list[MaterialCreated] = []
    rejected: list[RejectedUpload] = []
    for upload in files:
        stored = await uploads.store_upload(
            session, resources.settings, user_id, upload.file, upload.filename
        )
        if isinstance(stored, uploads.Rejected):
            rejected.append(RejectedUpload(filename=stored.filename, message=stored.message))
            continue
        material, job = stored
        await session.flush()
        accepted.append(
            MaterialCreated(
                material=MaterialOut.model_validate(material), job=JobOut.model_validate(job)
            )
        )
    if not accepted:
        raise UnsupportedMediaType(
            "None of the files is of a supported type.",
            details=[r.model_dump() for r in rejected],
        )
    await jobs.commit_and_enqueue(session, resources.redis)
    return UploadResult(items=accepted, rejected=rejected)


@router.post(
    "/url",
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(401, 422, 429),
)
@before_body(limit_uploads)
async def create_url_material(
    data: UrlMaterialIn, user_id: UserId, session: SessionDep, resources: ResourcesDep
) -> MaterialCreated:
    """A YouTube link (captions first, else the audio is transcribed), a web page (its main
    text) or a direct audio/video link. Addresses inside private networks are refused."""
    material, job = await uploads.create_url_material(
        session, resources.settings, user_id, data.url, data.title
    )
    await jobs.commit_and_enqueue(session, resources.redis)
    return MaterialCreated(
        material=MaterialOut.model_validate(material), job=JobOut.model_validate(job)
    )


@router.get("", responses=responses(401, 422))
async def list_materials(
    user_id: UserId,
    session: ReadSessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
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
    await jobs.commit_cancelling(session, resources.redis, user_id, job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
