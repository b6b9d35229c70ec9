"""Request ids and HTTP metrics, in one pure-ASGI middleware (the outermost of ours).

Every request gets an id: the client's `X-Request-ID` when it is a sane token (what a
proxy or the frontend generated, so their logs and ours line up), else a new one. It is
set in the `request_id` context variable for the whole request — every log line carries
it, and jobs created by the request keep it (see shared.jobs.service.create_job) — and
returned as `X-Request-ID`.

The same middleware counts requests and times them per route *template*
(`/api/materials/{material_id}`), never per raw path, so the number of series stays
bounded: requests that match no route (unknown paths, or answered by a middleware before
routing) share the label `unmatched`, and unusual methods share `OTHER`. These metrics
live in the API process's memory; what the workers observe goes through Redis (see
shared.metrics).

It must stay cheap: the job poll fast path runs inside it (see bench `job_poll`).
"""

from __future__ import annotations

import os
import re
import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logging import request_id

ROUTE_KEY = "brainwave.route"
"""Scope key a middleware that answers before routing (the job-poll fast path) sets to the
route template it served, so its requests are labelled like the route's."""
UNMATCHED = "unmatched"
_SANE_ID = re.compile(rb"[A-Za-z0-9._:+=/-]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class HttpMetrics:
    """The API process's request counters and latency histograms, in their own registry
    (one per app, so several apps in one process — the tests — do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "brainwave_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self._latency = Histogram(
            "brainwave_http_request_duration_seconds",
            "Time from request to the end of the response body (streams included).",
            ("method", "route"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        series = (method, route, status)
        children = self._children.get(series)
        if children is None:  # prometheus' own label lookup takes a lock; this dict does not
            children = (
                self._requests.labels(method, route, str(status)),
                self._latency.labels(method, route),
            )
            self._children[series] = children
        children[0].inc()
        children[1].observe(seconds)


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope) or os.urandom(16).hex()  # a quarter of uuid4's cost
        token = request_id.set(rid)
        header = (b"x-request-id", rid.encode())
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.observe(
                _method(scope), _route(scope), status, time.perf_counter() - started
            )
        # Not reset when the app raised: Starlette's outermost middleware logs the error
        # (and answers 500) after we return, and that line should carry the id too. The
        # request's task, and its context, end with the request.
        request_id.reset(token)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return value.decode("ascii") if _SANE_ID.fullmatch(value) else None
    return None


def _method(scope: Scope) -> str:
    method: str = scope["method"]
    return method if method in _METHODS else "OTHER"


def _route(scope: Scope) -> str:
    route = scope.get("route")
    template = getattr(route, "path", None) or scope.get(ROUTE_KEY)
    return template if isinstance(template, str) else UNMATCHED
