"""Erasing an account: its rows, vectors, files, transcripts and Redis keys, and every
session it has.

The order is what makes it safe to retry and hard to race:
1. the password is checked, and the user's vectors deleted, before any row goes — if
   Chroma is down nothing is lost and the learner can try again;
2. every owned row (`shared.account.owned`) is deleted in one transaction, children first;
   the user's queued and running jobs go with their rows (a worker then skips or stops
   them: its next state change finds no row), and arq is asked to abort them;
3. every token is refused from then on (one Redis mark per user that outlives the
   longest access token; refresh tokens and API keys went with the rows);
4. the vectors are deleted once more, for a material job that indexed between steps 1
   and 2 (one that indexes later finds its material gone and deletes its own vectors);
5. the stored files, with their cached transcripts, and the job snapshots in Redis.

This is a boundary like a job, so it commits itself (step 2) instead of leaving it to
the caller: steps 3–5 must only happen after that commit.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from arq.constants import abort_jobs_ss, result_key_prefix
from redis.asyncio import Redis
from sqlalchemy import delete, select

from shared.account.owned import FILE_COLUMN, owned_tables, stored_file
from shared.auth import security
from shared.auth.models import User
from shared.config import Settings
from shared.db import Database
from shared.errors import Forbidden
from shared.jobs.models import Job
from shared.jobs.service import ACTIVE, snapshot_key
from shared.resources import Resources
from shared.storage import file_sha256, transcripts_dir

SIGNED_OUT_PREFIX = "brainwave:signed-out-user:"
REDIS_BATCH = 500


def signed_out_key(user_id: str) -> str:
    """Set when an account is erased: every token of that user is refused while it lives."""
    return SIGNED_OUT_PREFIX + user_id


@dataclass(frozen=True, slots=True)
class _Removed:
    files: list[str]
    job_ids: list[str]
    active_job_ids: list[str]


async def erase_account(resources: Resources, user_id: str, password: str) -> None:
    """Delete the account and all it owns, if `password` is the account's (else 403)."""
    await _check_password(resources.db, user_id, password)
    await resources.store.delete_owner(user_id)
    removed = await _delete_rows(resources.db, user_id)
    await _sign_out(resources.redis, resources.settings, user_id)
    await resources.store.delete_owner(user_id)
    transcripts = transcripts_dir(resources.settings)
    await asyncio.to_thread(_delete_files, resources.settings, transcripts, removed.files)
    await _forget_jobs(resources.redis, user_id, removed)


async def _check_password(db: Database, user_id: str, password: str) -> None:
    async with db.read_session() as session:
        password_hash = await session.scalar(select(User.password_hash).where(User.id == user_id))
    if not await security.verify_password(password_hash, password):
        raise Forbidden("The password is not correct.")


async def _delete_rows(db: Database, user_id: str) -> _Removed:
    tables = owned_tables()
    async with db.session() as session:
        files: list[str] = []
        for owned in tables:
            if FILE_COLUMN in owned.table.c:
                column = owned.table.c[FILE_COLUMN]
                query = select(column).where(owned.mine(user_id), column.is_not(None))
                files += list(await session.scalars(query))
        mine = select(Job.id, Job.status).where(Job.user_id == user_id)
        jobs = (await session.execute(mine)).all()
        for owned in reversed(tables):
            await session.execute(delete(owned.table).where(owned.mine(user_id)))
    active = [job.id for job in jobs if job.status in ACTIVE]
    return _Removed(files, [job.id for job in jobs], active)


async def _sign_out(redis: Redis, settings: Settings, user_id: str) -> None:
    ttl = settings.access_token_minutes * 60 + 60
    await redis.set(signed_out_key(user_id), b"1", ex=ttl)


def _delete_files(settings: Settings, transcripts: Path, files: list[str]) -> None:
    """Delete stored files; for audio and video, the cached transcript of their content."""
    for relative in files:
        path = stored_file(settings, relative)
        if path is None or not path.is_file():
            continue
        if path.parent.name == "media":
            sha = file_sha256(path)
            for suffix in (".json", ".pending.json", ".lock"):
                (transcripts / f"{sha}{suffix}").unlink(missing_ok=True)
        path.unlink(missing_ok=True)


async def _forget_jobs(redis: Redis, user_id: str, removed: _Removed) -> None:
    """Abort the active jobs in arq; drop the user's job snapshots and arq results."""
    if removed.active_job_ids:
        now_ms = int(time.time() * 1000)
        await redis.zadd(abort_jobs_ss, dict.fromkeys(removed.active_job_ids, now_ms))
    keys = [result_key_prefix + job_id for job_id in removed.job_ids]
    async for key in redis.scan_iter(match=snapshot_key(user_id, "*"), count=REDIS_BATCH):
        keys.append(key)
    for start in range(0, len(keys), REDIS_BATCH):
        await redis.unlink(*keys[start : start + REDIS_BATCH])
