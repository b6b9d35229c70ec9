"""Learning paths: ordered modules toward a goal, planned by a job; status, mastery and
the next step come from the learner's quiz answers and card reviews."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse

from api.deps import Cursor, Limit, ReadSessionDep, ResourcesDep, SessionDep, UserId
from api.errors import responses
from shared.jobs import service as jobs
from shared.jobs.schemas import JobOut
from shared.pagination import DEFAULT_LIMIT, Page
from shared.paths import service as paths
from shared.paths.schemas import ModuleOut, NextStep, PathCreated, PathDetail, PathIn, PathOut

router = APIRouter(prefix="/api/learning-paths", tags=["learning paths"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(401, 404, 422),
    response_model=PathCreated,
)
async def create_path(
    data: PathIn, user_id: UserId, session: SessionDep, resources: ResourcesDep
) -> JSONResponse:
    """A path whose modules a `generate_path` job plans; poll the job, then GET the path."""
    path, job = await paths.create_path(session, user_id, data)
    await jobs.commit_and_enqueue(session, resources.redis)
    created = PathCreated(path=PathOut.model_validate(path), job=JobOut.model_validate(job))
    return JSONResponse(created.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)


@router.get("", responses=responses(401, 422))
async def list_paths(
    user_id: UserId, session: ReadSessionDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[PathOut]:
    return await paths.list_paths(session, user_id, limit=limit, cursor=cursor)


@router.get("/{path_id}", responses=responses(401, 404))
async def get_path(path_id: str, user_id: UserId, session: ReadSessionDep) -> PathDetail:
    """The path and its modules in order, each with its status and mastery now."""
    return await paths.path_detail(session, user_id, path_id)


@router.delete("/{path_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 404))
async def delete_path(
    path_id: str, user_id: UserId, session: SessionDep, resources: ResourcesDep
) -> Response:
    """Remove the path and its modules (and cancel its generation job)."""
    job_id = await paths.delete_path(session, user_id, path_id)
    await jobs.commit_cancelling(session, resources.redis, user_id, job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{path_id}/modules/{module_id}/complete", responses=responses(401, 404))
async def complete_module(
    path_id: str, module_id: str, user_id: UserId, session: SessionDep
) -> ModuleOut:
    """Mark the module done (idempotent); the next module unlocks."""
    module = await paths.complete_module(session, user_id, path_id, module_id)
    await session.commit()
    return module


@router.get("/{path_id}/next", responses=responses(401, 404, 409))
async def next_step(path_id: str, user_id: UserId, session: ReadSessionDep) -> NextStep:
    """What to study now and why: due cards on the path, then a weak topic to re-quiz,
    then the module in progress, then the next module; with an exam date, a day-by-day
    plan of what is left."""
    return await paths.next_step(session, user_id, path_id)
