"""When a worker starts its next job: arq's `Worker` with its start loop replaced.

arq's own loop has three habits that cost us:

- It polls every `poll_delay` and, when all `max_jobs` slots are busy, gives up until the
  next poll. Any job that lasts longer than arq's start of the next one (every job of ours:
  it writes its row twice) was capped near `max_jobs / poll_delay` (≈ 190/s with 4 and
  0.02 s). Here, a poll that left ready jobs for lack of a slot is followed by waiting for
  the first slot to free (at most `poll_delay`), then by the next poll at once.
- Whichever worker polls first takes up to `max_jobs` jobs: six PDFs on two idle workers
  split 4/2, and CPU-bound jobs in one process share one core (the GIL). Here every
  worker publishes how many jobs it runs, and a worker may be at most one job ahead of
  the least busy live worker when it takes a job enqueued less than `FAIR_WAIT_MS` ago
  (older ones go to whoever polls: a busy worker is never waited for long).
- Each start was four round trips (WATCH, EXISTS, ZSCORE, MULTI/PSETEX/EXEC), and a poll
  re-checked every job other workers were running that way. Here one Lua script per poll
  reads the queue, claims what this worker may take and publishes its load, atomically,
  so two workers polling at once see each other's claims; it also reads the jobs to
  abort (arq's second round trip per poll).

A claimed job's in-progress key is a short lease (`job_lease_seconds`) that the poll loop
renews for every job this process runs, so a killed worker's jobs are taken up again by
another within seconds rather than after `job_timeout` + 10 s. A job this process still
runs is never started a second time (after a Redis outage longer than the lease, the
script can claim it again): the renewal takes the lease back instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from arq.connections import create_pool, log_redis_info
from arq.constants import abort_jobs_ss, in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker as ArqWorker
from redis.commands.core import AsyncScript

log = logging.getLogger(__name__)

LOADS_SUFFIX = ":running"
"""`<queue name>:running`, a hash: worker id → "<jobs it runs> <epoch ms of its last poll>"."""
LIVE_MS = 2_000
"""A worker whose load is older than this is not waited for (stopped or stuck)."""
FAIR_WAIT_MS = 500
"""How long a fresh job is left to a less busy worker before anyone may take it."""

_CLAIM = """
local queue, loads = KEYS[1], KEYS[2]
local worker, running, slots = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now, live_after, fresh_after = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local read_limit, lease_ms, prefix = ARGV[7], ARGV[8], ARGV[9]
local aborts = {}
if ARGV[10] == '1' then aborts = redis.call('ZRANGE', KEYS[3], 0, -1) end
local least = nil
local entries = redis.call('HGETALL', loads)
for i = 1, #entries, 2 do
  if entries[i] ~= worker then
    local count, seen = string.match(entries[i + 1], '^(%d+) (%d+)$')
    if seen and tonumber(seen) >= live_after then
      count = tonumber(count)
      if least == nil or count < least then least = count end
    end
  end
end
local fair = slots
if least ~= nil then fair = math.max(0, math.min(slots, least + 1 - running)) end
local claimed, more = {}, 0
if slots > 0 then
  local ready = redis.call(
    'ZRANGEBYSCORE', queue, '-inf', now, 'WITHSCORES', 'LIMIT', 0, read_limit)
  for i = 1, #ready, 2 do
    local id, score = ready[i], ready[i + 1]
    local fresh = tonumber(score) > fresh_after
    if slots == 0 then
      more = 1
      break
    end
    if (fair > 0 or not fresh) and redis.call('EXISTS', prefix .. id) == 0 then
      redis.call('SET', prefix .. id, '1', 'PX', lease_ms)
      claimed[#claimed + 1] = id
      claimed[#claimed + 1] = score
      slots = slots - 1
      running = running + 1
      if fresh then fair = fair - 1 end
    end
  end
elseif #redis.call('ZRANGEBYSCORE', queue, '-inf', now, 'LIMIT', 0, 1) > 0 then
  more = 1
end
redis.call('HSET', loads, worker, running .. ' ' .. now)
return {more, claimed, aborts}
"""


class Worker(ArqWorker):
    """arq's worker with the start loop described in the module docstring."""

    def __init__(self, *args: Any, worker_id: str, lease_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.worker_id = worker_id
        self.lease_ms = int(lease_seconds * 1000)
        self._renew_every_s = lease_seconds / 3
        self._renewed_at = 0.0
        self._slot_freed = asyncio.Event()
        self._claim: AsyncScript | None = None

    async def main(self) -> None:
        """arq's `Worker.main` (burst mode left out: we never use it) with our poll loop."""
        if self._pool is None:
            self._pool = await create_pool(
                self.redis_settings,
                job_deserializer=self.job_deserializer,
                job_serializer=self.job_serializer,
                default_queue_name=self.queue_name,
                expires_extra_ms=self.expires_extra_ms,
            )
        names = ", ".join(self.functions)
        log.info("Starting worker for %d functions: %s", len(self.functions), names)
        await log_redis_info(self.pool, log.info)
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        while True:
            more_ready = await self._poll()
            await self._pause(more_ready)

    async def _poll(self) -> bool:
        """Claim and start what this worker may take; the other chores of arq's poll.
        True when ready jobs were left for lack of a free slot."""
        more_ready = await self._claim_and_start()
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # arq's way of surfacing an error of run_job itself
        await self._renew_leases()
        await self.heart_beat()
        return more_ready

    async def _pause(self, more_ready: bool) -> None:
        if not more_ready:
            await asyncio.sleep(self.poll_delay_s)
        elif self.job_counter >= self.max_jobs:
            self._slot_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slot_freed.wait(), self.poll_delay_s)
        # else: a slot freed while we polled: poll again at once

    async def _claim_and_start(self) -> bool:
        slots = self.max_jobs - self.job_counter if self.allow_pick_jobs else 0
        claimed, more_ready, to_abort = await self.claim(max(0, slots))
        for job_id, score in claimed:
            self._start(job_id, score)
        if to_abort:
            await self._abort(to_abort)
        return more_ready

    async def claim(self, slots: int) -> tuple[list[tuple[str, int]], bool, list[str]]:
        """Claim up to `slots` ready jobs that this worker may take now (their in-progress
        keys set to a lease) and publish its load. Returns the claimed (job id, score)
        pairs, whether ready jobs were left for lack of a slot, and the ids of jobs that
        were asked to abort."""
        if self._claim is None:
            self._claim = self.pool.register_script(_CLAIM)
        now = timestamp_ms()
        keys = [self.queue_name, self.queue_name + LOADS_SUFFIX, abort_jobs_ss]
        args: list[str | int] = [
            self.worker_id,
            self.job_counter,
            slots,
            now,
            now - LIVE_MS,
            now - FAIR_WAIT_MS,
            self.queue_read_limit,
            self.lease_ms,
            in_progress_key_prefix,
            int(self.allow_abort_jobs),
        ]
        more_ready, flat, aborts = await self._claim(keys=keys, args=args)
        pairs = zip(flat[::2], flat[1::2], strict=True)
        claimed = [(raw.decode(), int(float(score))) for raw, score in pairs]
        return claimed, bool(more_ready), [raw.decode() for raw in aborts]

    async def _abort(self, job_ids: list[str]) -> None:
        """arq's `_cancel_aborted_jobs`, for the ids the claim read: cancel those running here."""
        aborted = {job_id for job_id in job_ids if job_id in self.job_tasks}
        for job_id in aborted:
            self.job_tasks[job_id].cancel()
        if aborted:
            self.aborting_tasks.update(aborted)
            await self.pool.zrem(abort_jobs_ss, *aborted)

    def _start(self, job_id: str, score: int) -> None:
        running = self.tasks.get(job_id)
        if running is not None and not running.done():
            return  # still ours: its lease was taken back by the claim
        self.job_counter += 1
        task = self.loop.create_task(self.run_job(job_id, score))
        task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
        self.tasks[job_id] = task

    def _release_sem_dec_counter_on_complete(self) -> None:
        # arq's semaphore is not used by our start loop
        self.job_counter -= 1
        self._slot_freed.set()

    async def _renew_leases(self) -> None:
        now = time.monotonic()
        if now - self._renewed_at < self._renew_every_s:
            return
        self._renewed_at = now
        running = [job_id for job_id, task in self.tasks.items() if not task.done()]
        if running:
            async with self.pool.pipeline(transaction=False) as pipe:
                for job_id in running:  # PEXPIRE: a key its job's end deleted stays deleted
                    pipe.pexpire(in_progress_key_prefix + job_id, self.lease_ms)
                await pipe.execute()

    async def close(self) -> None:
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await self._pool.hdel(self.queue_name + LOADS_SUFFIX, self.worker_id)  # type: ignore[misc]
        await super().close()
