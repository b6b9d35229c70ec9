"""How a worker talks to Redis when Redis restarts or goes away.

The API fails fast: while Redis is down a request that needs it answers 503 at once
(api/errors.py), and a pooled connection Redis closed is replaced when it is next taken
from the pool. A worker waits instead: arq's loop ends, and the process with it, on the
first Redis error, so every command of a worker — arq's polling and bookkeeping,
heartbeats, leases, progress — is retried, connecting included, with a backoff capped at
1 s for up to WORKER_REDIS_OUTAGE_S. Longer than that, the worker exits with the error for
its supervisor to restart it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from arq.connections import RedisSettings
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)
T = TypeVar("T")

WORKER_REDIS_OUTAGE_S = 300.0


class WaitOutOutage(Retry):
    """Retries connection errors, refused connects included (an OSError, which redis-py's
    own Retry does not retry), until `budget_s` has passed since the first failure."""

    __slots__ = ("_budget_s",)

    def __init__(self, budget_s: float) -> None:
        errors: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
        super().__init__(ExponentialBackoff(cap=1.0, base=0.05), -1, errors)  # type: ignore[arg-type]
        self._budget_s = budget_s

    async def call_with_retry(
        self, do: Callable[[], Awaitable[T]], fail: Callable[[Any], Any]
    ) -> T:
        failures, deadline = 0, 0.0
        while True:
            try:
                return await do()
            except self._supported_errors as error:
                failures += 1
                await fail(error)
                now = time.monotonic()
                if failures == 1:
                    deadline = now + self._budget_s
                    log.warning("redis unreachable (%s); waiting for it", error)
                if now >= deadline:
                    raise
                await asyncio.sleep(self._backoff.compute(failures))


def worker_redis_settings(url: str) -> RedisSettings:
    return dataclasses.replace(
        RedisSettings.from_dsn(url),
        retry=WaitOutOutage(WORKER_REDIS_OUTAGE_S),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
