"""`RedisTurns` on a real Redis: one holder at a time across processes (each instance below
has its own client and in-process queue, as each worker process has), the next waiter goes
at release rather than at its next poll, a crashed holder's turn expires and a live
holder's is renewed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from shared.turns import WAKE_POLL_S, RedisTurns, TurnTimeout


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[list[Redis]]:
    opened = [Redis.from_url(redis_url) for _ in range(3)]
    yield opened
    for client in opened:
        await client.aclose()


def _key() -> str:
    return f"test:turns:{uuid.uuid4().hex}"


async def test_one_holder_at_a_time_across_processes_and_jobs(clients: list[Redis]) -> None:
    key = _key()
    processes = [RedisTurns(client, key) for client in clients]
    holding: list[int] = []
    turns_taken = 0

    async def job(turns: RedisTurns, job_no: int) -> None:
        nonlocal turns_taken
        for _ in range(4):
            async with turns.take():
                holding.append(job_no)
                assert len(holding) == 1, holding
                await asyncio.sleep(0.002)
                holding.remove(job_no)
                turns_taken += 1

    await asyncio.gather(*(job(t, n * 10 + j) for n, t in enumerate(processes) for j in range(3)))
    assert turns_taken == 3 * 3 * 4


async def test_the_next_process_goes_at_release(clients: list[Redis]) -> None:
    key = _key()
    first, second = RedisTurns(clients[0], key), RedisTurns(clients[1], key)
    released_at = 0.0

    async def hold() -> None:
        nonlocal released_at
        async with first.take():
            await asyncio.sleep(0.3)
        released_at = time.monotonic()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0.05)
    async with second.take():
        started_after = time.monotonic() - released_at
    await holder
    assert started_after < WAKE_POLL_S / 2, started_after


async def test_a_crashed_holders_turn_expires(clients: list[Redis]) -> None:
    key = _key()
    await clients[0].set(key, "a worker that died", px=300)
    started = time.monotonic()
    async with RedisTurns(clients[1], key).take():
        waited = time.monotonic() - started
    assert 0.2 < waited < 1.0, waited


async def test_no_turn_in_time_is_a_timeout(clients: list[Redis]) -> None:
    key = _key()
    await clients[0].set(key, "a slow holder", px=5_000)
    with pytest.raises(TurnTimeout):
        async with RedisTurns(clients[1], key, wait_s=0.3).take():
            pass


async def test_a_turn_that_expired_and_was_taken_is_not_released(clients: list[Redis]) -> None:
    key = _key()
    slow = RedisTurns(clients[0], key, ttl_s=0.3)
    async with slow.take():
        await clients[1].delete(key)  # our turn expired (the holder's loop stalled) ...
        await clients[1].set(key, "the next holder", px=5_000)  # ... and someone took it
        await asyncio.sleep(0.25)  # a renewal comes due: it must not extend their turn
    assert await clients[1].get(key) == b"the next holder"
    assert 4_000 < await clients[1].pttl(key) <= 5_000


async def test_a_live_holders_turn_outlasts_its_ttl(clients: list[Redis]) -> None:
    key = _key()
    async with RedisTurns(clients[0], key, ttl_s=0.2).take():
        with pytest.raises(TurnTimeout):
            async with RedisTurns(clients[1], key, wait_s=0.6).take():
                pass
