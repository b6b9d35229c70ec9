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
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Annotated, cast

from pydantic import AfterValidator
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from shared.batching import Batcher

KEY_PREFIX = "brainwave:ratelimit:"

_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
_PERIODS |= {"h": 3600, "hour": 3600, "d": 86400, "day": 86400}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*(second|sec|s|minute|min|m|hour|h|day|d)s?\s*")

# A batch of checks, in order. ARGV[1]: their number; then, per check, the number of its
# keys, the ms between requests (period / count) and the period in ms (how far ahead of now
# the arrival time may run). KEYS, per check: the limit's key, then keys any of which, when
# it exists, refuses the request before it is counted (a revoked token's marks). Returns,
# per check, -1 when a refusing key exists, 0 when the request is allowed (and counted),
# else the ms until it would be.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local results = {}
local k = 1
for c = 1, tonumber(ARGV[1]) do
  local nkeys = tonumber(ARGV[3 * c - 1])
  local interval = tonumber(ARGV[3 * c])
  local period = tonumber(ARGV[3 * c + 1])
  local result = 0
  for i = k + 1, k + nkeys - 1 do
    if redis.call('EXISTS', KEYS[i]) == 1 then result = -1 break end
  end
  if result == 0 then
    local tat = tonumber(redis.call('GET', KEYS[k])) or now
    if tat < now then tat = now end
    local next_tat = tat + interval
    local wait = next_tat - period - now
    if wait > 0 then
      result = wait
    else
      redis.call('SET', KEYS[k], next_tat, 'PX', next_tat - now)
    end
  end
  results[c] = result
  k = k + nkeys
end
return results
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

    The checks asked for while one is in flight go to Redis together, in one run of the
    script: under load a round trip (its socket write above all) and each command's
    packing and parsing cost more CPU than the check itself. The script takes the checks
    one after the other, so each is as atomic as on its own.
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

    async def _run(self, checks: list[_Check]) -> list[int | None]:
        keys: list[str] = []
        args: list[str] = [str(len(checks))]
        for check in checks:
            period_ms = check.rate.period_s * 1000
            interval_ms = max(1, period_ms // check.rate.count)  # never fewer than `count`
            keys += (check.key, *check.refusing)
            args += (str(1 + len(check.refusing)), str(interval_ms), str(period_ms))
        try:
            replies = await self._evaluate(keys, args)
        except NoScriptError:  # a new (or flushed) Redis: nothing ran; load the script
            await self._redis.script_load(_GCRA)
            replies = await self._evaluate(keys, args)
        return [_wait_s(reply) for reply in replies]

    def _evaluate(self, keys: list[str], args: list[str]) -> Awaitable[list[int]]:
        return cast("Awaitable[list[int]]", self._redis.evalsha(_GCRA_SHA, len(keys), *keys, *args))


def _wait_s(wait_ms: int) -> int | None:
    if wait_ms < 0:
        return None
    return 0 if wait_ms == 0 else max(1, math.ceil(wait_ms / 1000))
