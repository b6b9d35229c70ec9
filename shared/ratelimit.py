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
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator
from redis.asyncio import Redis

KEY_PREFIX = "brainwave:ratelimit:"

_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
_PERIODS |= {"h": 3600, "hour": 3600, "d": 86400, "day": 86400}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*(second|sec|s|minute|min|m|hour|h|day|d)s?\s*")

# KEYS[1]: the limit's key. ARGV[1]: ms between requests (period / count). ARGV[2]: the
# period in ms (how far ahead of now the arrival time may run). Returns 0 when the request
# is allowed (and counted), else the ms until it would be.
_GCRA = """
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


async def hit(redis: Redis, key: str, rate: Rate) -> int:
    """Count one request against `key`. 0 when it is allowed, else the whole seconds to wait
    (at least 1) before it would be; a refused request is not counted."""
    period_ms = rate.period_s * 1000
    interval_ms = max(1, period_ms // rate.count)  # rounded down: never fewer than `count`
    script = redis.register_script(_GCRA)
    wait_ms = int(await script(keys=[key], args=[interval_ms, period_ms]))
    return 0 if wait_ms <= 0 else max(1, math.ceil(wait_ms / 1000))
