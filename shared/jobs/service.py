"""Job rows: creation (enqueued only after commit), reads, state transitions, cancel.

Every transition is one conditional UPDATE … RETURNING, so two processes can never move a
job backwards (a cancelled job stays cancelled), and its new state is published on Redis
for the SSE stream.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss
from redis.asyncio import Redis
from sqlalchemy import ColumnElement, Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import Conflict, NotFound
from shared.jobs.channels import job_events_channel
from shared.jobs.models import TERMINAL_STATUSES, Job, JobStatus
from shared.jobs.schemas import JobOut
from shared.pagination import Page, page_of

log = logging.getLogger(__name__)

_PENDING_ENQUEUES = "brainwave.pending_enqueues"
JOB_COLUMNS = tuple(c for c in Job.__table__.columns if c.key not in {"payload", "user_id"})


def create_job(session: AsyncSession, user_id: str, kind: str, payload: dict[str, Any]) -> Job:
    """Add a queued job; it is handed to the workers by `commit_and_enqueue`, never before."""
    now = datetime.now(UTC)
    job = Job(
        user_id=user_id,
        kind=kind,
        payload=payload,
        status=JobStatus.QUEUED,
        progress=0,
        stage="queued",
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.info.setdefault(_PENDING_ENQUEUES, []).append(job)
    return job


async def commit_and_enqueue(session: AsyncSession, queue: ArqRedis) -> None:
    """Commit, then enqueue the jobs this transaction created (a rollback drops them)."""
    pending: list[Job] = session.info.pop(_PENDING_ENQUEUES, [])
    await session.commit()
    for job in pending:
        try:
            await enqueue(queue, job.kind, job.id)
        except Exception:  # the row is durable; the workers' reaper enqueues it later
            log.exception("enqueue failed for job %s; the reaper will retry it", job.id)


def discard_pending(session: AsyncSession) -> None:
    session.info.pop(_PENDING_ENQUEUES, None)


async def enqueue(queue: ArqRedis, kind: str, job_id: str) -> None:
    await queue.enqueue_job(kind, job_id, _job_id=job_id)


def _owned(user_id: str, job_id: str) -> Select[Any]:
    return select(*JOB_COLUMNS).where(Job.id == job_id, Job.user_id == user_id)


async def get_job(session: AsyncSession, user_id: str, job_id: str) -> JobOut:
    row = (await session.execute(_owned(user_id, job_id))).mappings().first()
    if row is None:
        raise NotFound("Job not found.")
    return JobOut.model_validate(row)


async def list_jobs(
    session: AsyncSession,
    user_id: str,
    *,
    limit: int,
    cursor: str | None,
    status: JobStatus | None = None,
    kind: str | None = None,
) -> Page[JobOut]:
    query = select(*JOB_COLUMNS).where(Job.user_id == user_id)
    if cursor:
        query = query.where(Job.id < cursor)
    if status:
        query = query.where(Job.status == status)
    if kind:
        query = query.where(Job.kind == kind)
    rows = (await session.execute(query.order_by(Job.id.desc()).limit(limit + 1))).mappings()
    items = [JobOut.model_validate(r) for r in rows]
    return page_of(items, limit, items[limit - 1].id if len(items) > limit else None)


async def transition(
    session: AsyncSession,
    redis: Redis,
    job_id: str,
    *,
    only_from: frozenset[str],
    where: tuple[ColumnElement[bool], ...] = (),
    **values: Any,
) -> JobOut | None:
    """Move a job to new values if its status is in `only_from` (and `where` holds);
    publish and return it, or return None when the job was not in that state."""
    values.setdefault("updated_at", datetime.now(UTC))
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.status.in_(only_from), *where)
        .values(**values)
        .returning(*JOB_COLUMNS)
    )
    row = (await session.execute(statement)).mappings().first()
    if row is None:
        return None
    job = JobOut.model_validate(row)
    await publish(redis, job)
    return job


async def publish(redis: Redis, job: JobOut) -> None:
    try:
        await redis.publish(job_events_channel(job.id), orjson.dumps(job.model_dump(mode="json")))
    except Exception:  # pub/sub is a convenience; the row is the truth
        log.warning("could not publish progress of job %s", job.id, exc_info=True)


ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})


async def cancel_job(session: AsyncSession, redis: Redis, user_id: str, job_id: str) -> JobOut:
    """Cancel a queued or running job. A running job stops at its next progress step."""
    current = await get_job(session, user_id, job_id)
    if current.status in TERMINAL_STATUSES:
        raise Conflict(f"The job has already {current.status.value}.")
    now = datetime.now(UTC)
    job = await transition(
        session,
        redis,
        job_id,
        only_from=ACTIVE,
        status=JobStatus.CANCELLED,
        stage="cancelled",
        finished_at=now,
    )
    if job is None:
        raise Conflict("The job finished before it could be cancelled.")
    # Ask arq to drop it if still queued, or to cancel its task if it is running.
    await redis.zadd(abort_jobs_ss, {job_id: int(now.timestamp() * 1000)})
    return job
