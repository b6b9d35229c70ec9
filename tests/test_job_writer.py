"""The job-state writer's SQLite path: commits on the event loop only when they need not
wait, and WAL checkpoints that keep up with them. Real SQLite files and Redis."""

from __future__ import annotations

import asyncio
import sqlite3

from sqlalchemy import make_url

from shared.jobs.models import JobStatus
from shared.jobs.sqlite_batches import CHECKPOINT_EVERY
from shared.jobs.writer import Change
from shared.resources import Resources
from tests.conftest import Account, sqlite_only
from tests.test_lifecycle import new_job

pytestmark = sqlite_only
QUEUED = frozenset({JobStatus.QUEUED})


def connect(resources: Resources) -> sqlite3.Connection:
    path = make_url(resources.settings.resolved_database_url).database
    return sqlite3.connect(path or "", isolation_level=None, timeout=30)


async def test_a_change_waits_for_a_write_lock_held_elsewhere(
    resources: Resources, alice: Account
) -> None:
    job_id = await new_job(resources, alice)
    other = connect(resources)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process's write transaction
        change = Change(job_id, QUEUED, {"stage": "after the other writer"})
        applied = asyncio.ensure_future(resources.job_states.apply(change))
        await asyncio.sleep(0.3)
        assert not applied.done()  # neither failed ("database is locked") nor applied
        other.execute("COMMIT")
        state = await asyncio.wait_for(applied, 10)
    finally:
        other.close()
    assert state is not None
    assert state.state.job.stage == "after the other writer"


async def test_commits_on_the_loop_are_checkpointed_and_the_wal_reset(
    resources: Resources, alice: Account
) -> None:
    job_id = await new_job(resources, alice)
    for i in range(3 * CHECKPOINT_EVERY + 5):
        change = Change(job_id, QUEUED, {"stage": f"step {i}"})
        assert await resources.job_states.apply(change) is not None
    probe = connect(resources)
    try:
        # (busy, frames in the WAL, frames checkpointed): one frame or more per commit
        # if the WAL had never been reset since the first of these commits
        _, frames, _ = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        probe.close()
    assert frames < CHECKPOINT_EVERY
