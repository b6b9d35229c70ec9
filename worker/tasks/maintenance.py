"""Housekeeping that keeps the job table honest when processes die or Redis loses data."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from arq.constants import in_progress_key_prefix, job_key_prefix
from sqlalchemy import select

from shared.jobs import service as jobs
from shared.jobs.models import Job, JobStatus
from shared.resources import Resources

log = logging.getLogger(__name__)

REENQUEUE_GRACE = timedelta(seconds=30)


async def reap_jobs(ctx: dict[str, Any]) -> dict[str, int]:
    """Repair jobs whose worker died or whose queue entry vanished.

    - running, but no live lease on arq's in-progress key: the worker was killed. The row
      goes back to `queued` (arq re-runs the job from its queue).
    - queued or running with neither a queue entry nor a lease, for longer than a grace
      period: Redis lost it (restart without persistence, failed enqueue). Enqueue again.
    """
    resources: Resources = ctx["resources"]
    redis = resources.redis
    now = datetime.now(UTC)
    async with resources.db.read_session() as session:
        rows = (
            await session.execute(
                select(Job.id, Job.kind, Job.status, Job.worker, Job.attempts, Job.updated_at)
                .where(Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
                .order_by(Job.id)
                .limit(500)
            )
        ).all()
    requeued = reenqueued = 0
    for row in rows:
        if await redis.exists(in_progress_key_prefix + row.id):
            continue
        if row.status == JobStatus.RUNNING:
            async with resources.db.session() as session:
                moved = await jobs.transition(
                    session,
                    row.id,
                    only_from=frozenset({JobStatus.RUNNING}),
                    where=(Job.worker == row.worker, Job.attempts == row.attempts),
                    status=JobStatus.QUEUED,
                    stage="worker lost; re-queued",
                )
            if moved is not None:
                await jobs.announce(redis, moved)
                requeued += 1
        if now - row.updated_at > REENQUEUE_GRACE and not await redis.exists(
            job_key_prefix + row.id
        ):
            await jobs.enqueue(redis, row.kind, row.id)
            reenqueued += 1
    if requeued or reenqueued:
        log.warning("reaper: %d jobs re-queued, %d re-enqueued", requeued, reenqueued)
    return {"requeued": requeued, "reenqueued": reenqueued}
