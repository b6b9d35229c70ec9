"""arq settings for the `job_lifecycle` benchmark: `arq bench.lifecycle_worker.BenchWorkerSettings`.

Registers a no-op handler through our lifecycle wrapper (`bench_noop`) and a raw arq no-op
(`raw_noop`) in the same worker class, so both run with identical worker settings. The
process is set up like `worker.main` (same startup/shutdown: real Resources, heartbeat);
env BENCH_PROFILE picks the settings: `default` copies worker.main.WorkerSettings, `tuned`
is a low-latency variant (see TUNED); BENCH_WORKER_SETTINGS (JSON, e.g. '{"max_jobs": 1}')
overrides single settings on top of either, for experiments.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, ClassVar

from arq.connections import RedisSettings
from arq.worker import Function, func

from shared.config import get_settings
from shared.resources import redis_settings
from worker import main as production
from worker.lifecycle import JobRun, job_function

READY_KEY = "bench:worker-ready"
WRAPPED_KIND = "bench_noop"
RAW_KIND = "raw_noop"
PROFILE = os.environ.get("BENCH_PROFILE", "default")
TUNED: dict[str, Any] = {"max_jobs": 100, "poll_delay": 0.01, "queue_read_limit": 1000}

settings = get_settings()


def profile_settings(profile: str) -> dict[str, Any]:
    """The worker settings the benchmark compares under (the same for both cases)."""
    base = {
        "max_jobs": production.WorkerSettings.max_jobs,
        "poll_delay": production.WorkerSettings.poll_delay,
        "queue_read_limit": getattr(production.WorkerSettings, "queue_read_limit", None),
        "keep_result": production.WorkerSettings.keep_result,
        "queue_name": production.WorkerSettings.queue_name,
        "job_timeout": production.WorkerSettings.job_timeout,
        "allow_abort_jobs": production.WorkerSettings.allow_abort_jobs,
        "health_check_interval": production.WorkerSettings.health_check_interval,
    }
    if profile == "tuned":
        base.update(TUNED)
    elif profile != "default":
        raise ValueError(f"unknown BENCH_PROFILE {profile!r}")
    base.update(json.loads(os.environ.get("BENCH_WORKER_SETTINGS") or "{}"))
    return base


async def noop_handler(run: JobRun) -> dict[str, Any]:
    return {}


async def raw_noop(ctx: dict[str, Any]) -> None:
    return None


async def startup(ctx: dict[str, Any]) -> None:
    await production.startup(ctx)  # Resources.open(settings, redis=ctx["redis"]), heartbeat
    await ctx["redis"].set(READY_KEY, repr(time.time()))  # the clock starts here


_PROFILE = profile_settings(PROFILE)


class BenchWorkerSettings:
    functions: ClassVar[list[Function]] = [
        job_function(WRAPPED_KIND, noop_handler, settings_max_attempts=settings.job_max_attempts),
        func(raw_noop, name=RAW_KIND),
    ]
    on_startup = startup
    on_shutdown = production.shutdown
    redis_settings: ClassVar[RedisSettings] = redis_settings(settings)
    queue_name = _PROFILE["queue_name"]
    max_jobs = _PROFILE["max_jobs"]
    poll_delay = _PROFILE["poll_delay"]
    queue_read_limit = _PROFILE["queue_read_limit"]
    keep_result = _PROFILE["keep_result"]
    job_timeout = _PROFILE["job_timeout"]
    allow_abort_jobs = _PROFILE["allow_abort_jobs"]
    health_check_interval = _PROFILE["health_check_interval"]
