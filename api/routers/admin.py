"""Operations for administrators (ADMIN_EMAILS): backups."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, status

from api.deps import ReadSessionDep, ResourcesDep, SessionDep, UserId
from api.errors import responses
from shared.backups import service as backups
from shared.backups.schemas import BackupList, BackupStarted
from shared.jobs import service as jobs
from shared.jobs.schemas import JobOut


async def admin_id(user_id: UserId, session: ReadSessionDep, resources: ResourcesDep) -> str:
    await backups.require_admin(session, resources.settings, user_id)
    return user_id


AdminId = Annotated[str, Depends(admin_id)]

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.post("/backups", status_code=status.HTTP_202_ACCEPTED, responses=responses(401, 403))
async def start_backup(
    admin: AdminId, session: SessionDep, resources: ResourcesDep
) -> BackupStarted:
    """Take a backup now (a `backup` job): the database, a Chroma snapshot and a manifest,
    under `exports/backups/<UTC timestamp>/`; older backups beyond BACKUP_KEEP are deleted.
    With a PostgreSQL DATABASE_URL only the vectors are included (the result says so)."""
    job = backups.start_backup(session, admin)
    await jobs.commit_and_enqueue(session, resources.redis)
    return BackupStarted(job=JobOut.model_validate(job))


@router.get("/backups", responses=responses(401, 403))
async def list_backups(_admin: AdminId, resources: ResourcesDep) -> BackupList:
    """The complete backups, newest first, with their time and size."""
    root = resources.settings.backups_dir
    return BackupList(items=await asyncio.to_thread(backups.list_backups, root))
