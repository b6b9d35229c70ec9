"""`GET /metrics`: Prometheus text format.

The API process's own HTTP metrics (api/observability.py), plus what is true of the whole
system, read at scrape time: jobs by kind and status (the jobs table), the arq queue's
depth and the live workers (Redis), and the counters the workers keep in Redis — job
durations and provider errors (shared/metrics.py). With `METRICS_TOKEN` set the endpoint
wants `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Iterable, Iterator
from itertools import accumulate

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import func, select

from api.deps import ResourcesDep
from api.observability import HttpMetrics
from shared import metrics
from shared.errors import Unauthorized
from shared.jobs.channels import WORKER_HEARTBEAT_TTL_S, WORKER_HEARTBEATS_KEY
from shared.jobs.models import Job
from shared.resources import Resources

router = APIRouter(tags=["ops"])


class _Collected:
    """What `generate_latest` wants: something with `collect()`."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


@router.get("/metrics", response_class=Response, include_in_schema=False)
async def scrape(request: Request, resources: ResourcesDep) -> Response:
    """Prometheus metrics of the API process and of the system (jobs, queue, workers).

    Not in the OpenAPI document: it is for Prometheus on the internal network, not for the
    frontend, and the public nginx does not proxy it (only /api/ and the docs).
    """
    _authorize(request, resources.settings.metrics_token)
    http: HttpMetrics = request.app.state.http_metrics
    jobs, redis_families = await asyncio.gather(_jobs(resources), _from_redis(resources))
    body = generate_latest(_Collected([*http.registry.collect(), jobs, *redis_families]))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _authorize(request: Request, token: str) -> None:
    if not token:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
        raise Unauthorized("The metrics token is missing or wrong.")


JOB_COUNTS = select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)
"""Run on every scrape; answered from the index ix_jobs_kind_status alone."""


async def _jobs(resources: Resources) -> Metric:
    family = GaugeMetricFamily(
        "brainwave_jobs", "Jobs in the jobs table, by kind and status.", labels=("kind", "status")
    )
    async with resources.db.read_session() as session:
        for kind, status, count in await session.execute(JOB_COUNTS):
            family.add_metric((kind, status), count)
    return family


async def _from_redis(resources: Resources) -> list[Metric]:
    redis, namespace = resources.redis, resources.settings.queue_name
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(namespace)
        pipe.zcount(namespace, "-inf", int(now * 1000))
        pipe.zcount(WORKER_HEARTBEATS_KEY, now - WORKER_HEARTBEAT_TTL_S, "+inf")
        depth, ready, workers = await pipe.execute()
    queue = GaugeMetricFamily(
        "brainwave_queue_depth",
        "Jobs in the arq queue: ready to run, or deferred (retries waiting for their backoff).",
        labels=("state",),
    )
    queue.add_metric(("ready",), ready)
    queue.add_metric(("deferred",), depth - ready)
    live = GaugeMetricFamily("brainwave_workers_live", "Workers with a recent heartbeat.")
    live.add_metric((), workers)
    histograms, provider_errors = await metrics.read_counters(redis, namespace)
    errors = CounterMetricFamily(
        "brainwave_provider_errors",
        "Failures of the AI and transcription providers, by provider and kind.",
        labels=("provider", "kind"),
    )
    for labels, count in sorted(provider_errors.items()):
        errors.add_metric(labels, count)
    return [queue, live, _durations(histograms), errors]


def _durations(histograms: dict[tuple[str, str], metrics.Histogram]) -> Metric:
    family = HistogramMetricFamily(
        "brainwave_job_duration_seconds",
        "Run time of the jobs the workers finished (claim to finish of the last attempt).",
        labels=("kind", "status"),
    )
    bounds = [*map(str, metrics.JOB_SECONDS_BUCKETS), "+Inf"]
    for labels, histogram in sorted(histograms.items()):
        cumulative = list(accumulate(histogram.buckets))
        family.add_metric(labels, list(zip(bounds, cumulative, strict=True)), histogram.total)
    return family
