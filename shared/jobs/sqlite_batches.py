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
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, Insert, Update
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeEngine

from shared.config import Settings
from shared.db.engine import blocking_sqlite_engine

Row = Mapping[Any, Any]
Prepared = tuple[Update | Insert, dict[str, Any]]
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
        try:
            cursor.execute(self.sql, values)
            row = cursor.fetchone()
        except sqlite3.Error as exc:  # as SQLAlchemy would raise it (OperationalError, …)
            raise DBAPIError.instance(self.sql, values, exc, sqlite3.Error) from exc
        if row is None:
            return None
        return {
            name: value if convert is None else convert(value)
            for name, value, convert in zip(self._columns, row, self._results, strict=True)
        }


def _bind_processor(type_: TypeEngine[Any], dialect: Dialect) -> _Convert:
    return type_.dialect_impl(dialect).bind_processor(dialect)


def _result_processor(type_: TypeEngine[Any], dialect: Dialect) -> _Convert:
    return type_.dialect_impl(dialect).result_processor(dialect, None)


class SqliteBatches:
    """Runs each batch as one `BEGIN IMMEDIATE … COMMIT` in a thread of its own."""

    def __init__(self, settings: Settings) -> None:
        self._engine: Engine = blocking_sqlite_engine(settings)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="job-state-writer")
        self._connection: Connection | None = None
        self._updates: dict[int, DriverUpdate] = {}

    def _update(self, statement: Update) -> DriverUpdate:
        # keyed by identity: the writer builds each shape's statement once and keeps it
        update = self._updates.get(id(statement))
        if update is None:
            update = self._updates[id(statement)] = DriverUpdate(statement, self._engine.dialect)
        return update

    def _run(self, batch: Sequence[Prepared]) -> list[Row | None]:
        if self._connection is None:
            self._connection = self._engine.connect()
        connection = self._connection
        rows: list[Row | None] = []
        with connection.begin():
            cursor = connection.connection.cursor()
            try:
                for statement, params in batch:
                    if isinstance(statement, Update):
                        rows.append(self._update(statement).run(cursor, params))
                    else:
                        connection.execute(statement, params)
                        rows.append(None)
            finally:
                cursor.close()
        return rows

    async def run(self, batch: Sequence[Prepared]) -> list[Row | None]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._run, batch)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._engine.dispose()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=True)
