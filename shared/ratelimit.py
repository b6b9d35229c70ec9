"""Rate limits shared by every API process: GCRA in one Lua script on Redis.

GCRA (the generic cell rate algorithm) keeps one number per key, the "theoretical arrival
time" of the next request. A limit of N per period lets N requests through at once and
then one every period/N; after a quiet period the whole burst is available again. The
check and the update run in one script, so concurrent requests (from any number of API
processes) can never both take the last slot, and the time is Redis's clock, so the
processes' clocks do not need to agree.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from shared.batching import Batcher

KEY_PREFIX = "brainwave:ratelimit:"

_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
_PERIODS |= {"h": 3600, "hour": 3600, "d": 86400, "day": 86400}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*(second|sec|s|minute|min|m|hour|h|day|d)s?\s*")

# KEYS[1]: the limit's key; KEYS[2..]: keys any of which, when it exists, refuses the
# request before it is counted (a revoked token's marks). ARGV[1]: ms between requests
# (period / count). ARGV[2]: the period in ms (how far ahead of now the arrival time may
# run). Returns -1 when a refusing key exists, 0 when the request is allowed (and
# counted), else the ms until it would be.
_GCRA = """
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return -1 end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local next_tat = tat + interval
local wait = next_tat - tonumber(ARGV[2]) - now
if wait > 0 then return wait end
redis.call('SET', KEYS[1], next_tat, 'PX', next_tat - now)
return 0
"""
_GCRA_SHA = hashlib.sha1(_GCRA.encode()).hexdigest()  # noqa: S324 - Redis names scripts so


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    period_s: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """`10/minute`, `5/15minutes`, `100/hour`, `3/30s`, `1000/day`."""
        match = _RATE.fullmatch(text.lower())
        if match is None:
            raise ValueError(f"not a rate like 10/minute or 5/15minutes: {text!r}")
        count, multiple, unit = match.groups()
        period = int(multiple or 1) * _PERIODS[unit]
        if int(count) < 1 or period < 1:
            raise ValueError(f"a rate needs at least 1 request per at least 1 second: {text!r}")
        return cls(int(count), period)


def _valid(text: str) -> str:
    Rate.parse(text)
    return text


RateText = Annotated[str, AfterValidator(_valid)]
"""A rate as settings hold it: text that `Rate.parse` accepts (checked at startup)."""


def subject_key(name: str, subject: str) -> str:
    """The Redis key of limit `name` for `subject` (an IP, a user id, an email), hashed so
    no email address is stored in Redis."""
    digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
    return f"{KEY_PREFIX}{name}:{digest}"


@dataclass(frozen=True, slots=True)
class _Check:
    key: str
    rate: Rate
    refusing: tuple[str, ...]


class Limiter:
    """Counts requests against limits; one per process and event loop.

    The checks asked for while one is in flight go to Redis together in the next pipeline:
    under load a round trip (its socket write above all) cost as much CPU as everything
    else a check does. Each check is still its own script run, atomic on its own.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._batcher: Batcher[_Check, int | None] = Batcher(self._run)

    async def hit(self, key: str, rate: Rate) -> int:
        """Count one request against `key`. 0 when it is allowed, else the whole seconds to
        wait (at least 1) before it would be; a refused request is not counted."""
        return await self._batcher.submit(_Check(key, rate, ())) or 0

    async def hit_unless(self, key: str, rate: Rate, refusing: Sequence[str]) -> int | None:
        """`hit`, unless one of the `refusing` keys exists: then None, and nothing is
        counted. One round trip for what would be an EXISTS and a `hit` (say a token's
        revocation marks and the user's limit)."""
        return await self._batcher.submit(_Check(key, rate, tuple(refusing)))

    async def close(self) -> None:
        await self._batcher.close()

    async def _run(self, checks: list[_Check]) -> list[int | Exception | None]:
        replies = await self._evaluate(checks)
        unknown = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if unknown:  # a new (or flushed) Redis: load the script, run those checks again
            await self._redis.script_load(_GCRA)
            again = await self._evaluate([checks[i] for i in unknown])
            for i, reply in zip(unknown, again, strict=True):
                replies[i] = reply
        return [reply if isinstance(reply, Exception) else _wait_s(reply) for reply in replies]

    async def _evaluate(self, checks: list[_Check]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for check in checks:
                period_ms = check.rate.period_s * 1000
                interval_ms = max(1, period_ms // check.rate.count)  # never fewer than count
                keys = (check.key, *check.refusing)
                pipe.evalsha(_GCRA_SHA, len(keys), *keys, str(interval_ms), str(period_ms))
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies


def _wait_s(wait_ms: int) -> int | None:
    if wait_ms < 0:
        return None
    return 0 if wait_ms == 0 else max(1, math.ceil(wait_ms / 1000))
