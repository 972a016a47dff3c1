"""Sending a statement in the caller's own transaction, through the connection it passed.

``connection=`` takes any connection an application already holds: SQLAlchemy's (a
Connection, a Session, a scoped_session, their async twins) or a bare driver's (psycopg,
sqlite3, aiosqlite, PyMySQL, mysqlclient, aiomysql). Each kind reaches its transaction its
own way; the statement is in the driver's own parameter style (``DriverStatement``), so
every kind sends it as it is. A large send on PostgreSQL is a ``CopyStatement``, sent
through the psycopg connection under a synchronous one (async connections get the
``DriverStatement``). Before it does, the connection is checked to reach this app's own
database: a job written to another would never be seen by this app's workers. Errors are
the driver's own; ``JobStore`` translates them.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import psycopg
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, scoped_session

from sqlqueue.autocommit import copy_rest
from sqlqueue.dialects import check_driver
from sqlqueue.dialects.base import CopyStatement, DriverStatement
from sqlqueue.dialects.mysql import WHERE_CONNECTED
from sqlqueue.engines import require_async_extra
from sqlqueue.exceptions import ConfigurationError

if TYPE_CHECKING:  # the async extra's, imported where async is used (see require_async_extra)
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

CallerConnection = Connection | Session | Any
"""What ``connection=`` accepts: a SQLAlchemy Connection or Session, or a DB-API
connection (``psycopg.Connection``, ``sqlite3.Connection``, ``pymysql.Connection``,
mysqlclient's ``MySQLdb.Connection``)."""

AsyncCallerConnection: TypeAlias = "AsyncConnection | AsyncSession | Any"
"""What ``connection=`` accepts in async sends: a SQLAlchemy AsyncConnection or AsyncSession,
a ``psycopg.AsyncConnection``, an ``aiosqlite.Connection`` or an ``aiomysql.Connection``."""

MYSQL_CONNECTIONS = ("pymysql.connections", "MySQLdb.connections")
"""The modules of the MySQL DB-API connection classes ``connection=`` takes (PyMySQL's and
mysqlclient's, both for sqlqueue's pyformat SQL), recognised by name so that neither driver
is imported where it is not used."""

AIOMYSQL_CONNECTION = "aiomysql.connection"
"""The module of aiomysql's connection class, which async sends take."""

SAME_KIND = {"mariadb": "mysql"}
"""SQLAlchemy's dialect names for what sqlqueue treats as one kind of database: a
``mariadb+pymysql://`` engine's connection for an app on ``mysql+pymysql://``, and back."""


class CallerConnections:
    """Sends statements through the callers' connections to one app's database."""

    def __init__(self, engine: Engine, dialect_name: str) -> None:
        self.engine = engine
        self.dialect_name = dialect_name
        self._server: tuple[str, int] | None = None
        """The host and port of the engine's PostgreSQL server, once a check needed them."""
        self._mysql_server: tuple[str, int] | None = None
        """The host name and port of the engine's MySQL server, as it reports them, once a
        check needed them."""

    def execute(self, connection: CallerConnection, statement: DriverStatement) -> None:
        """Run the statement in the transaction of this connection (or session)."""
        connection = self._checked(connection)
        if isinstance(connection, Connection):
            connection.exec_driver_sql(statement.sql, statement.params)
        elif isinstance(connection, sqlite3.Connection):
            connection.execute(statement.sql, statement.params)
        else:
            with connection.cursor() as cursor:
                cursor.execute(statement.sql, statement.params)

    def fetch(
        self, connection: CallerConnection, statement: DriverStatement
    ) -> list[tuple[Any, ...]]:
        """``execute``, answering with the statement's rows."""
        connection = self._checked(connection)
        if isinstance(connection, Connection):
            result = connection.exec_driver_sql(statement.sql, statement.params)
            return [tuple(row) for row in result] if result.returns_rows else []
        if isinstance(connection, sqlite3.Connection):
            return connection.execute(statement.sql, statement.params).fetchall()
        with connection.cursor() as cursor:  # psycopg's, PyMySQL's or mysqlclient's
            cursor.execute(statement.sql, statement.params)
            return [tuple(row) for row in cursor.fetchall()]

    def copy(self, connection: CallerConnection, statement: CopyStatement) -> None:
        """Run a ``CopyStatement`` in the transaction of this connection (or session), under
        a savepoint; on a connection in autocommit, in a transaction of its own: the send
        stays all or nothing."""
        connection = self._checked(connection)
        shared: Sequence[Any] | None = None
        if isinstance(connection, Connection):
            # Its first step through SQLAlchemy, which begins its transaction as for any
            # statement; the COPY, which SQLAlchemy cannot send, through its psycopg connection.
            before = statement.before
            shared = connection.exec_driver_sql(before.sql, before.params).one()
            driver = connection.connection.driver_connection
        else:
            driver = connection
        if not isinstance(driver, psycopg.Connection):  # only PostgreSQL's dialect copies
            raise ConfigurationError(f"COPY needs a psycopg connection, not {driver!r}.")
        if shared is None:
            before = statement.before
            shared = cast(Sequence[Any], driver.execute(before.sql, before.params).fetchone())
        # In autocommit, a transaction of its own; in the caller's transaction, a savepoint:
        # a call refused as the rows stream (or a row the database refuses) takes the rows
        # written so far with it, and leaves the caller's transaction as it was, to go on.
        with driver.transaction():
            copy_rest(driver, statement, shared)

    def _checked(self, connection: CallerConnection) -> Any:
        """The connection under a session, once it is known to reach this app's database."""
        if isinstance(connection, scoped_session):  # Flask-SQLAlchemy's db.session is one
            connection = connection()
        if isinstance(connection, Session):
            connection = connection.connection()
        if isinstance(connection, Connection):
            check_driver(connection.dialect)
            self._check_same_database(connection.dialect.name, connection.engine.url.database)
        elif isinstance(connection, sqlite3.Connection):
            main_file = connection.execute("PRAGMA database_list").fetchone()[2]
            self._check_same_database("sqlite", main_file)
        elif isinstance(connection, psycopg.Connection):
            self._check_same_database("postgresql", connection.info.dbname)
            self._check_same_server(connection.info)
        elif type(connection).__module__ in MYSQL_CONNECTIONS:
            with connection.cursor() as cursor:
                cursor.execute(WHERE_CONNECTED)
                self._check_same_mysql(*cursor.fetchone())
        else:
            raise ConfigurationError(
                f"connection= got a {type(connection).__qualname__}; pass a SQLAlchemy "
                "Connection or Session, a psycopg.Connection, a sqlite3.Connection, a "
                "pymysql.Connection or a MySQLdb (mysqlclient) connection."
            )
        return connection

    async def aexecute(self, connection: AsyncCallerConnection, statement: DriverStatement) -> None:
        """``execute`` for an async connection (or session), awaited."""
        if _package_of(connection) == "sqlalchemy":
            await self._aexecute_sqlalchemy(connection, statement)
        elif isinstance(connection, psycopg.AsyncConnection):
            self._check_same_database("postgresql", connection.info.dbname)
            async with connection.cursor() as cursor:
                await cursor.execute(statement.sql, statement.params)
        elif _package_of(connection) == "aiosqlite":
            await self._aexecute_aiosqlite(connection, statement)
        elif type(connection).__module__ == AIOMYSQL_CONNECTION:
            await self._afetch_aiomysql(connection, statement)
        else:
            raise _not_an_async_connection(connection)

    async def afetch(
        self, connection: AsyncCallerConnection, statement: DriverStatement
    ) -> list[tuple[Any, ...]]:
        """``aexecute``, answering with the statement's rows."""
        if _package_of(connection) == "sqlalchemy":
            result = await self._aexecute_sqlalchemy(connection, statement)
            return [tuple(row) for row in result] if result.returns_rows else []
        if isinstance(connection, psycopg.AsyncConnection):
            self._check_same_database("postgresql", connection.info.dbname)
            async with connection.cursor() as cursor:
                await cursor.execute(statement.sql, statement.params)
                return await cursor.fetchall()
        if _package_of(connection) == "aiosqlite":
            return await self._afetch_aiosqlite(connection, statement)
        if type(connection).__module__ == AIOMYSQL_CONNECTION:
            return await self._afetch_aiomysql(connection, statement)
        raise _not_an_async_connection(connection)

    async def _afetch_aiomysql(
        self, connection: Any, statement: DriverStatement
    ) -> list[tuple[Any, ...]]:
        async with connection.cursor() as cursor:
            await cursor.execute(WHERE_CONNECTED)
            self._check_same_mysql(*await cursor.fetchone())
            await cursor.execute(statement.sql, statement.params)
            return [tuple(row) for row in await cursor.fetchall()]

    async def _afetch_aiosqlite(
        self, connection: Any, statement: DriverStatement
    ) -> list[tuple[Any, ...]]:
        await self._check_aiosqlite(connection)
        async with connection.execute(statement.sql, statement.params) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]

    async def _aexecute_sqlalchemy(self, connection: Any, statement: DriverStatement) -> Any:
        # Only SQLAlchemy's async types need its asyncio, and so the async extra; a driver's
        # own connection (psycopg's) is sent on as it is, on any install.
        require_async_extra()
        from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

        if isinstance(connection, AsyncSession):
            connection = await connection.connection()
        if not isinstance(connection, AsyncConnection):
            raise _not_an_async_connection(connection)
        check_driver(connection.dialect)
        self._check_same_database(connection.dialect.name, connection.engine.url.database)
        return await connection.exec_driver_sql(statement.sql, statement.params)

    async def _aexecute_aiosqlite(self, connection: Any, statement: DriverStatement) -> None:
        await self._check_aiosqlite(connection)
        await connection.execute(statement.sql, statement.params)

    async def _check_aiosqlite(self, connection: Any) -> None:
        async with connection.execute("PRAGMA database_list") as cursor:
            main_file = (await cursor.fetchone())[2]
        self._check_same_database("sqlite", main_file)

    def _check_same_database(self, kind: str, database: str | None) -> None:
        kind = SAME_KIND.get(kind, kind)
        ours = self.engine.url.database
        if kind == self.dialect_name and (
            not database or not ours or _same_database(kind, database, ours)
        ):
            return
        raise ConfigurationError(
            f"connection= is a connection to the {kind} database {database!r}, but this app's "
            f"queue is in the {self.dialect_name} database {ours!r}; pass a connection to the "
            "app's own database."
        )

    def _check_same_mysql(self, database: str | None, host: str, port: int) -> None:
        # The server says where a connection landed, whatever the client was given (a name,
        # an address, a socket, an option file); the engine's side is read once.
        self._check_same_database("mysql", database)
        if self._mysql_server is None:
            with self.engine.connect() as conn:
                _, ours_host, ours_port = conn.exec_driver_sql(WHERE_CONNECTED).one()
                self._mysql_server = (ours_host, ours_port)
        if (host, port) != self._mysql_server:
            raise ConfigurationError(
                f"connection= is a connection to the server {host} port {port}, but this "
                f"app's queue is on {self._mysql_server[0]} port {self._mysql_server[1]}; "
                "pass a connection to the app's own database."
            )

    def _check_same_server(self, info: psycopg.ConnectionInfo) -> None:
        # Databases of one name on two servers are two databases. Both sides as libpq
        # resolved them (a service file, $PGHOST, localhost to its address), the engine's
        # read from one of its connections, once.
        if self._server is None:
            with self.engine.connect() as conn:
                ours = cast(psycopg.Connection[Any], conn.connection.driver_connection).info
                self._server = (ours.hostaddr or ours.host, ours.port)
        if (info.hostaddr or info.host, info.port) != self._server:
            raise ConfigurationError(
                f"connection= is a connection to the server at {info.host} port {info.port}, "
                f"but this app's queue is on {self._server[0]} port {self._server[1]}; pass a "
                "connection to the app's own database."
            )


def _package_of(connection: Any) -> str:
    """The top-level package of the connection's class, read without importing anything."""
    return type(connection).__module__.split(".")[0]


def _not_an_async_connection(connection: Any) -> ConfigurationError:
    return ConfigurationError(
        f"connection= got a {type(connection).__qualname__} in an async send; pass a "
        "SQLAlchemy AsyncConnection or AsyncSession, a psycopg.AsyncConnection, an "
        "aiosqlite.Connection or an aiomysql.Connection."
    )


def _same_database(kind: str, a: str, b: str) -> bool:
    if kind == "sqlite":
        return os.path.realpath(a) == os.path.realpath(b)
    return a == b
