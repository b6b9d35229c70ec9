"""Turns across processes through Redis: one holder at a time, the next one woken at release.

Used for the Chroma writes (see `shared.clients.vectorstore`). It replaces redis-py's
`Lock`, whose waiters retry `SET NX` every 5 ms: with PDF jobs queuing for Chroma that
polling cost each waiting job ~0.1–0.2 s of the worker's CPU per second of waiting —
CPU the same process's pypdf threads wanted — and it grew with every waiting job.

- Within a process, jobs queue on an `asyncio.Lock` first, so at most one coroutine per
  process waits on Redis.
- Across processes, the holder owns `key` (`SET NX PX` with a short TTL that the holder
  renews every third of it while its body runs, so a crashed holder's turn expires within
  TTL_S, not after the longest write's worth); a waiter blocks on `BLPOP` of `key:wake`
  and tries again when a release pushes a token there, or after WAKE_POLL_S at the latest
  (a lost or expired token, a crashed holder). A release keeps at most one token, so a
  release nobody waited for lets at most one later waiter retry once for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

from redis.asyncio import Redis

WAKE_POLL_S = 0.1
TTL_S = 10.0
WAKE_TOKEN_TTL_MS = 2_000

# Delete the turn only if it is still ours (it may have expired and been taken), then
# leave exactly one wake token for the next waiter.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[1]) end
redis.call('del', KEYS[2])
redis.call('rpush', KEYS[2], '1')
redis.call('pexpire', KEYS[2], ARGV[2])
"""


# Extend the turn only while it is still ours.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) end
"""


class TurnTimeout(TimeoutError):
    """No turn within `wait_s`."""


class RedisTurns:
    """`async with turns.take():` runs the body while no other holder of `key` runs its own."""

    def __init__(self, redis: Redis, key: str, *, ttl_s: float = TTL_S, wait_s: float = 300.0):
        self._redis = redis
        self._key = key
        self._wake_key = f"{key}:wake"
        self._ttl_ms = int(ttl_s * 1000)
        self._wait_s = wait_s
        self._local = asyncio.Lock()
        self._release = redis.register_script(_RELEASE)
        self._renew = redis.register_script(_RENEW)

    @contextlib.asynccontextmanager
    async def take(self) -> AsyncIterator[None]:
        async with self._local:
            token = await self._acquire()
            keeper = asyncio.create_task(self._keep(token))
            try:
                yield
            finally:
                keeper.cancel()
                await self._release(
                    keys=[self._key, self._wake_key], args=[token, WAKE_TOKEN_TTL_MS]
                )

    async def _keep(self, token: str) -> None:
        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            await self._renew(keys=[self._key], args=[token, self._ttl_ms])

    async def _acquire(self) -> str:
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self._wait_s
        while not await self._redis.set(self._key, token, nx=True, px=self._ttl_ms):
            if time.monotonic() >= deadline:
                raise TurnTimeout(f"no turn on {self._key} within {self._wait_s:.0f}s")
            # redis-py types BLPOP's timeout as whole seconds; Redis >= 6 takes fractions.
            await self._redis.blpop([self._wake_key], timeout=WAKE_POLL_S)  # type: ignore[arg-type,misc]
        return token
