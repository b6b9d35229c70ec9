"""Backup jobs: one an admin asks for (through the lifecycle) and the daily cron."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from shared.backups.service import take_backup
from shared.resources import Resources
from worker.lifecycle import WORKER_ID, JobRun

log = logging.getLogger(__name__)

DAILY_KEY_PREFIX = "brainwave:backup:daily:"
DAILY_KEY_TTL_S = 36 * 3600


async def backup(run: JobRun) -> dict[str, Any]:
    return await take_backup(run.resources, run.progress)


async def daily_backup(ctx: dict[str, Any]) -> dict[str, Any]:
    """The daily backup, run by one worker of the fleet.

    Every worker runs arq's cron loop, but the cron is `unique`: each worker enqueues it
    under the same job id (`daily_backup:<scheduled time>`), so arq queues and runs it once
    while that job or its result exists. That holds only while the job is queued or
    running (results are not kept), so a worker whose clock or loop lags could enqueue it
    again after it finished. The first run of the day therefore also claims a Redis key
    named after the UTC date (SET NX, expiring after 36 hours); any later run that day
    finds it taken and does nothing.
    """
    resources: Resources = ctx["resources"]
    day = datetime.now(UTC).date().isoformat()
    claimed = await resources.redis.set(
        DAILY_KEY_PREFIX + day, WORKER_ID, nx=True, ex=DAILY_KEY_TTL_S
    )
    if not claimed:
        return {"skipped": f"the backup of {day} was already taken"}
    result = await take_backup(resources, _quiet)
    log.info("daily backup %s written (%d bytes)", result["backup"], result["size_bytes"])
    return result


async def _quiet(_percent: int, _stage: str) -> None:
    """A cron run has no job row to report progress to."""
