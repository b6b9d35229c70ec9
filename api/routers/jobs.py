from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from api.deps import Cursor, Limit, ReadSessionDep, ResourcesDep, SessionDep, UserId
from api.errors import responses
from api.sse import job_event_stream, sse_headers
from shared.jobs import service as jobs
from shared.jobs.models import JobStatus
from shared.jobs.schemas import JobOut
from shared.pagination import DEFAULT_LIMIT, Page

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@router.get("/{job_id}", responses=responses(401, 404), response_model=JobOut)
async def get_job(job_id: str, user_id: UserId, resources: ResourcesDep) -> Response:
    """What the frontend polls: status, progress 0–100, stage, error, result.

    The hot path: served from the snapshot announced at each change (one Redis GET under
    a key that names the owner), falling back to the row when there is none.
    """
    cached = await jobs.cached_job_json(resources.redis, user_id, job_id)
    if cached is None:
        async with resources.db.read_session() as session:
            job = await jobs.get_job(session, user_id, job_id)
        state = jobs.JobState(user_id, job)
        await jobs.announce(resources.redis, state, publish=False)
        cached = orjson.dumps(job.model_dump(mode="json"))
    return Response(content=cached, media_type="application/json")


@router.get("", responses=responses(401, 422))
async def list_jobs(
    user_id: UserId,
    session: ReadSessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    status: JobStatus | None = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[JobOut]:
    return await jobs.list_jobs(
        session, user_id, limit=limit, cursor=cursor, status=status, kind=kind
    )


@router.post("/{job_id}/cancel", responses=responses(401, 404, 409))
async def cancel_job(
    job_id: str, user_id: UserId, session: SessionDep, resources: ResourcesDep
) -> JobOut:
    state = await jobs.cancel_job(session, user_id, job_id)
    await session.commit()
    await jobs.after_cancel(resources.redis, state)
    return state.job


@router.get(
    "/{job_id}/events",
    responses={**responses(401, 404), 200: {"content": {"text/event-stream": {}}}},
    response_class=StreamingResponse,
)
async def job_events(
    job_id: str,
    request: Request,
    user_id: UserId,
    session: ReadSessionDep,
    resources: ResourcesDep,
) -> StreamingResponse:
    """Server-Sent Events: an `event: job` with the job's state on every change, ending
    when it reaches a final status; a comment line every 15 s keeps proxies from closing."""
    await jobs.get_job(session, user_id, job_id)  # 404 before the stream starts
    await session.close()
    return StreamingResponse(
        job_event_stream(request, resources, user_id, job_id),
        media_type="text/event-stream",
        headers=sse_headers(),
    )
