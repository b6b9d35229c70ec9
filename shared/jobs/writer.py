"""The workers' write path for job-state changes: group commit, prepared statements, and
one Redis round trip per commit.

A job's life is a few single-row changes (claim, progress, finish). Written one short
transaction each through SQLAlchemy's async engine on aiosqlite, a change cost ~2–4 ms,
most of it hops to aiosqlite's thread and back (several per statement) and, with jobs
running side by side, SQLite's busy handler sleeping while another connection of the
same process held the write lock. That capped no-op jobs near 70/s. Here:

- Changes queue up while a commit is in flight, and the next commit takes all of them:
  one `BEGIN IMMEDIATE … COMMIT` for a batch, so the process is never its own
  lock contender and the commit cost is shared.
- Each kind of change is one prepared `UPDATE … RETURNING` (built once per shape, so
  SQLAlchemy compiles it once); a claim reads the payload back in the same statement.
- On SQLite a small batch runs on the loop when it can take the write lock at once, any
  other in one dedicated thread on a blocking connection (one thread hop per batch; see
  shared/jobs/sqlite_batches.py); on PostgreSQL it runs on the async engine (asyncpg).
- After the commit, every changed job is announced (snapshot + SSE event, and a finished
  job's duration for the histogram) by one Lua script in one Redis round trip. The next
  commit does not wait for it, and the batches committed meanwhile are announced
  together, in commit order, in the next pipeline: with small batches (jobs start one by
  one), Redis round trips and socket writes, not SQLite, were the writer's cost.
- New rows (the API's text note: a material and its job) go through the same batches;
  their jobs are announced and enqueued in that pipeline, never before the commit.

The guarantees are those of `service.transition`: a change applies only if the job's
status (and, when given, its worker) still matches, and only committed states are
announced; `apply` returns once its change is announced (or, for a change that says so —
a claim, a progress step — once committed). A failed commit fails every
change of the batch with the same error, except a batch refused for one item's data
(not `OperationalError`): its items are then retried one transaction each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import (
    Insert,
    Table,
    Update,
    bindparam,
    insert,
    literal,
    or_,
    update,
)
from sqlalchemy.exc import OperationalError

from shared import metrics
from shared.config import Settings
from shared.db import Database
from shared.jobs.models import TERMINAL_STATUSES, Job
from shared.jobs.schemas import JobOut
from shared.jobs.service import JOB_COLUMNS, Announcements, JobState, queue_new_jobs
from shared.jobs.sqlite_batches import Prepared, Row, SqliteBatches

log = logging.getLogger(__name__)

MAX_BATCH = 256
_Shape = tuple[tuple[str, ...], tuple[str, ...], bool, bool]


@dataclass(frozen=True, slots=True)
class Change:
    """Set `values` on a job if its status is in `only_from` (and `worker` holds it)."""

    job_id: str
    only_from: frozenset[str]
    values: dict[str, Any]
    worker: str | None = None
    with_payload: bool = False
    count_duration: bool = False
    """Whether a final state's run time (`started_at` to `finished_at`) is added to the
    job-duration histogram of /metrics, with the announcement."""
    announced_first: bool = True
    """Whether `apply` returns only once the new state is announced (else once committed:
    a claim or a progress step need not wait for Redis before the job goes on)."""


@dataclass(frozen=True, slots=True)
class NewRows:
    """Rows to insert together, all or none (e.g. a material and its queued job). After the
    commit, `jobs` (the new jobs' states) are stored as poll snapshots and enqueued, in the
    batch's announcement pipeline; if that fails, the reaper enqueues them later.

    A batch inserts all its rows of a table in one statement, tables in the order they
    first appear in it: list a row's table after the tables of the rows it refers to."""

    rows: tuple[tuple[Table, dict[str, Any]], ...]
    jobs: tuple[JobState, ...] = ()


@dataclass(frozen=True, slots=True)
class Applied:
    state: JobState
    payload: dict[str, Any] | None


@dataclass(slots=True)
class _Pending:
    item: Change | NewRows
    future: asyncio.Future[Applied | None]


_STATEMENTS: dict[_Shape, Update] = {}
_INSERTS: dict[Table, Insert] = {}


def _statement(shape: _Shape) -> Update:
    """One `UPDATE … RETURNING` per shape of change, built once: its SQL is compiled once."""
    statement = _STATEMENTS.get(shape)
    if statement is None:
        columns, statuses, by_worker, with_payload = shape
        # `status IN (…)` with the statuses as plain bound values: an expanding IN would be
        # re-rendered on every execution.
        in_statuses = or_(*(Job.status == literal(status) for status in statuses))
        where = [Job.id == bindparam("job_id"), in_statuses]
        if by_worker:
            where.append(Job.worker == bindparam("held_by"))
        returning = (Job.user_id, *JOB_COLUMNS, *((Job.payload,) if with_payload else ()))
        statement = (
            update(Job)
            .where(*where)
            .values({name: bindparam(f"new_{name}") for name in columns})
            .returning(*returning)
        )
        _STATEMENTS[shape] = statement
    return statement


def _prepare(change: Change, now: datetime) -> Prepared:
    values = {"updated_at": now, **change.values}
    shape = (
        tuple(sorted(values)),
        tuple(sorted(change.only_from)),
        change.worker is not None,
        change.with_payload,
    )
    params = {f"new_{name}": value for name, value in values.items()}
    params["job_id"] = change.job_id
    if change.worker is not None:
        params["held_by"] = change.worker
    return _statement(shape), params


def _insert(table: Table) -> Insert:
    statement = _INSERTS.get(table)
    if statement is None:
        statement = _INSERTS[table] = insert(table)
    return statement


def _grouped_inserts(batch: list[_Pending]) -> list[Prepared]:
    """The batch's new rows as one executemany per table: for the API's notes (a material
    and a job each) a statement per row took 2–3× as long (batches of 16 on SQLite)."""
    rows: dict[Table, list[dict[str, Any]]] = {}
    for pending in batch:
        if isinstance(pending.item, NewRows):
            for table, row in pending.item.rows:
                rows.setdefault(table, []).append(row)
    return [(_insert(table), table_rows) for table, table_rows in rows.items()]


def _order_key(item: Change | NewRows) -> tuple[int, str]:
    # Inserts first, then changes by job id: concurrent batches lock rows in the same
    # order (PostgreSQL).
    return (1, item.job_id) if isinstance(item, Change) else (0, "")


def _applied(row: Row | None, change: Change) -> Applied | None:
    if row is None:
        return None
    payload = dict(row["payload"] or {}) if change.with_payload else None
    return Applied(JobState(row["user_id"], JobOut.model_validate(row)), payload)


class _AsyncEngine:
    """Runs a batch on the process's async engine (PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def run(self, batch: Sequence[Prepared]) -> list[Row | None]:
        rows: list[Row | None] = []
        async with self._db.transaction() as connection:
            for statement, params in batch:
                result = await connection.execute(statement, params)
                rows.append(result.mappings().first() if result.returns_rows else None)
        return rows

    async def close(self) -> None:
        return None


@dataclass(slots=True)
class JobStateWriter:
    """Applies job-state changes (and inserts new rows) in batches; one per process, used
    from one event loop. Commits are serial; a batch's announcement runs while the next
    batch commits (announcements stay in commit order), and a change's `apply` returns
    once its state is announced (see `Change.announced_first`)."""

    settings: Settings
    db: Database
    redis: Redis
    _pending: list[_Pending] = field(default_factory=list)
    _flusher: asyncio.Task[None] | None = None
    _unannounced: list[tuple[list[_Pending], list[Applied | None]]] = field(default_factory=list)
    _announcing: asyncio.Task[None] | None = None
    _runner: SqliteBatches | _AsyncEngine | None = None

    async def apply(self, change: Change) -> Applied | None:
        """Apply one change (with whatever else is waiting), announce it; None if it did not
        apply (the job was no longer in one of `only_from`, or held by another worker)."""
        return await self._submit(change)

    async def insert(self, rows: NewRows) -> None:
        """Insert rows in the next batch's transaction (their own if the batch fails on a
        row: one request's bad value never fails another's), announce the new jobs."""
        await self._submit(rows)

    async def _submit(self, item: Change | NewRows) -> Applied | None:
        future: asyncio.Future[Applied | None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._announcing is not None:
            await asyncio.gather(self._announcing, return_exceptions=True)
        if self._runner is not None:
            await self._runner.close()
            self._runner = None

    def _get_runner(self) -> SqliteBatches | _AsyncEngine:
        if self._runner is None:
            sqlite = self.settings.is_sqlite
            self._runner = SqliteBatches(self.settings) if sqlite else _AsyncEngine(self.db)
        return self._runner

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                results = await self._commit(batch)
            except OperationalError as exc:  # locked, connection lost: the same for all
                _fail(batch, exc)
                continue
            except Exception as exc:
                if len(batch) == 1:
                    _fail(batch, exc)
                    continue
                batch, results = await self._one_by_one(batch)
            except BaseException:  # cancelled (the loop is closing): so are the waiters
                for item in [*batch, *self._pending]:
                    item.future.cancel()
                self._pending.clear()
                raise
            for pending, result in zip(batch, results, strict=True):
                change = pending.item
                committed_is_enough = isinstance(change, Change) and not change.announced_first
                if committed_is_enough and not pending.future.done():
                    pending.future.set_result(result)
            self._unannounced.append((batch, results))
            if self._announcing is None or self._announcing.done():
                self._announcing = asyncio.create_task(self._announce())

    async def _one_by_one(
        self, batch: list[_Pending]
    ) -> tuple[list[_Pending], list[Applied | None]]:
        """After a batch failed on one of its items: each item in a transaction of its own."""
        done: list[_Pending] = []
        results: list[Applied | None] = []
        for item in batch:
            try:
                (result,) = await self._commit([item])
            except Exception as exc:
                _fail([item], exc)
                continue
            done.append(item)
            results.append(result)
        return done, results

    async def _commit(self, batch: list[_Pending]) -> list[Applied | None]:
        now = datetime.now(UTC)
        prepared = _grouped_inserts(batch)
        starts: list[tuple[int, int]] = []
        for i in sorted(range(len(batch)), key=lambda i: _order_key(batch[i].item)):
            item = batch[i].item
            starts.append((i, len(prepared)))
            if isinstance(item, Change):
                prepared.append(_prepare(item, now))
        rows = await self._get_runner().run(prepared)
        results: list[Applied | None] = [None] * len(batch)
        for i, start in starts:
            item = batch[i].item
            if isinstance(item, Change):
                results[i] = _applied(rows[start], item)
        return results

    async def _announce(self) -> None:
        """Announce committed batches in commit order (a job's older state never overwrites
        a newer one): all those committed while the previous announcement was in flight go
        in one pipeline. Then hand the results to the waiters."""
        while self._unannounced:
            done, self._unannounced = self._unannounced, []
            batch = [item for items, _ in done for item in items]
            results = [result for _, results in done for result in results]
            try:
                await self._send(batch, results)
            finally:
                for item, result in zip(batch, results, strict=True):
                    if not item.future.done():
                        item.future.set_result(result)

    async def _send(self, batch: list[_Pending], results: list[Applied | None]) -> None:
        queue_name = self.settings.queue_name
        announcements = Announcements()
        for pending, result in zip(batch, results, strict=True):
            item = pending.item
            if isinstance(item, Change) and result is not None:
                announcements.add(result.state)
                if item.count_duration:
                    _add_duration(announcements, queue_name, result.state)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                # New jobs first: theirs are the first states of their jobs.
                queue_new_jobs(pipe, queue_name, _new_jobs(batch))
                announcements.queue(pipe)
                if len(pipe):
                    await pipe.execute()
        except Exception:  # the rows are the truth; a poll falls back to them
            log.warning("could not announce %d job changes", len(batch), exc_info=True)


def _add_duration(announcements: Announcements, namespace: str, state: JobState) -> None:
    job = state.job
    if job.status in TERMINAL_STATUSES and job.started_at and job.finished_at:
        seconds = (job.finished_at - job.started_at).total_seconds()
        fields = metrics.job_duration_fields(namespace, job.kind, job.status, seconds)
        announcements.add_duration(fields, seconds)


def _new_jobs(batch: list[_Pending]) -> list[JobState]:
    return [state for p in batch if isinstance(p.item, NewRows) for state in p.item.jobs]


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(exc)
