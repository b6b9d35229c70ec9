"""The workers' start loop (worker/scheduler.py), its claim against the real Redis: jobs
are shared fairly between live workers, never claimed twice, and held by a short lease.
(Whole worker processes sharing real jobs: tests/test_workers.py, tests/test_faults.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import func

from shared.ids import new_id
from worker.scheduler import FAIR_WAIT_MS, LIVE_MS, LOADS_SUFFIX, Worker

LEASE_SECONDS = 10.0


async def noop(ctx: dict[str, Any]) -> None:
    return None


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(RedisSettings.from_dsn(redis_url))
    yield redis
    await redis.aclose()


@pytest.fixture
def queue() -> str:
    return f"test-queue-{new_id()}"


@pytest.fixture
def make_worker(pool: ArqRedis, queue: str) -> Callable[[str], Worker]:
    def make(worker_id: str) -> Worker:
        return Worker(
            functions=[func(noop, name="noop")],
            redis_pool=pool,
            queue_name=queue,
            max_jobs=4,
            handle_signals=False,
            worker_id=worker_id,
            lease_seconds=LEASE_SECONDS,
        )

    return make


async def enqueue(pool: ArqRedis, queue: str, count: int, *, age_ms: int = 0) -> list[str]:
    ids = [new_id() for _ in range(count)]
    now = timestamp_ms()
    await pool.zadd(queue, {job_id: now - age_ms - count + i for i, job_id in enumerate(ids)})
    return ids


async def take(worker: Worker, slots: int | None = None) -> list[str]:
    """What `worker` claims with its free slots; counted as running, as starting them would."""
    free = worker.max_jobs - worker.job_counter if slots is None else slots
    claimed, _, _ = await worker.claim(free)
    worker.job_counter += len(claimed)
    return [job_id for job_id, _ in claimed]


async def test_two_idle_workers_share_a_burst_of_jobs_evenly(
    pool: ArqRedis, queue: str, make_worker: Callable[[str], Worker]
) -> None:
    a, b = make_worker("a"), make_worker("b")
    ids = await enqueue(pool, queue, 6)
    await take(b, 0)  # b polls first with nothing to do: it is live and idle
    first = await take(a)
    assert len(first) == 1, "a may be at most one job ahead of idle b"
    taken = first + await take(b) + await take(a) + await take(b)
    assert sorted(taken) == sorted(ids), "every job claimed exactly once"
    assert (a.job_counter, b.job_counter) == (3, 3)


async def test_a_lone_worker_fills_its_slots_and_says_more_are_waiting(
    pool: ArqRedis, queue: str, make_worker: Callable[[str], Worker]
) -> None:
    worker = make_worker("alone")  # max_jobs 4
    ids = await enqueue(pool, queue, 6)
    claimed, more_ready, _ = await worker.claim(4)
    assert [job_id for job_id, _ in claimed] == ids[:4]  # oldest first
    assert more_ready
    worker.job_counter = 4
    assert await worker.claim(0) == ([], True, [])  # full: nothing claimed, but jobs wait


async def test_jobs_waiting_longer_than_the_fair_wait_go_to_a_busy_worker(
    pool: ArqRedis, queue: str, make_worker: Callable[[str], Worker]
) -> None:
    busy, idle = make_worker("busy"), make_worker("idle")
    busy.job_counter = 3
    await take(idle, 0)
    assert await take(busy, 1) == []
    await pool.delete(queue)
    old = await enqueue(pool, queue, 1, age_ms=FAIR_WAIT_MS + 1000)
    assert await take(busy, 1) == old


async def test_a_worker_that_stopped_polling_is_not_waited_for(
    pool: ArqRedis, queue: str, make_worker: Callable[[str], Worker]
) -> None:
    stale_seen = timestamp_ms() - LIVE_MS - 1000
    await pool.hset(queue + LOADS_SUFFIX, "gone", f"0 {stale_seen}")  # type: ignore[misc]
    worker = make_worker("alive")
    worker.job_counter = 2
    ids = await enqueue(pool, queue, 2)
    assert await take(worker) == ids


async def test_running_and_deferred_jobs_are_not_claimed_and_a_claim_is_a_lease(
    pool: ArqRedis, queue: str, make_worker: Callable[[str], Worker]
) -> None:
    running, ready = await enqueue(pool, queue, 2)
    deferred = new_id()
    await pool.zadd(queue, {deferred: timestamp_ms() + 60_000})
    await pool.set(in_progress_key_prefix + running, b"1", px=5000)
    worker = make_worker("w")
    assert await take(worker) == [ready]
    ttl_ms = await pool.pttl(in_progress_key_prefix + ready)
    assert 0 < ttl_ms <= LEASE_SECONDS * 1000
    assert await take(worker) == []  # claimed once only


async def test_a_running_job_asked_to_abort_is_cancelled(pool: ArqRedis, queue: str) -> None:
    started, never = asyncio.Event(), asyncio.Event()

    async def waits(ctx: dict[str, Any]) -> None:
        started.set()
        await never.wait()

    worker = Worker(
        functions=[func(waits, name="waits")],
        redis_pool=pool,
        queue_name=queue,
        handle_signals=False,
        allow_abort_jobs=True,
        poll_delay=0.01,
        worker_id="aborts",
        lease_seconds=LEASE_SECONDS,
    )
    job = await pool.enqueue_job("waits", _queue_name=queue)
    assert job is not None
    running = asyncio.create_task(worker.async_run())
    try:
        await asyncio.wait_for(started.wait(), 10)
        assert await job.abort(timeout=10)  # arq's API: ZADD arq:abort, wait for the result
        assert job.job_id not in worker.job_tasks
    finally:
        running.cancel()
        await worker.close()
