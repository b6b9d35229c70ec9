"""The one wrapper that owns every job's lifecycle.

For each kind of job it: claims the row (queued → running, attempts, worker host:pid),
reports progress (which is also where a cancel is noticed), retries transient errors with
exponential backoff, fails permanent ones with the handler's message, and never leaves a
traceback in front of the learner. (The short lease on arq's in-progress key that lets
another worker take up a killed worker's job, and the guard against running one job twice
in a process, are the scheduler's: worker/scheduler.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import redis.exceptions
from arq import Retry
from arq.worker import Function, func
from sqlalchemy.exc import OperationalError

from shared import metrics
from shared.jobs import service as jobs
from shared.jobs.errors import JobCancelled, PermanentJobError, TransientJobError
from shared.jobs.models import JobStatus
from shared.jobs.writer import Change
from shared.logging import request_id
from shared.resources import Resources

log = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
PROGRESS_MIN_INTERVAL_S = 0.25
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 120.0
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientJobError,
    TimeoutError,
    ConnectionError,
    httpx.TransportError,
    redis.exceptions.ConnectionError,
    OperationalError,
)
RUNNING = frozenset({JobStatus.RUNNING})
CLAIMABLE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})

Handler = Callable[["JobRun"], Awaitable[dict[str, Any]]]
FailureHook = Callable[[Resources, dict[str, Any], str], Awaitable[None]]


@dataclass
class JobRun:
    """What a handler sees: the job's identity and payload, and a way to report progress."""

    id: str
    user_id: str
    payload: dict[str, Any]
    attempt: int
    resources: Resources
    _last_write: float = field(default=0.0)

    async def progress(self, percent: int, stage: str) -> None:
        """Record progress (throttled); raise JobCancelled if the job was cancelled meanwhile."""
        now = time.monotonic()
        if percent < 100 and now - self._last_write < PROGRESS_MIN_INTERVAL_S:
            return
        self._last_write = now
        state = await _set(
            self.resources,
            self.id,
            announced_first=False,
            progress=max(0, min(100, percent)),
            stage=stage[:200],
        )
        if state is None:
            raise JobCancelled("The job was cancelled.")


def backoff_seconds(attempt: int) -> float:
    return float(min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))


async def _set(
    resources: Resources, job_id: str, *, announced_first: bool = True, **values: Any
) -> jobs.JobState | None:
    """Update a job this worker is running (no-op once it was cancelled or re-claimed).

    The write is batched with the other jobs' changes (shared/jobs/writer.py); the new
    state is announced after the commit, a final one with its duration for /metrics.
    Returns once announced, or once committed if not `announced_first`.
    """
    change = Change(
        job_id,
        RUNNING,
        values,
        worker=WORKER_ID,
        count_duration=True,
        announced_first=announced_first,
    )
    applied = await resources.job_states.apply(change)
    return None if applied is None else applied.state


async def _handle(handler: Handler, run: JobRun) -> dict[str, Any]:
    """Run the handler; a provider's failure is counted (for /metrics) on its way out."""
    try:
        return await handler(run)
    except Exception as exc:
        namespace = run.resources.settings.queue_name
        await metrics.count_provider_error(run.resources.redis, namespace, exc)
        raise


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: str
    kind: str
    user_id: str
    payload: dict[str, Any]


async def _claim(resources: Resources, job_id: str, attempt: int) -> _Claimed | None:
    """queued/running → running by this worker, reading the payload in the same UPDATE."""
    values = {
        "status": JobStatus.RUNNING,
        "attempts": attempt,
        "worker": WORKER_ID,
        "stage": "starting",
        "started_at": datetime.now(UTC),
        "error": None,
    }
    change = Change(job_id, CLAIMABLE, values, with_payload=True, announced_first=False)
    applied = await resources.job_states.apply(change)
    if applied is None:
        return None
    state = applied.state
    return _Claimed(job_id, state.job.kind, state.user_id, applied.payload or {})


async def _fail(
    resources: Resources, job: _Claimed, message: str, on_failure: FailureHook | None
) -> None:
    failed = await _set(
        resources,
        job.id,
        status=JobStatus.FAILED,
        error=message,
        stage="failed",
        finished_at=datetime.now(UTC),
    )
    if failed is not None and on_failure is not None:
        await on_failure(resources, job.payload, message)


async def run_job(
    ctx: dict[str, Any], job_id: str, handler: Handler, on_failure: FailureHook | None
) -> dict[str, Any]:
    resources: Resources = ctx["resources"]
    attempt = int(ctx.get("job_try", 1))
    max_attempts = resources.settings.job_max_attempts
    job = await _claim(resources, job_id, attempt)
    if job is None:
        return {"skipped": "the job is no longer queued"}
    request_id.set(job.payload.get("request_id"))  # reset by job_function's coroutine
    if attempt > max_attempts:
        await _fail(resources, job, f"Stopped after {max_attempts} attempts.", on_failure)
        return {"failed": "too many attempts"}
    run = JobRun(job.id, job.user_id, dict(job.payload), attempt, resources)
    context = {"job_id": job_id, "kind": job.kind, "attempt": attempt}
    log.info("job started", extra=context)
    started = time.perf_counter()
    try:
        result = await _handle(handler, run)
    except JobCancelled:
        await _set(
            resources,
            job_id,
            status=JobStatus.CANCELLED,
            stage="cancelled",
            finished_at=datetime.now(UTC),
        )
        return {"cancelled": True}
    except PermanentJobError as exc:
        await _fail(resources, job, str(exc), on_failure)
        return {"failed": str(exc)}
    except TRANSIENT_ERRORS as exc:
        message = str(exc) or exc.__class__.__name__
        if attempt >= max_attempts:
            await _fail(resources, job, f"{message} (gave up after {attempt} attempts)", on_failure)
            return {"failed": message}
        delay = backoff_seconds(attempt)
        log.warning("job %s attempt %d failed transiently: %s", job_id, attempt, message)
        await _set(
            resources,
            job_id,
            status=JobStatus.QUEUED,
            error=message,
            stage=f"retrying in {delay:.0f}s",
        )
        raise Retry(defer=delay) from exc
    except asyncio.CancelledError:
        # Aborted by a cancel (the row already says so) or the worker is shutting down:
        # then hand the job back to the queue; arq runs it again.
        with contextlib.suppress(Exception):
            await _set(
                resources, job_id, status=JobStatus.QUEUED, stage="worker stopped; re-queued"
            )
        raise
    except Exception:
        log.exception("job %s (%s) failed unexpectedly", job_id, job.kind)
        await _fail(resources, job, "An internal error stopped this job.", on_failure)
        return {"failed": "internal error"}
    await _set(
        resources,
        job_id,
        status=JobStatus.SUCCEEDED,
        progress=100,
        stage="done",
        result=result,
        finished_at=datetime.now(UTC),
    )
    log.info("job succeeded", extra={**context, "seconds": round(time.perf_counter() - started, 3)})
    return result


def job_function(
    kind: str,
    handler: Handler,
    *,
    settings_max_attempts: int,
    on_failure: FailureHook | None = None,
    timeout_s: float | None = None,
) -> Function:
    """Register `handler` as the arq function `kind`, wrapped in the lifecycle."""

    async def coroutine(ctx: dict[str, Any], job_id: str) -> dict[str, Any]:
        # The job's log lines carry the id of the API request that created it.
        token = request_id.set(None)
        try:
            return await run_job(ctx, job_id, handler, on_failure)
        finally:
            request_id.reset(token)

    coroutine.__qualname__ = coroutine.__name__ = kind
    # arq's own try limit is only a backstop: the wrapper fails the row first.
    return func(coroutine, name=kind, max_tries=settings_max_attempts + 2, timeout=timeout_s)
