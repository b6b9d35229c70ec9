"""arq worker settings: `arq worker.main.WorkerSettings`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, ClassVar

from arq import cron
from arq.connections import RedisSettings
from arq.worker import Function

from shared.backups.service import BACKUP
from shared.config import get_settings
from shared.flashcards.service import GENERATE_DECK
from shared.jobs.channels import WORKER_HEARTBEAT_TTL_S, WORKER_HEARTBEATS_KEY
from shared.materials.service import PROCESS_MATERIAL
from shared.paths.service import GENERATE_PATH
from shared.quizzes.service import GENERATE_QUIZ
from shared.redis_retry import worker_redis_settings
from shared.resources import Resources
from worker.lifecycle import WORKER_ID, job_function
from worker.tasks import backups, flashcards, materials, paths, quizzes
from worker.tasks.maintenance import reap_jobs

log = logging.getLogger(__name__)
settings = get_settings()

HEARTBEAT_INTERVAL_S = WORKER_HEARTBEAT_TTL_S / 3


async def _heartbeat(resources: Resources) -> None:
    while True:
        now = time.time()
        async with resources.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(WORKER_HEARTBEATS_KEY, {WORKER_ID: now})
            pipe.zremrangebyscore(WORKER_HEARTBEATS_KEY, 0, now - WORKER_HEARTBEAT_TTL_S)
            await pipe.execute()
        await asyncio.sleep(HEARTBEAT_INTERVAL_S)


async def startup(ctx: dict[str, Any]) -> None:
    resources = await Resources.open(settings, redis=ctx["redis"])
    ctx["resources"] = resources
    ctx["heartbeat"] = asyncio.create_task(_heartbeat(resources))
    log.info("worker %s started", WORKER_ID)


async def shutdown(ctx: dict[str, Any]) -> None:
    ctx["heartbeat"].cancel()
    resources: Resources = ctx["resources"]
    with contextlib.suppress(Exception):
        await resources.redis.zrem(WORKER_HEARTBEATS_KEY, WORKER_ID)
    await resources.close(close_redis=False)  # arq owns the connection it gave us


class WorkerSettings:
    functions: ClassVar[list[Function]] = [
        job_function(
            PROCESS_MATERIAL,
            materials.process_material,
            settings_max_attempts=settings.job_max_attempts,
            on_failure=materials.on_failure,
        ),
        job_function(
            GENERATE_DECK, flashcards.generate_deck, settings_max_attempts=settings.job_max_attempts
        ),
        job_function(
            GENERATE_QUIZ,
            quizzes.generate_quiz,
            settings_max_attempts=settings.job_max_attempts,
            on_failure=quizzes.on_failure,
        ),
        job_function(
            GENERATE_PATH,
            paths.generate_path,
            settings_max_attempts=settings.job_max_attempts,
            on_failure=paths.on_failure,
        ),
        job_function(BACKUP, backups.backup, settings_max_attempts=settings.job_max_attempts),
    ]
    cron_jobs: ClassVar[list[Any]] = [
        cron(reap_jobs, second=set(range(0, 60, 5)), run_at_startup=True, timeout=30),
        cron(
            backups.daily_backup,
            hour=settings.backup_hour_utc,
            minute=0,
            unique=True,  # one run per scheduled time across workers; see daily_backup
            timeout=settings.job_timeout_seconds,
        ),
    ]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings: ClassVar[RedisSettings] = worker_redis_settings(settings.redis_url)
    queue_name = settings.queue_name
    max_jobs = settings.worker_max_jobs
    job_timeout = settings.job_timeout_seconds
    keep_result = 0
    allow_abort_jobs = True
    # How long an idle worker waits between polls (worker/scheduler.py; a full one polls
    # again as soon as a slot frees): a new job waits ≤ 20 ms for a worker, and an idle
    # worker polls 50×/s, one Redis round trip each. See README, Performance.
    poll_delay = 0.02
    health_check_interval = 5
