"""The job lifecycle wrapper, run in-process against the real database and Redis."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from arq import Retry
from arq.constants import in_progress_key_prefix, job_key_prefix
from sqlalchemy import update

from shared.jobs import service as jobs
from shared.jobs.errors import PermanentJobError, TransientJobError
from shared.jobs.models import Job, JobStatus
from shared.jobs.schemas import JobOut
from shared.resources import Resources
from tests.conftest import Account, assert_error, sign_up
from worker.lifecycle import WORKER_ID, JobRun, run_job
from worker.tasks.maintenance import reap_jobs


async def new_job(resources: Resources, account: Account, kind: str = "test_kind") -> str:
    async with resources.db.session() as session:
        job = jobs.create_job(session, account.user_id, kind, {"n": 1})
        await session.flush()
        jobs.discard_pending(session)  # run by hand below, never by a worker
        return job.id


async def read(client: httpx.AsyncClient, account: Account, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/jobs/{job_id}", headers=account.headers)
    assert response.status_code == 200
    return dict(response.json())


def ctx(resources: Resources, job_try: int = 1) -> dict[str, Any]:
    return {"resources": resources, "job_try": job_try}


async def test_success_records_result_worker_and_progress(
    client: httpx.AsyncClient, alice: Account, resources: Resources
) -> None:
    job_id = await new_job(resources, alice)

    async def handler(run: JobRun) -> dict[str, Any]:
        assert run.payload == {"n": 1}
        await run.progress(50, "halfway")
        return {"answer": 42}

    assert await run_job(ctx(resources), job_id, handler, None) == {"answer": 42}
    job = await read(client, alice, job_id)
    assert job["status"] == "succeeded"
    assert job["result"] == {"answer": 42}
    assert (job["progress"], job["attempts"], job["worker"]) == (100, 1, WORKER_ID)
    assert job["started_at"] and job["finished_at"]


async def test_transient_error_retries_with_backoff_then_gives_up(
    client: httpx.AsyncClient, alice: Account, resources: Resources
) -> None:
    job_id = await new_job(resources, alice)

    async def flaky(run: JobRun) -> dict[str, Any]:
        raise TransientJobError("The provider is busy (429).")

    with pytest.raises(Retry) as retry:
        await run_job(ctx(resources, 1), job_id, flaky, None)
    assert retry.value.defer_score == 2000
    job = await read(client, alice, job_id)
    assert job["status"] == "queued"
    assert job["stage"] == "retrying in 2s"
    assert job["error"] == "The provider is busy (429)."

    with pytest.raises(Retry) as retry:
        await run_job(ctx(resources, 2), job_id, flaky, None)
    assert retry.value.defer_score == 4000

    last = resources.settings.job_max_attempts
    assert await run_job(ctx(resources, last), job_id, flaky, None) == {
        "failed": "The provider is busy (429)."
    }
    job = await read(client, alice, job_id)
    assert job["status"] == "failed"
    assert job["error"] == f"The provider is busy (429). (gave up after {last} attempts)"
    assert job["attempts"] == last


async def test_permanent_error_fails_at_once_and_calls_the_hook(
    client: httpx.AsyncClient, alice: Account, resources: Resources
) -> None:
    job_id = await new_job(resources, alice)
    seen: list[tuple[dict[str, Any], str]] = []

    async def corrupt(run: JobRun) -> dict[str, Any]:
        raise PermanentJobError("This PDF is damaged and cannot be read.")

    async def on_failure(_: Resources, payload: dict[str, Any], message: str) -> None:
        seen.append((payload, message))

    await run_job(ctx(resources), job_id, corrupt, on_failure)
    job = await read(client, alice, job_id)
    assert (job["status"], job["error"], job["attempts"]) == (
        "failed",
        "This PDF is damaged and cannot be read.",
        1,
    )
    assert seen == [({"n": 1}, "This PDF is damaged and cannot be read.")]


async def test_unexpected_error_shows_no_traceback(
    client: httpx.AsyncClient, alice: Account, resources: Resources
) -> None:
    job_id = await new_job(resources, alice)

    async def buggy(run: JobRun) -> dict[str, Any]:
        return {"x": 1 // 0}

    await run_job(ctx(resources), job_id, buggy, None)
    job = await read(client, alice, job_id)
    assert job["status"] == "failed"
    assert job["error"] == "An internal error stopped this job."
    assert "Traceback" not in job["error"] and "ZeroDivision" not in job["error"]


async def test_cancel_while_running_stops_at_the_next_progress(
    client: httpx.AsyncClient, alice: Account, resources: Resources
) -> None:
    job_id = await new_job(resources, alice)
    started, resume = asyncio.Event(), asyncio.Event()
    reached_end = False

    async def long_job(run: JobRun) -> dict[str, Any]:
        nonlocal reached_end
        started.set()
        await resume.wait()
        await run.progress(99, "almost")
        reached_end = True
        return {}

    task = asyncio.create_task(run_job(ctx(resources), job_id, long_job, None))
    await started.wait()
    cancelled = await client.post(f"/api/jobs/{job_id}/cancel", headers=alice.headers)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    resume.set()
    assert await task == {"cancelled": True}
    assert not reached_end
    job = await read(client, alice, job_id)
    assert job["status"] == "cancelled"
    assert_error(await client.post(f"/api/jobs/{job_id}/cancel", headers=alice.headers), 409)


async def test_a_cancelled_job_is_skipped_and_too_many_tries_fail(
    client: httpx.AsyncClient, alice: Account, resources: Resources
) -> None:
    ran = False

    async def handler(run: JobRun) -> dict[str, Any]:
        nonlocal ran
        ran = True
        return {}

    cancelled = await new_job(resources, alice)
    await client.post(f"/api/jobs/{cancelled}/cancel", headers=alice.headers)
    await run_job(ctx(resources), cancelled, handler, None)
    assert not ran

    exhausted = await new_job(resources, alice)
    max_attempts = resources.settings.job_max_attempts
    await run_job(ctx(resources, max_attempts + 1), exhausted, handler, None)
    assert not ran
    job = await read(client, alice, exhausted)
    assert (job["status"], job["error"]) == ("failed", f"Stopped after {max_attempts} attempts.")


async def test_reaper_requeues_orphans_and_reenqueues_lost_jobs(make_stack: Any) -> None:
    # Its own database and queue: the session's worker reaps every 5 s and would race us.
    async with make_stack() as stack:
        await _reap_orphans_and_lost_jobs(
            stack.client, await sign_up(stack.client), stack.resources
        )


async def _reap_orphans_and_lost_jobs(
    client: httpx.AsyncClient, alice: Account, resources: Resources
) -> None:
    orphan = await new_job(resources, alice, kind="never_registered")
    lost = await new_job(resources, alice, kind="never_registered")
    async with resources.db.session() as session:
        await session.execute(
            update(Job).where(Job.id == orphan).values(status=JobStatus.RUNNING, worker="gone:1")
        )
        old = (await read(client, alice, lost))["created_at"]
        stale = datetime.fromisoformat(old) - timedelta(minutes=5)
        await session.execute(update(Job).where(Job.id == lost).values(updated_at=stale))
    # A live lease protects a running job from the reaper.
    await resources.redis.set(in_progress_key_prefix + orphan, b"1", px=5000)
    first = await reap_jobs({"resources": resources})
    assert (await read(client, alice, orphan))["status"] == "running"
    assert first["reenqueued"] >= 1
    assert await resources.redis.exists(job_key_prefix + lost)

    await resources.redis.delete(in_progress_key_prefix + orphan)
    second = await reap_jobs({"resources": resources})
    assert second["requeued"] >= 1
    requeued = await read(client, alice, orphan)
    assert (requeued["status"], requeued["stage"]) == ("queued", "worker lost; re-queued")
    for job_id in (orphan, lost):  # leave nothing in the shared Redis
        await resources.redis.delete(job_key_prefix + job_id)
        await resources.redis.zrem(resources.settings.queue_name, job_id)


async def test_a_claim_announced_after_a_cancel_does_not_undo_it(
    client: httpx.AsyncClient, alice: Account, resources: Resources
) -> None:
    """A worker's claim committed just before the API's cancel can be announced after it;
    the poll must still say cancelled (a job never leaves a final status)."""
    job_id = await new_job(resources, alice)
    queued = await read(client, alice, job_id)
    running = jobs.JobState(alice.user_id, JobOut.model_validate({**queued, "status": "running"}))

    async def announce_running() -> None:
        announcements = jobs.Announcements()
        announcements.add(running)
        async with resources.redis.pipeline(transaction=False) as pipe:
            announcements.queue(pipe)
            await pipe.execute()

    await announce_running()  # over a state that is not final: replaces it
    assert (await read(client, alice, job_id))["status"] == "running"
    cancel = await client.post(f"/api/jobs/{job_id}/cancel", headers=alice.headers)
    assert cancel.status_code == 200, cancel.text
    await announce_running()  # late: left out
    assert (await read(client, alice, job_id))["status"] == "cancelled"
