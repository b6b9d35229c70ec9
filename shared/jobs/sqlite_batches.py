"""The job-state writer's batches on SQLite: on the driver's cursor, on the loop when that
cannot wait, else in a thread of its own.

Through SQLAlchemy's execution layer a one-row `UPDATE … RETURNING` cost several times the
statement itself (profiling the writer: ~35 % of a no-op job's CPU was engine checkout,
begin, execution context and result wrapping; SQLite's own work ~8 %). Here each shape of
UPDATE is compiled once, and executed on the DB-API cursor with SQLAlchemy's own type
conversions for its parameters and its returned columns — so values are stored and read
exactly as through the ORM (UTC datetimes, JSON). The connection stays checked out for the
thread's life; inserts (rarer: the API's new notes) still go through SQLAlchemy, in the
same transaction.

A small batch of updates is first tried on the event loop, on a connection of its own that
never waits: its busy timeout is 0 (if another connection holds the write lock, the batch
goes to the thread, which waits for it) and it never checkpoints (WAL with
synchronous=NORMAL: a commit writes the WAL without fsync; the thread runs the checkpoints).
Such a batch costs the loop ~20–40 µs of SQLite work. Handing it to the thread cost more
than that: a queue put, a futex wake, the GIL passed back and forth around each statement
(the thread waits for the loop to let go of it), and a wake-up of the loop — 18 context
switches per no-op job, against 1 on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection, Dialect, Engine, Insert, Update
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeEngine

from shared.config import Settings
from shared.db.engine import blocking_sqlite_engine, nonwaiting_sqlite_connection

log = logging.getLogger(__name__)

Row = Mapping[Any, Any]
Params = dict[str, Any] | list[dict[str, Any]]
Prepared = tuple[Update | Insert, Params]
"""A statement and its parameters (a list of rows: one executemany of an insert)."""
_Convert = Callable[[Any], Any] | None


class DriverUpdate:
    """An `UPDATE … RETURNING` compiled for SQLite's driver, run on its cursor."""

    def __init__(self, statement: Update, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        names = compiled.positiontup or []
        self._binds: list[tuple[str, Any, _Convert]] = [
            (name, compiled.params.get(name), _bind_processor(compiled.binds[name].type, dialect))
            for name in names
        ]
        columns = list(statement.exported_columns)
        self._columns = [str(column.key) for column in columns]
        self._results: list[_Convert] = [
            _result_processor(column.type, dialect) for column in columns
        ]

    def run(self, cursor: DBAPICursor, params: dict[str, Any]) -> Row | None:
        values = []
        for name, default, convert in self._binds:
            value = params.get(name, default)
            values.append(value if convert is None else convert(value))
        row = _execute(cursor, self.sql, values).fetchone()
        if row is None:
            return None
        return {
            name: value if convert is None else convert(value)
            for name, value, convert in zip(self._columns, row, self._results, strict=True)
        }


def _execute(cursor: DBAPICursor, sql: str, values: Sequence[Any] = ()) -> DBAPICursor:
    try:
        cursor.execute(sql, values)
    except sqlite3.Error as exc:  # as SQLAlchemy would raise it (OperationalError, …)
        raise DBAPIError.instance(sql, values, exc, sqlite3.Error) from exc
    return cursor


def _bind_processor(type_: TypeEngine[Any], dialect: Dialect) -> _Convert:
    return type_.dialect_impl(dialect).bind_processor(dialect)


def _result_processor(type_: TypeEngine[Any], dialect: Dialect) -> _Convert:
    return type_.dialect_impl(dialect).result_processor(dialect, None)


_Reply = tuple[asyncio.AbstractEventLoop, "asyncio.Future[list[Row | None]]"]
_CHECKPOINT = "checkpoint"
INLINE_MAX_STATEMENTS = 16
"""Larger batches go to the thread: their hop is shared by many changes."""
CHECKPOINT_EVERY = 250
"""Commits on the loop between two of the thread's checkpoints: ~1,000 WAL pages, SQLite's
own auto-checkpoint threshold."""
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


class SqliteBatches:
    """Runs each batch as one `BEGIN IMMEDIATE … COMMIT`: on the loop if it can take the
    write lock at once (see the module docstring), else in a thread of its own.

    The thread takes batches from a queue and hands each result back with one
    `call_soon_threadsafe` (an executor's futures and locks cost more than the batch).
    """

    def __init__(self, settings: Settings) -> None:
        self._engine: Engine = blocking_sqlite_engine(settings)
        self._connection: Connection | None = None
        self._on_loop = nonwaiting_sqlite_connection(settings)
        self._commits_on_loop = 0
        self._checkpointing = False
        self._updates: dict[int, DriverUpdate] = {}
        self._inbox: queue.SimpleQueue[tuple[Sequence[Prepared], _Reply] | str | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._serve, name="job-state-writer", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (work := self._inbox.get()) is not None:
            if work == _CHECKPOINT:
                self._checkpoint()
                self._checkpointing = False
                continue
            assert not isinstance(work, str)
            batch, (loop, future) = work
            try:
                rows = self._run(batch)
            except BaseException as exc:
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, rows, None)
        self._close()

    def _update(self, statement: Update) -> DriverUpdate:
        # keyed by identity: the writer builds each shape's statement once and keeps it
        update = self._updates.get(id(statement))
        if update is None:
            update = self._updates[id(statement)] = DriverUpdate(statement, self._engine.dialect)
        return update

    def _run(self, batch: Sequence[Prepared]) -> list[Row | None]:
        if self._connection is None:
            self._connection = self._engine.connect()
        if all(isinstance(statement, Update) for statement, _ in batch):
            return self._run_updates(batch)
        return self._run_mixed(self._connection, batch)

    def _checkpoint(self) -> None:
        if self._connection is None:
            self._connection = self._engine.connect()
        cursor = self._connection.connection.cursor()
        try:
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # the next one will do
            log.warning("WAL checkpoint failed: %s", exc)
        finally:
            cursor.close()

    def _run_updates(self, batch: Sequence[Prepared]) -> list[Row | None]:
        """The common batch (job-state changes only), begun and committed on the driver."""
        assert self._connection is not None
        return self._run_updates_on(self._connection.connection.cursor(), batch)

    def _run_updates_on(self, cursor: DBAPICursor, batch: Sequence[Prepared]) -> list[Row | None]:
        try:
            _execute(cursor, "BEGIN IMMEDIATE")
            try:
                rows = [self._run_update(cursor, statement, params) for statement, params in batch]
                _execute(cursor, "COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            return rows
        finally:
            cursor.close()

    def _run_update(
        self, cursor: DBAPICursor, statement: Update | Insert, params: Params
    ) -> Row | None:
        assert isinstance(statement, Update) and isinstance(params, dict)  # one row each
        return self._update(statement).run(cursor, params)

    def _run_mixed(self, connection: Connection, batch: Sequence[Prepared]) -> list[Row | None]:
        """Inserts through SQLAlchemy (its column defaults), updates on the driver, one
        transaction."""
        rows: list[Row | None] = []
        with connection.begin():
            cursor = connection.connection.cursor()
            try:
                for statement, params in batch:
                    if isinstance(statement, Update):
                        rows.append(self._run_update(cursor, statement, params))
                    else:
                        connection.execute(statement, params)
                        rows.append(None)
            finally:
                cursor.close()
        return rows

    async def run(self, batch: Sequence[Prepared]) -> list[Row | None]:
        if (
            not self._checkpointing
            and len(batch) <= INLINE_MAX_STATEMENTS
            and all(isinstance(statement, Update) for statement, _ in batch)
        ):
            rows = self._run_on_loop(batch)
            if rows is not None:
                return rows
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Row | None]] = loop.create_future()
        self._inbox.put((batch, (loop, future)))
        return await future

    def _run_on_loop(self, batch: Sequence[Prepared]) -> list[Row | None] | None:
        """The batch's rows, or None if another connection held the write lock (or took it
        before the commit): nothing was written then."""
        try:
            rows = self._run_updates_on(cast(DBAPICursor, self._on_loop.cursor()), batch)
        except DBAPIError as exc:
            code = getattr(exc.orig, "sqlite_errorcode", None)
            if code is None or code & 0xFF not in (_SQLITE_BUSY, _SQLITE_LOCKED):
                raise
            return None
        self._commits_on_loop += 1
        if self._commits_on_loop % CHECKPOINT_EVERY == 0:
            # Until it is done, batches queue behind it in the thread: a checkpoint that
            # new commits keep outrunning never completes, and the WAL is reset only
            # after a complete one (it grew to 140 MB in a minute of no-op jobs).
            self._checkpointing = True
            self._inbox.put(_CHECKPOINT)
        return rows

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._engine.dispose()

    async def close(self) -> None:
        self._on_loop.close()
        self._inbox.put(None)
        await asyncio.to_thread(self._thread.join)


def _settle(
    future: asyncio.Future[list[Row | None]],
    rows: list[Row | None] | None,
    exc: BaseException | None,
) -> None:
    if future.done():  # its waiter was cancelled
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        assert rows is not None
        future.set_result(rows)
