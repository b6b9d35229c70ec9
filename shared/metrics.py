"""Counters every process records into Redis, for the API's `GET /metrics` to expose.

The workers are separate processes (any number of them, restarted at will), so what they
observe cannot live in their memory: a scrape of the API would never see it. They add to
hashes in Redis instead, and the API reads the hashes at scrape time:

- **job durations**: a histogram, kept as Prometheus keeps one — a count per bucket and
  a sum — per (kind, status), each finish added atomically. Every worker
  adds to the same buckets, so the histogram covers all of them, survives worker restarts
  and only ever grows, which is what `rate()` and `histogram_quantile()` need. (Computing
  one at scrape time from recently finished rows would not: a window's counts go down as
  jobs leave it, and Prometheus would read that as counter resets.)
- **provider errors**: a count per (provider, kind), from the API (chat) and the workers.

The keys live under the deployment's queue name, so two deployments (or two test stacks)
sharing a Redis do not mix their numbers.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import cast

from redis.asyncio import Redis

from shared.clients.llm.base import ProviderError
from shared.jobs.errors import PermanentJobError, TransientJobError

log = logging.getLogger(__name__)

JOB_SECONDS_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
"""Upper bounds of the job-duration buckets (seconds); +Inf is implied."""

# The module an error was raised in names the provider: a label that stays right without
# every raise site (there are many, and more with each provider) having to name itself.
_PROVIDER_MODULES = {
    "shared.clients.llm.gemini": "gemini",
    "shared.clients.llm.openai_compat": "openai",
    "shared.clients.transcription": "assemblyai",
}


def key(namespace: str, name: str) -> str:
    """`namespace` is the queue name (`settings.queue_name`)."""
    return f"{namespace}:metrics:{name}"


def bucket_index(seconds: float) -> int:
    """The first bucket whose bound holds `seconds`; len(JOB_SECONDS_BUCKETS) is +Inf."""
    for index, bound in enumerate(JOB_SECONDS_BUCKETS):
        if seconds <= bound:
            return index
    return len(JOB_SECONDS_BUCKETS)


def job_duration_fields(
    namespace: str, kind: str, status: str, seconds: float
) -> tuple[str, str, str]:
    """Where one finished job goes in the duration histogram: the hash, the field of its
    bucket (+1) and the field of its series' sum (+seconds). The job-state writer adds
    both in the script that announces the job's final state (one atomic step)."""
    series = f"{kind}|{status}"
    return key(namespace, "job_seconds"), f"{series}|{bucket_index(seconds)}", f"{series}|sum"


def provider_error_labels(exc: BaseException) -> tuple[str, str] | None:
    """(provider, kind) when `exc` is an AI or transcription provider's failure, else None."""
    provider = _raised_in_provider(exc)
    if isinstance(exc, ProviderError):
        return provider or "unknown", exc.kind
    if provider == "assemblyai" and isinstance(exc, TransientJobError | PermanentJobError):
        return provider, _transcription_kind(exc)
    return None


def _raised_in_provider(exc: BaseException) -> str | None:
    found = None
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        found = _PROVIDER_MODULES.get(frame.f_globals.get("__name__", ""), found)
    return found


def _transcription_kind(exc: TransientJobError | PermanentJobError) -> str:
    """The LLM errors' kinds, for AssemblyAI's failures (mapped to job errors there)."""
    status = getattr(exc.__cause__, "status_code", None)
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "quota"
    return "unavailable" if isinstance(exc, TransientJobError) else "invalid"


async def count_provider_error(redis: Redis, namespace: str, exc: BaseException) -> None:
    """Count `exc` when it is a provider's failure. Never raises."""
    labels = provider_error_labels(exc)
    if labels is None:
        return
    try:
        field_name = "|".join(labels)
        await cast(
            "Awaitable[int]", redis.hincrby(key(namespace, "provider_errors"), field_name, 1)
        )
    except Exception:
        log.warning("could not count a provider error", exc_info=True)


@dataclass
class Histogram:
    """Counts per bucket (not cumulative; the last is +Inf) and the sum of the values."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(JOB_SECONDS_BUCKETS) + 1))
    total: float = 0.0


async def read_counters(
    redis: Redis, namespace: str
) -> tuple[dict[tuple[str, str], Histogram], dict[tuple[str, str], int]]:
    """The job-duration histograms by (kind, status) and the provider errors by (provider,
    kind), as the processes recorded them."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(key(namespace, "job_seconds"))
        pipe.hgetall(key(namespace, "provider_errors"))
        durations, errors = await pipe.execute()
    return _histograms(durations), {
        _pair(field_name.decode()): int(value) for field_name, value in errors.items()
    }


def _pair(text: str) -> tuple[str, str]:
    first, second = text.split("|", 1)
    return first, second


def _histograms(raw: dict[bytes, bytes]) -> dict[tuple[str, str], Histogram]:
    out: dict[tuple[str, str], Histogram] = {}
    for field_name, value in raw.items():
        series, part = field_name.decode().rsplit("|", 1)
        histogram = out.setdefault(_pair(series), Histogram())
        if part == "sum":
            histogram.total = float(value)
        else:
            histogram.buckets[int(part)] = int(value)
    return out
