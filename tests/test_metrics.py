"""GET /metrics and request ids, over HTTP on the real Redis and database, and against real
worker processes: route templates as labels, system gauges read at scrape time, the
workers' job durations and provider errors counted through Redis, and one request id from
the API request to the worker's log lines for its job."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from api.main import create_app
from api.routers.metrics import JOB_COUNTS
from shared.config import Settings
from shared.logging import JsonFormatter
from shared.resources import Resources
from tests.conftest import Account, Stack, assert_error, sign_up, wait_job
from tests.fakes.gemini import FakeGemini
from tests.fakes.media import MediaServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
TEXT = {"title": "Cells", "text": "The mitochondria is the powerhouse of the cell."}


async def scrape(client: httpx.AsyncClient, **headers: str) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@asynccontextmanager
async def own_app(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield app, c


class JsonLines(logging.Handler):
    """Formats records as they are emitted (while the request's context is current)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@contextmanager
def json_logs() -> Iterator[JsonLines]:
    """Added after the app is made: create_app's configure_logging replaces the handlers."""
    handler = JsonLines()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


async def test_requests_are_counted_per_route_template(
    client: httpx.AsyncClient, alice: Account
) -> None:
    before = await scrape(client)
    missing = [uuid.uuid4().hex for _ in range(3)]
    for material_id in missing:
        response = await client.get(f"/api/materials/{material_id}", headers=alice.headers)
        assert response.status_code == 404
    assert (await client.get(f"/no/such/{uuid.uuid4().hex}")).status_code == 404
    created = await client.post("/api/materials/text", headers=alice.headers, json=TEXT)
    job_id = created.json()["job"]["id"]
    assert (await client.get(f"/api/jobs/{job_id}", headers=alice.headers)).status_code == 200
    after = await scrape(client)
    response = await client.get("/metrics")

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/api/materials/{material_id}"
    requests = "brainwave_http_requests_total"
    assert delta(requests, method="GET", route=route, status="404") == 3
    assert delta(requests, method="GET", route="unmatched", status="404") == 1
    # the job poll answered by the fast path is labelled like its route
    assert delta(requests, method="GET", route="/api/jobs/{job_id}", status="200") == 1
    latency = "brainwave_http_request_duration_seconds_count"
    assert delta(latency, method="GET", route=route) == 3
    for raw in [*missing, job_id]:  # label values never carry ids
        assert raw not in response.text


async def test_request_id_is_taken_or_made_returned_and_in_every_log_line(
    migrated: Settings,
) -> None:
    async with own_app(migrated) as (app, client):

        @app.get("/api/test-log")
        async def log_twice() -> dict[str, str]:
            logging.getLogger("tests.route").info("first")
            logging.getLogger("tests.route").warning("second")
            return {}

        given = f"req-{uuid.uuid4().hex}"
        with json_logs() as logs:
            response = await client.get("/api/test-log", headers={"X-Request-ID": given})
        assert response.headers["x-request-id"] == given
        lines = [line for line in logs.lines if line["logger"] == "tests.route"]
        assert [(line["message"], line["request_id"]) for line in lines] == [
            ("first", given),
            ("second", given),
        ]
        for insane in ("has spaces", "x" * 300, 'quote"s'):
            made = (await client.get("/api/health", headers={"X-Request-ID": insane})).headers
            assert made["x-request-id"] != insane
            assert len(made["x-request-id"]) == 32
        made_ids = {(await client.get("/api/health")).headers["x-request-id"] for _ in range(2)}
        assert len(made_ids) == 2


async def test_metrics_token_when_set(migrated: Settings) -> None:
    async with own_app(migrated.model_copy(update={"metrics_token": "s3cret"})) as (_, client):
        assert_error(await client.get("/metrics"), 401, "unauthorized")
        wrong = {"Authorization": "Bearer nope"}
        assert_error(await client.get("/metrics", headers=wrong), 401, "unauthorized")
        await scrape(client, Authorization="Bearer s3cret")


async def test_chat_provider_errors_are_counted(migrated: Settings) -> None:
    with FakeGemini() as gemini:
        settings = migrated.model_copy(
            update={
                "llm_provider": "gemini",
                "embedding_provider": "offline",
                "gemini_api_key": gemini.api_key,
                "gemini_base_url": gemini.base_url,
                "gemini_model": "gemini-test",
                "queue_name": f"brainwave-test:{uuid.uuid4().hex[:8]}",
            }
        )
        async with own_app(settings) as (_, client):
            account = await sign_up(client)
            chat = await client.post(
                "/api/chat/sessions", headers=account.headers, json={"title": "Bio"}
            )
            path = f"/api/chat/sessions/{chat.json()['id']}/messages"
            gemini.fail(429)
            answer = await client.post(path, headers=account.headers, json={"content": "Cells?"})
            assert_error(answer, 502, "provider_error")
            samples = await scrape(client)
    errors = "brainwave_provider_errors_total"
    assert value(samples, errors, provider="gemini", kind="quota") == 1


async def test_worker_jobs_metrics_and_request_id_in_worker_logs(
    make_stack: Any, media_server: MediaServer
) -> None:
    stack: Stack
    # A key AssemblyAI refuses: the audio job fails there (a provider error, worker side).
    async with make_stack(assemblyai_api_key="refused-key") as stack:
        worker = stack.workers.start()
        client, account = stack.client, await sign_up(stack.client)
        request_id = f"e2e-{uuid.uuid4().hex}"
        created = await client.post(
            "/api/materials/text",
            headers={**account.headers, "X-Request-ID": request_id},
            json=TEXT,
        )
        assert created.headers["x-request-id"] == request_id
        text_job = created.json()["job"]["id"]
        audio = (media_server.root / "tone.mp3").read_bytes()
        upload = await client.post(
            "/api/materials",
            headers=account.headers,
            files={"files": ("tone.mp3", audio, "audio/mpeg")},
        )
        audio_job = upload.json()["items"][0]["job"]["id"]
        assert (await wait_job(client, account, text_job))["status"] == "succeeded"
        assert (await wait_job(client, account, audio_job))["status"] == "failed"
        samples = await scrape(client)

        job_lines = [
            line
            for line in map(_json_or_none, worker.log().splitlines())
            if line and line.get("job_id") == text_job
        ]
    assert {line["message"] for line in job_lines} >= {"job started", "job succeeded"}
    assert all(line.get("request_id") == request_id for line in job_lines), job_lines

    kind = "process_material"
    assert value(samples, "brainwave_jobs", kind=kind, status="succeeded") == 1
    assert value(samples, "brainwave_jobs", kind=kind, status="failed") == 1
    durations = "brainwave_job_duration_seconds"
    for status in ("succeeded", "failed"):
        assert value(samples, f"{durations}_count", kind=kind, status=status) == 1
        assert value(samples, f"{durations}_bucket", kind=kind, status=status, le="+Inf") == 1
        assert 0 < value(samples, f"{durations}_sum", kind=kind, status=status) < 60
    errors = "brainwave_provider_errors_total"
    assert value(samples, errors, provider="assemblyai", kind="auth") == 1
    assert value(samples, "brainwave_queue_depth", state="ready") == 0
    assert value(samples, "brainwave_workers_live") >= 1


def _json_or_none(line: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


async def test_job_counts_are_read_from_the_kind_status_index(resources: Resources) -> None:
    """The per-scrape count of jobs by kind and status never scans the jobs table."""
    async with resources.db.read_session() as session:
        sql = str(JOB_COUNTS.compile(dialect=session.get_bind().dialect))
        if resources.settings.is_sqlite:
            plan = " ".join(
                str(row[-1]) for row in await session.execute(text(f"EXPLAIN QUERY PLAN {sql}"))
            )
            assert "USING COVERING INDEX ix_jobs_kind_status" in plan, plan
        else:  # a small table is cheaper to scan: ask whether the index can serve the query
            await session.execute(text("SET LOCAL enable_seqscan = off"))
            plan = " ".join(str(row[0]) for row in await session.execute(text(f"EXPLAIN {sql}")))
            assert "Index Only Scan using ix_jobs_kind_status" in plan, plan
