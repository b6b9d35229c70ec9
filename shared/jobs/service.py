"""Job rows: creation (enqueued only after commit), reads, state transitions, cancel.

Every transition is one conditional UPDATE … RETURNING, so two processes can never move a
job backwards (a cancelled job stays cancelled). After the transaction commits, the new
state is *announced*: stored in Redis as a ready-made JSON snapshot under a key that names
the owner (what `GET /api/jobs/{id}` serves without touching the database) and published
for the SSE stream. The row stays the truth: a missing snapshot is rebuilt from it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss, expires_extra_ms, job_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from sqlalchemy import ColumnElement, Select, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from shared.errors import Conflict, NotFound
from shared.ids import new_id
from shared.jobs.channels import job_events_channel
from shared.jobs.models import TERMINAL_STATUSES, Job, JobStatus
from shared.jobs.schemas import JobOut
from shared.logging import request_id
from shared.pagination import Page, page_of

log = logging.getLogger(__name__)

_PENDING_ENQUEUES = "brainwave.pending_enqueues"
JOB_COLUMNS = tuple(c for c in Job.__table__.columns if c.key not in {"payload", "user_id"})
FINAL_SNAPSHOT_TTL_S = 7 * 24 * 3600
ACTIVE_SNAPSHOT_TTL_S = 60
"""An active job's snapshot lives a minute unless refreshed, so a lost announcement can
leave a poll stale for a minute at most before it falls back to the row."""
ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})


@dataclass(frozen=True, slots=True)
class JobState:
    """A job's public state and its owner, as read back by UPDATE … RETURNING."""

    user_id: str
    job: JobOut


def snapshot_key(user_id: str, job_id: str) -> str:
    return f"brainwave:job:{user_id}:{job_id}"


def _with_request_id(payload: dict[str, Any]) -> dict[str, Any]:
    if (current := request_id.get()) is not None:
        payload = {**payload, "request_id": current}
    return payload


def create_job(session: AsyncSession, user_id: str, kind: str, payload: dict[str, Any]) -> Job:
    """Add a queued job; it is handed to the workers by `commit_and_enqueue`, never before.

    The payload keeps the id of the request that asked for the job (when there is one),
    so the worker's log lines for it can be found with the request's.
    """
    now = datetime.now(UTC)
    job = Job(
        user_id=user_id,
        kind=kind,
        payload=_with_request_id(payload),
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


def new_job_row(
    user_id: str, kind: str, payload: dict[str, Any], now: datetime
) -> tuple[dict[str, Any], JobState]:
    """A queued job as a `jobs` row (for a Core insert: `JobStateWriter.insert` enqueues it
    once the insert committed, never before) and its state."""
    row: dict[str, Any] = {
        "id": new_id(),
        "user_id": user_id,
        "kind": kind,
        "status": JobStatus.QUEUED,
        "progress": 0,
        "stage": "queued",
        "error": None,
        "payload": _with_request_id(payload),
        "result": None,
        "attempts": 0,
        "worker": None,
        "started_at": None,
        "finished_at": None,
        "created_at": now,
        "updated_at": now,
    }
    return row, JobState(user_id, JobOut.model_validate(row))


async def commit_and_enqueue(session: AsyncSession, queue: ArqRedis) -> None:
    """Commit, then enqueue the jobs this transaction created (a rollback drops them)."""
    pending: list[Job] = session.info.pop(_PENDING_ENQUEUES, [])
    await session.commit()
    for job in pending:
        try:
            await announce(queue, JobState(job.user_id, JobOut.model_validate(job)), publish=False)
            await enqueue(queue, job.kind, job.id)
        except Exception:  # the row is durable; the workers' reaper enqueues it later
            log.exception("enqueue failed for job %s; the reaper will retry it", job.id)


def discard_pending(session: AsyncSession) -> None:
    session.info.pop(_PENDING_ENQUEUES, None)


async def enqueue(queue: ArqRedis, kind: str, job_id: str) -> None:
    await queue.enqueue_job(kind, job_id, _job_id=job_id)


# KEYS[1]: arq's queue; then, per job, its snapshot key and arq's job key. ARGV[1]: the
# enqueue time (ms, the queue's score), ARGV[2]: how long arq keeps a job (ms); then, per
# job, its snapshot, the snapshot's TTL (s), arq's serialized job and the job id.
_ANNOUNCE_NEW_JOBS = """
for i = 1, (#KEYS - 1) / 2 do
  redis.call('SET', KEYS[2 * i], ARGV[4 * i - 1], 'EX', ARGV[4 * i])
  redis.call('PSETEX', KEYS[2 * i + 1], ARGV[2], ARGV[4 * i + 1])
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4 * i + 2])
end
"""


def queue_new_jobs(pipe: Pipeline, queue_name: str, states: Sequence[JobState]) -> None:
    """Announce (`queue_announcement`, unpublished: nobody listens yet) and enqueue new jobs
    whose rows were committed, all in one command of the pipeline: three per job (a
    snapshot, arq's job, its queue entry), each packed, queued and answered in the
    transaction, were most of the announcement's CPU for a batch of the API's notes.

    Each job is enqueued as `ArqRedis.enqueue_job` stores it (default serializer, expiring
    a day after it was enqueued), without arq's WATCH + EXISTS check for a duplicate id
    (two round trips), which a new row's id cannot need."""
    if not states:
        return
    now = timestamp_ms()
    keys: list[str] = [queue_name]
    args: list[str | bytes | int] = [now, expires_extra_ms]
    for state in states:
        job_id = state.job.id
        keys += (snapshot_key(state.user_id, job_id), job_key_prefix + job_id)
        job = serialize_job(state.job.kind, (job_id,), {}, None, now)
        args += (*_snapshot(state), job, job_id)
    # redis-py's stubs want str arguments; it sends bytes and ints as they are.
    pipe.eval(_ANNOUNCE_NEW_JOBS, len(keys), *keys, *args)  # type: ignore[arg-type]


# KEYS: each state's snapshot key, then the duration histogram's hash when there are
# durations. ARGV[1]: the number of states; per state its snapshot, the snapshot's TTL (s),
# the channel to publish it on and whether it is final ('1' or '0'); then per duration its
# bucket field, its sum field and the seconds. A state that is not final never replaces a
# final one: a job never leaves a final status, so such a state is older (a claim committed
# just before the API's cancel can be announced after it).
_ANNOUNCE_STATES = """
local final_statuses = {FINAL}
local function ended(key)
  local current = redis.call('GET', key)
  if not current then return false end
  local status = string.match(current, '^{"id":"[^"]*","kind":"[^"]*","status":"(%a+)"')
  return final_statuses[status] == true
end
local states = tonumber(ARGV[1])
for i = 1, states do
  local snapshot, final = ARGV[4 * i - 2], ARGV[4 * i + 1]
  if final == '1' or not ended(KEYS[i]) then
    redis.call('SET', KEYS[i], snapshot, 'EX', ARGV[4 * i - 1])
    redis.call('PUBLISH', ARGV[4 * i], snapshot)
  end
end
for j = 4 * states + 2, #ARGV, 3 do
  redis.call('HINCRBY', KEYS[states + 1], ARGV[j], 1)
  redis.call('HINCRBYFLOAT', KEYS[states + 1], ARGV[j + 1], ARGV[j + 2])
end
""".replace("{FINAL}", "{" + ", ".join(f"{s} = true" for s in sorted(TERMINAL_STATUSES)) + "}")


@dataclass(slots=True)
class Announcements:
    """Committed states to announce (as `announce` does) and finished jobs' durations to
    add to the histogram (`metrics.job_duration_fields`), sent as one script: a SET and a
    PUBLISH per state, each packed and answered on its own inside MULTI/EXEC, were most of
    the CPU a worker spent announcing a job's start and end."""

    _keys: list[str] = field(default_factory=list)
    _states: list[bytes | int | str] = field(default_factory=list)
    _histogram: str | None = None
    _durations: list[str | float] = field(default_factory=list)

    def add(self, state: JobState) -> None:
        data, ttl = _snapshot(state)
        final = "1" if state.job.status in TERMINAL_STATUSES else "0"
        self._keys.append(snapshot_key(state.user_id, state.job.id))
        self._states += (data, ttl, job_events_channel(state.job.id), final)

    def add_duration(self, fields: tuple[str, str, str], seconds: float) -> None:
        histogram, bucket, total = fields
        if self._histogram not in (None, histogram):
            raise ValueError("one histogram per announcement")
        self._histogram = histogram
        self._durations += (bucket, total, seconds)

    def queue(self, pipe: Pipeline) -> None:
        """Add the script to `pipe` (nothing if there is nothing to announce)."""
        if not self._keys and not self._durations:
            return
        keys = [*self._keys, *((self._histogram,) if self._histogram else ())]
        args = [len(self._keys), *self._states, *self._durations]
        # redis-py's stubs want str arguments; it sends bytes and numbers as they are.
        pipe.eval(_ANNOUNCE_STATES, len(keys), *keys, *args)  # type: ignore[arg-type]


def _owned(user_id: str, job_id: str) -> Select[Any]:
    return select(*JOB_COLUMNS).where(Job.id == job_id, Job.user_id == user_id)


async def get_job(session: AsyncSession, user_id: str, job_id: str) -> JobOut:
    row = (await session.execute(_owned(user_id, job_id))).mappings().first()
    if row is None:
        raise NotFound("Job not found.")
    return JobOut.model_validate(row)


async def cached_job_json(redis: Redis, user_id: str, job_id: str) -> bytes | None:
    """The job's JSON as last announced, or None (then read the row with `get_job`)."""
    cached: bytes | None = await redis.get(snapshot_key(user_id, job_id))
    return cached


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
    session: AsyncSession | AsyncConnection,
    job_id: str,
    *,
    only_from: frozenset[str],
    where: tuple[ColumnElement[bool], ...] = (),
    **values: Any,
) -> JobState | None:
    """Move a job to new values if its status is in `only_from` (and `where` holds).

    Returns the new state, or None when the job was not in such a state. The caller
    commits, then calls `announce`.
    """
    values.setdefault("updated_at", datetime.now(UTC))
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.status.in_(only_from), *where)
        .values(**values)
        .returning(Job.user_id, *JOB_COLUMNS)
    )
    row = (await session.execute(statement)).mappings().first()
    if row is None:
        return None
    return JobState(user_id=row["user_id"], job=JobOut.model_validate(row))


async def announce(redis: Redis, state: JobState, *, publish: bool = True) -> None:
    """Store a committed state as the poll snapshot and publish it to SSE listeners."""
    try:
        async with redis.pipeline(transaction=False) as pipe:
            queue_announcement(pipe, state, publish=publish)
            await pipe.execute()
    except Exception:  # the row is the truth; a poll falls back to it
        log.warning("could not announce job %s", state.job.id, exc_info=True)


def queue_announcement(pipe: Pipeline, state: JobState, *, publish: bool = True) -> None:
    """Add `announce`'s commands to a pipeline (to announce several states at once)."""
    data, ttl = _snapshot(state)
    pipe.set(snapshot_key(state.user_id, state.job.id), data, ex=ttl)
    if publish:
        pipe.publish(job_events_channel(state.job.id), data)


def _snapshot(state: JobState) -> tuple[bytes, int]:
    """The job's JSON as the poll serves it, and how long to keep it (s)."""
    final = state.job.status in TERMINAL_STATUSES
    return orjson.dumps(state.job.model_dump(mode="json")), (
        FINAL_SNAPSHOT_TTL_S if final else ACTIVE_SNAPSHOT_TTL_S
    )


async def cancel_job(session: AsyncSession, user_id: str, job_id: str) -> JobState:
    """Cancel a queued or running job; the caller commits, then calls `after_cancel`.

    A running job stops at its next progress step.
    """
    current = await get_job(session, user_id, job_id)
    if current.status in TERMINAL_STATUSES:
        raise Conflict(f"The job has already {current.status.value}.")
    state = await transition(
        session,
        job_id,
        only_from=ACTIVE,
        status=JobStatus.CANCELLED,
        stage="cancelled",
        finished_at=datetime.now(UTC),
    )
    if state is None:
        raise Conflict("The job finished before it could be cancelled.")
    return state


async def after_cancel(redis: Redis, state: JobState) -> None:
    """Announce the cancel, and ask arq to drop the job or cancel its running task."""
    await announce(redis, state)
    await redis.zadd(abort_jobs_ss, {state.job.id: int(time.time() * 1000)})


async def commit_cancelling(
    session: AsyncSession, redis: Redis, user_id: str, job_id: str | None
) -> None:
    """Commit the deletion of a job's subject, cancelling the job if it is still queued or
    running (one that already finished is left as it is)."""
    cancelled = None
    if job_id:
        with contextlib.suppress(Conflict, NotFound):
            cancelled = await cancel_job(session, user_id, job_id)
    await session.commit()
    if cancelled is not None:
        await after_cancel(redis, cancelled)
