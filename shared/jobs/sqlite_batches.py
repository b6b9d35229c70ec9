"""The job-state writer's batches on SQLite: one thread, one connection, the driver's cursor.

Through SQLAlchemy's execution layer a one-row `UPDATE … RETURNING` cost several times the
statement itself (profiling the writer: ~35 % of a no-op job's CPU was engine checkout,
begin, execution context and result wrapping; SQLite's own work ~8 %). Here each shape of
UPDATE is compiled once, and executed on the DB-API cursor with SQLAlchemy's own type
conversions for its parameters and its returned columns — so values are stored and read
exactly as through the ORM (UTC datetimes, JSON). The connection stays checked out for the
thread's life; inserts (rarer: the API's new notes) still go through SQLAlchemy, in the
same transaction.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, Insert, Update
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeEngine

from shared.config import Settings
from shared.db.engine import blocking_sqlite_engine

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


class SqliteBatches:
    """Runs each batch as one `BEGIN IMMEDIATE … COMMIT` in a thread of its own.

    The thread takes batches from a queue and hands each result back with one
    `call_soon_threadsafe` (an executor's futures and locks cost more than the batch).
    """

    def __init__(self, settings: Settings) -> None:
        self._engine: Engine = blocking_sqlite_engine(settings)
        self._connection: Connection | None = None
        self._updates: dict[int, DriverUpdate] = {}
        self._inbox: queue.SimpleQueue[tuple[Sequence[Prepared], _Reply] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._serve, name="job-state-writer", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (work := self._inbox.get()) is not None:
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

    def _run_updates(self, batch: Sequence[Prepared]) -> list[Row | None]:
        """The common batch (job-state changes only), begun and committed on the driver."""
        assert self._connection is not None
        cursor = self._connection.connection.cursor()
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
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Row | None]] = loop.create_future()
        self._inbox.put((batch, (loop, future)))
        return await future

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._engine.dispose()

    async def close(self) -> None:
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
