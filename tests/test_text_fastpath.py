"""The pure-ASGI fast path of `POST /api/materials/text` (api/text_fastpath.py), over HTTP
on the real Redis and database: it answers as the route does (202, 401, 429, the metrics and
the request id), and what it does not serve reaches the route with its body intact.

A body sent without Content-Length (chunked) always goes to the route, so the same request
sent both ways compares the two."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from api.text_fastpath import TextMaterialFastPath
from shared.auth import security
from shared.config import Settings
from shared.resources import Resources
from shared.storage import TextFiles
from tests.conftest import TEST_JWT_SECRET, Account, assert_error, sign_up
from tests.test_metrics import own_app, scrape, value
from tests.test_rate_limits import assert_limited

PATH = "/api/materials/text"
NOTE = {"title": "Cells", "text": "The mitochondria is the powerhouse of the cell."}
_CHANGING = {"id", "job_id", "created_at", "updated_at"}


def chunked(body: bytes) -> AsyncIterator[bytes]:
    """The body as a stream without Content-Length: what the fast path leaves to the route."""

    async def stream() -> AsyncIterator[bytes]:
        yield body

    return stream()


async def both_ways(
    client: httpx.AsyncClient, headers: dict[str, str], body: bytes
) -> tuple[httpx.Response, httpx.Response]:
    headers = {**headers, "content-type": "application/json"}
    fast = await client.post(PATH, headers=headers, content=body)
    route = await client.post(PATH, headers=headers, content=chunked(body))
    return fast, route


def stable(part: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in part.items() if k not in _CHANGING}


def header_names(response: httpx.Response) -> set[str]:
    return set(response.headers.keys())


async def test_a_note_is_created_alike_both_ways(
    client: httpx.AsyncClient, alice: Account, app_resources: tuple[FastAPI, Resources]
) -> None:
    body = b'{"title": " Cells ", "text": "The cell \\u00e9\\u4e2d.", "extra": 1}'
    fast, route = await both_ways(client, alice.headers, body)
    assert fast.status_code == route.status_code == 202, (fast.text, route.text)
    assert header_names(fast) == header_names(route)
    assert fast.headers["content-type"] == route.headers["content-type"] == "application/json"
    assert list(fast.json()) == list(route.json()) == ["material", "job"]
    for part in ("material", "job"):
        assert list(fast.json()[part]) == list(route.json()[part])  # same fields, same order
        assert stable(fast.json()[part]) == stable(route.json()[part])
    settings = app_resources[1].settings
    for created in (fast.json(), route.json()):
        material, job = created["material"], created["job"]
        assert material["title"] == "Cells" and material["job_id"] == job["id"]
        stored = settings.data_dir / "uploads" / "documents" / f"{material['id']}.txt"
        assert stored.read_text(encoding="utf-8") == "The cell é中."
        got = await client.get(f"/api/materials/{material['id']}", headers=alice.headers)
        assert got.status_code == 200 and got.json()["status"] in {"pending", "processing", "ready"}
        polled = await client.get(f"/api/jobs/{job['id']}", headers=alice.headers)
        assert polled.status_code == 200, polled.text


async def test_auth_failures_are_answered_alike_both_ways(client: httpx.AsyncClient) -> None:
    account = await sign_up(client)
    expired, _ = security.encode_token(
        TEST_JWT_SECRET, user_id=account.user_id, token_type="access", lifetime=timedelta(-1)
    )
    body = b'{"title": "Cells", "text": "The cell."}'
    bearer = {
        "garbage": "Bearer not-a-jwt",
        "expired": f"Bearer {expired}",
        "refresh token": f"Bearer {account.refresh_token}",
    }
    for case, authorization in bearer.items():
        fast, route = await both_ways(client, {"Authorization": authorization}, body)
        assert_error(fast, 401, "unauthorized")
        assert fast.json() == route.json(), case
        assert fast.headers["www-authenticate"] == route.headers["www-authenticate"] == "Bearer"
    assert (await client.post("/api/auth/logout", headers=account.headers)).status_code < 300
    fast, route = await both_ways(client, account.headers, body)
    assert_error(fast, 401, "unauthorized")
    assert fast.json() == route.json()
    assert fast.json()["error"]["message"] == "The token has been revoked."


async def test_a_revoked_token_is_refused_before_the_limit_counts(
    migrated: Settings,
) -> None:
    limited = migrated.model_copy(update={"rate_limit_uploads_user": "1/60s"})
    async with own_app(limited) as (_, client):
        account = await sign_up(client)
        login = {"username": account.email, "password": account.password}
        second = (await client.post("/api/auth/login", data=login)).json()["access_token"]
        await client.post("/api/auth/logout", headers=account.headers)
        refused = await client.post(PATH, headers=account.headers, json=NOTE)
        assert_error(refused, 401)  # not 429, and not counted:
        other = {"Authorization": f"Bearer {second}"}
        assert (await client.post(PATH, headers=other, json=NOTE)).status_code == 202
        fast, route = await both_ways(client, other, b'{"title": "a", "text": "b"}')
        assert_limited(fast, 60)
        assert_limited(route, 60)
        assert header_names(fast) == header_names(route)
        assert fast.json()["error"]["code"] == route.json()["error"]["code"] == "rate_limited"


async def test_fast_path_answers_are_counted_under_the_route_with_a_request_id(
    migrated: Settings,
) -> None:
    async with own_app(migrated) as (_, client):
        account = await sign_up(client)
        before = await scrape(client)
        given = f"req-{uuid.uuid4().hex}"
        headers = {**account.headers, "X-Request-ID": given}
        created = await client.post(PATH, headers=headers, json=NOTE)
        assert created.status_code == 202 and created.headers["x-request-id"] == given
        bad = await client.post(PATH, headers={"Authorization": "Bearer x"}, json=NOTE)
        assert bad.status_code == 401 and len(bad.headers["x-request-id"]) == 32
        after = await scrape(client)
    name = "brainwave_http_requests_total"
    for status, count in (("202", 1), ("401", 1)):
        labels = {"method": "POST", "route": PATH, "status": status}
        assert value(after, name, **labels) - value(before, name, **labels) == count


class RouteStandIn:
    """In place of the rest of the app: records the body of each request that reaches it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def stand_in(app_resources: tuple[FastAPI, Resources]) -> tuple[RouteStandIn, Any]:
    """The fast path over a stand-in route, with the session's app as `scope["app"]` (its
    resources and exception handlers), as the app's middleware stack runs it."""
    app = app_resources[0]
    route = RouteStandIn()
    fast_path = TextMaterialFastPath(route)

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = app
        await fast_path(scope, receive, send)

    return route, asgi


async def test_what_it_does_not_serve_reaches_the_route_intact(
    stand_in: tuple[RouteStandIn, Any], alice: Account
) -> None:
    route, asgi = stand_in
    json_type = {"content-type": "application/json"}
    valid = b'{"title": "Cells", "text": "The cell."}'
    handed_over: list[tuple[str, dict[str, str], Any]] = [
        ("text/plain", {**alice.headers, "content-type": "text/plain"}, valid),
        ("no Content-Length", {**alice.headers, **json_type}, chunked(valid)),
        ("not JSON", {**alice.headers, **json_type}, b'{"title": "Cells", '),
        ("blank title", {**alice.headers, **json_type}, b'{"title": " ", "text": "x"}'),
        ("no text", {**alice.headers, **json_type}, b'{"title": "Cells"}'),
        ("an API key", {"X-API-Key": "bw_x", **json_type}, valid),
        ("no credentials", json_type, valid),
        ("an empty bearer", {"Authorization": "Bearer ", **json_type}, valid),
    ]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=asgi), base_url="http://testserver"
    ) as client:
        for case, headers, content in handed_over:
            response = await client.post(PATH, headers=headers, content=content)
            assert response.status_code == 299, case
            sent = valid if case == "no Content-Length" else content
            assert route.bodies.pop() == sent, case
        served = {
            "a note": ({**alice.headers, **json_type}, 202),
            "a charset": (
                {**alice.headers, "content-type": "Application/JSON; charset=utf-8"},
                202,
            ),
            "a bad token": ({"Authorization": "Bearer x", **json_type}, 401),
        }
        for case, (headers, status) in served.items():
            response = await client.post(PATH, headers=headers, content=valid)
            assert response.status_code == status, (case, response.text)
        for other in ("/api/materials/text/", "/api/materials/url"):
            response = await client.post(
                other, headers={**alice.headers, **json_type}, content=valid
            )
            assert response.status_code == 299 and route.bodies.pop() == valid
    assert route.bodies == []


async def test_a_body_in_several_messages_is_read_whole(
    stand_in: tuple[RouteStandIn, Any], alice: Account
) -> None:
    route, asgi = stand_in
    parts = [b'{"title": "Cel', b'ls", "text": "The ', b'cell."}']
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(sum(map(len, parts))).encode()),
        (b"authorization", alice.headers["Authorization"].encode()),
    ]
    messages: list[Message] = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": PATH, "headers": headers}
    await asgi(scope, receive, send)
    assert sent[0]["status"] == 202 and b'"title":"Cells"' in sent[1]["body"]
    assert route.bodies == []


async def test_text_files_fail_one_by_one(tmp_path: Path) -> None:
    files = TextFiles()
    good, bad = tmp_path / "good.txt", tmp_path / "missing" / "bad.txt"
    results = await asyncio.gather(
        files.write(good, "é"), files.write(bad, "x"), return_exceptions=True
    )
    assert results[0] is None and isinstance(results[1], FileNotFoundError)
    assert good.read_text(encoding="utf-8") == "é"
    await files.close()
