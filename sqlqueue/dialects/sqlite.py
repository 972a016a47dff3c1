"""SQLite: one machine, several processes, correct because writers take turns.

SQLite has no row locks, so the claim (the same statement as PostgreSQL's, without
``FOR UPDATE``) runs in a ``BEGIN IMMEDIATE`` transaction: it takes the database's single
write lock before reading, so two workers can never select the same ready row. WAL mode
lets readers (``AsyncResult.get()``, the application) go on while a worker writes, and a
busy timeout makes a writer wait its turn instead of failing with "database is locked".

SQLite stores times as text without a zone; every time written is UTC and taken from this
process's clock, which all processes on one machine share.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from sqlqueue.conf import SQLITE_BUSY_TIMEOUT
from sqlqueue.dialects.base import Dialect, unpooled_async_engine
from sqlqueue.exceptions import ConfigurationError
from sqlqueue.schema import Timestamp


class SQLiteDialect(Dialect):
    name = "sqlite"

    def create_engine(self, url: URL) -> Engine:
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})
        self.configure_engine(engine)
        return engine

    def create_async_engine(self, url: URL) -> AsyncEngine:
        try:
            import aiosqlite  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                "Async sends on SQLite need the aiosqlite driver: pip install 'sqlqueue[async]'."
            ) from None
        engine = unpooled_async_engine(
            url.set(drivername="sqlite+aiosqlite"), connect_args={"timeout": SQLITE_BUSY_TIMEOUT}
        )
        self.configure_engine(engine.sync_engine)
        return engine

    def configure_engine(self, engine: Engine) -> None:
        # Connections the engine opens from now on get WAL and the busy timeout.
        event.listen(engine, "connect", _configure_connection)
        # SQLAlchemy's documented recipe for real SQLite transactions: the driver's implicit
        # (and late) BEGIN is switched off and every transaction emits its own BEGIN.
        event.listen(engine, "begin", _begin)

    def begin_write(self, connection: Connection) -> None:
        # Taking the write lock up front is what makes the claim safe; a deferred BEGIN
        # would let two workers read the same ready row before either writes.
        connection.execution_options(**{IMMEDIATE: True})
        connection.begin()

    def now(self) -> sa.ColumnElement[datetime]:
        return sa.literal(datetime.now(UTC), Timestamp)

    def now_plus(self, seconds: float) -> sa.ColumnElement[datetime]:
        return sa.literal(datetime.now(UTC) + timedelta(seconds=seconds), Timestamp)


AUTOCOMMIT = "AUTOCOMMIT"

IMMEDIATE = "sqlqueue_begin_immediate"
"""Execution option asking the ``begin`` hook for ``BEGIN IMMEDIATE``."""


def _configure_connection(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()  # a cursor: aiosqlite's adapted connection has no execute()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
    cursor.close()


def _begin(connection: Connection) -> None:
    if AUTOCOMMIT in (
        connection.get_execution_options().get("isolation_level"),
        # create_engine(isolation_level=...) is kept here; SQLAlchemy has no public reader.
        getattr(connection.dialect, "_on_connect_isolation_level", None),
    ):
        return  # the user asked for no transaction; a BEGIN would hold their writes back
    dbapi_connection = connection.connection.dbapi_connection
    if dbapi_connection is not None and dbapi_connection.isolation_level is not None:
        dbapi_connection.isolation_level = None
    immediate = connection.get_execution_options().get(IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
