"""Engines and session factories.

PostgreSQL (`DATABASE_URL=postgresql+asyncpg://…`) gets a plain pooled engine: a bounded
pool per process (the API and every worker each hold one), connections checked before use
and recycled, so a failover or an idle-connection timeout (RDS, a proxy) costs a reconnect,
not a failed request. Its row locks make concurrent writers wait on their own. Read
sessions share that pool at REPEATABLE READ: like a SQLite read transaction, each sees one
snapshot from its first statement on (an export or a page and its count agree).
asyncpg reports a lost connection, a deadlock or a serialization failure as a generic
DBAPI error; they are raised as `OperationalError`, as psycopg and SQLite's "database is
locked" are, so the job wrapper retries them like any transient error.

SQLite is set up the way that is safe for several processes (the API and N workers):
WAL, a busy timeout, foreign keys, synchronous=NORMAL, and `BEGIN IMMEDIATE` for write
transactions so that a read transaction is never upgraded to a write (in WAL mode that
upgrade fails at once with "database is locked" instead of waiting). Read-only work goes
through `read_engine`, whose transactions begin deferred and never take the write lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shared.config import Settings

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _install_sqlite_pragmas(engine: Engine, *, begin: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


# SQLSTATE classes worth another try: connection exception, transaction rollback
# (serialization failure, deadlock), insufficient resources, operator intervention
# (admin shutdown, cannot connect now: a restart or failover).
TRANSIENT_SQLSTATE_PREFIXES = ("08", "40", "53", "57P")
POSTGRES_POOL_RECYCLE_S = 1800  # under the idle timeouts of proxies and load balancers
POSTGRES_POOL_TIMEOUT_S = 30


def _transient_as_operational(context: ExceptionContext) -> BaseException | None:
    error = context.sqlalchemy_exception
    if error is None or isinstance(error, OperationalError) or context.is_pre_ping:
        return None
    sqlstate = str(getattr(context.original_exception, "sqlstate", None) or "")
    if not (context.is_disconnect or sqlstate.startswith(TRANSIENT_SQLSTATE_PREFIXES)):
        return None
    return OperationalError(
        error.statement,
        error.params,
        context.original_exception,
        connection_invalidated=context.is_disconnect,
    )


def _make_engine(settings: Settings, *, sqlite_begin: str) -> AsyncEngine:
    url = settings.resolved_database_url
    if not settings.is_sqlite:
        engine = create_async_engine(
            url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            pool_timeout=POSTGRES_POOL_TIMEOUT_S,
            pool_recycle=POSTGRES_POOL_RECYCLE_S,
            pool_pre_ping=True,
        )
        event.listen(engine.sync_engine, "handle_error", _transient_as_operational)
        return engine
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    _install_sqlite_pragmas(engine.sync_engine, begin=sqlite_begin)
    return engine


def blocking_sqlite_engine(settings: Settings) -> Engine:
    """A blocking (pysqlite) engine on the same SQLite file, set up like the async one
    (WAL, busy timeout, foreign keys, `BEGIN IMMEDIATE`), for one dedicated writer thread.

    Through aiosqlite every statement, fetch and cursor close is a hop to aiosqlite's
    thread and back; a whole transaction run in a thread of our own is one hop.
    """
    url = make_url(settings.resolved_database_url).set(drivername="sqlite+pysqlite")
    connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    engine = create_engine(url, connect_args=connect_args, pool_size=1, max_overflow=0)
    _install_sqlite_pragmas(engine, begin="BEGIN IMMEDIATE")
    return engine


def nonwaiting_sqlite_connection(settings: Settings) -> sqlite3.Connection:
    """A pysqlite connection on the same file that never waits: busy timeout 0 (taking a
    held write lock fails at once) and no automatic checkpoint (whose fsync would wait
    on the disk). For short writes on the event loop; its owner runs the checkpoints
    elsewhere. Transactions are begun explicitly, as on the other connections."""
    path = make_url(settings.resolved_database_url).database
    connection = sqlite3.connect(path or "", timeout=0, isolation_level=None)
    pragmas = ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL", "wal_autocheckpoint=0")
    for pragma in pragmas:
        connection.execute(f"PRAGMA {pragma}")
    return connection


class Database:
    """The process's engines and session factories, built at startup and disposed at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.engine = _make_engine(settings, sqlite_begin="BEGIN IMMEDIATE")
        self._own_read_pool = settings.is_sqlite
        self.read_engine = (
            _make_engine(settings, sqlite_begin="BEGIN")
            if settings.is_sqlite
            else self.engine.execution_options(isolation_level="REPEATABLE READ")
        )
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessionmaker = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A short write session: commits when the block ends cleanly, rolls back otherwise.

        Keep slow work (network, hashing) out of the block: it holds the write lock.
        """
        async with self.sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A Core write transaction, lighter than an ORM session for single statements."""
        async with self.engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        async with self.read_sessionmaker() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._own_read_pool:
            await self.read_engine.dispose()
