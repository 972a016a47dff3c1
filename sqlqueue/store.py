"""JobStore: the only place sqlqueue executes SQL.

Everything above it deals in ``Job`` values and takes; everything below it is a statement
built by the dialect. It owns the transactions, joining the caller's own when a job is
enqueued with ``connection=``, and turns driver errors into ``sqlqueue.DatabaseError``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeAlias, TypeGuard, cast

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, CursorResult, Engine
from sqlalchemy.orm import Session, scoped_session
from sqlalchemy.sql import Executable

from sqlqueue.dialects import check_driver, get_dialect
from sqlqueue.dialects.base import (
    Dialect,
    DriverStatement,
    JobOutcome,
    Statement,
    Take,
    require_async_extra,
)
from sqlqueue.exceptions import ConfigurationError, DatabaseError, InvalidOptionError
from sqlqueue.jobs import Job, JobStatus, NewJobs, as_utc

if TYPE_CHECKING:  # the async extra's, imported where async is used (see require_async_extra)
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

CallerConnection = Connection | Session | Any
"""What ``connection=`` accepts: a SQLAlchemy Connection or Session, or a DB-API
connection (``psycopg.Connection``, ``sqlite3.Connection``)."""

AsyncCallerConnection: TypeAlias = "AsyncConnection | AsyncSession | Any"
"""What ``connection=`` accepts in async sends: a SQLAlchemy AsyncConnection or AsyncSession,
a ``psycopg.AsyncConnection`` or an ``aiosqlite.Connection``."""


DRIVER_ERRORS = (sqlite3.Error, psycopg.Error)
"""What the drivers raise when a DB-API connection passed as ``connection=`` fails."""


class JobStore:
    """Verbs on jobs, each one statement in one short transaction."""

    def __init__(self, engine: Engine, dialect: Dialect) -> None:
        self.engine = engine
        self.dialect = dialect
        self._async_engine: AsyncEngine | None = None
        self._server: tuple[str, int] | None = None
        """The host and port of the engine's PostgreSQL server, once a check needed them."""

    @classmethod
    def for_engine(cls, engine: Engine) -> JobStore:
        """A store on an engine the user built (and shares with sqlqueue)."""
        dialect = get_dialect(engine.dialect.name)
        check_driver(engine.dialect)
        dialect.configure_engine(engine)
        return cls(engine, dialect)

    def insert_jobs(self, new_jobs: NewJobs, connection: CallerConnection | None = None) -> None:
        """Write new jobs: in their own committed transaction, or in the caller's."""
        statement = self.dialect.insert_jobs(new_jobs)
        if connection is not None:
            self._execute_in_caller_transaction(connection, statement)
        elif self._goes_alone(statement):
            with self._autocommit_driver() as driver:
                driver.execute(statement.sql, statement.params)
        else:
            with self._write() as conn:
                conn.exec_driver_sql(statement.sql, statement.params)

    async def ainsert_jobs(
        self, new_jobs: NewJobs, connection: AsyncCallerConnection | None = None
    ) -> None:
        """``insert_jobs`` with an async driver: the same statement, awaited."""
        statement = self.dialect.insert_jobs(new_jobs)
        sql, params = statement.sql, statement.params
        with self._translate_errors():
            if connection is None:
                async with self.async_engine.begin() as conn:
                    await conn.exec_driver_sql(sql, params)
                return
            require_async_extra()
            from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

            if isinstance(connection, AsyncSession):
                connection = await connection.connection()
            if isinstance(connection, AsyncConnection):
                check_driver(connection.dialect)
                self._check_same_database(connection.dialect.name, connection.engine.url.database)
                await connection.exec_driver_sql(sql, params)
            elif isinstance(connection, psycopg.AsyncConnection):
                self._check_same_database("postgresql", connection.info.dbname)
                async with connection.cursor() as cursor:
                    await cursor.execute(sql, params)
            elif type(connection).__module__.split(".")[0] == "aiosqlite":
                async with connection.execute("PRAGMA database_list") as cursor:
                    main_file = (await cursor.fetchone())[2]
                self._check_same_database("sqlite", main_file)
                await connection.execute(sql, params)
            else:
                raise ConfigurationError(
                    f"connection= got a {type(connection).__qualname__} in an async send; pass "
                    "a SQLAlchemy AsyncConnection or AsyncSession, a psycopg.AsyncConnection or "
                    "an aiosqlite.Connection."
                )

    async def aget_job(self, job_id: str) -> Job | None:
        """``get_job`` with an async driver."""
        with self._translate_errors():
            async with self.async_engine.connect() as conn:
                row = (await conn.execute(self.dialect.get_job(job_id))).mappings().first()
        return Job.from_row(row) if row is not None else None

    @property
    def async_engine(self) -> AsyncEngine:
        """The async twin of ``engine``, made on first use."""
        if self._async_engine is None:
            self._async_engine = self.dialect.create_async_engine(self.engine.url)
        return self._async_engine

    def claim_jobs(
        self, limit: int, queues: Sequence[str] | None, worker_id: str, lease: float
    ) -> list[Job]:
        """Take up to ``limit`` ready jobs, highest priority first, each with a fresh lease."""
        statement = self.dialect.claim_jobs(limit, queues, worker_id, lease)
        if self._goes_alone(statement):
            # Binary rows and plain dicts: turning a claim's rows into Jobs was most of a
            # busy worker's CPU, and this halves it (measured: 66 -> 34 us per job).
            with self._autocommit_driver() as driver:
                cursor = driver.cursor(binary=True, row_factory=dict_row)
                claimed = [
                    Job.from_row(row) for row in cursor.execute(statement.sql, statement.params)
                ]
        else:
            with self._write() as conn:
                claimed = [Job.from_row(row) for row in _execute(conn, statement).mappings()]
        claimed.sort(key=lambda job: (-job.priority, job.scheduled_at, job.id))
        return claimed

    def extend_leases(self, takes: Sequence[Take], lease: float) -> set[Take]:
        """Renew the leases of these takes; a take missing from the answer has lost its job."""
        if not takes:
            return set()
        with self._write() as conn:
            rows = conn.execute(self.dialect.extend_leases(takes, lease))
            return {(str(job_id), attempts) for job_id, attempts in rows}

    def record_outcomes(self, outcomes: Sequence[JobOutcome]) -> set[str]:
        """Write many jobs' outcomes in one transaction; returns the ids whose take still
        held the job. The others were taken again meanwhile, and nothing about them changed."""
        if not outcomes:
            return set()
        statements = self.dialect.record_outcomes(outcomes)
        if len(statements) == 1 and self._goes_alone(only := statements[0]):
            with self._autocommit_driver() as driver:
                return {str(row[0]) for row in driver.execute(only.sql, only.params)}
        kept: set[str] = set()
        retried = any(outcome.status is JobStatus.RETRY for outcome in outcomes)
        with self._write() as conn:
            for statement in statements:
                kept.update(str(row[0]) for row in _execute(conn, statement))
            if retried:
                self._wake_workers(conn)
        return kept

    def next_due_in(self, queues: Sequence[str] | None) -> float | None:
        """Seconds until the next ready job of these queues (None: all) that waits for its
        time (a countdown, an eta, a retry's delay) becomes due; None when there is none."""
        with self._translate_errors(), self.engine.connect() as conn:
            due, now = conn.execute(self.dialect.next_due_time(queues)).one()
        if due is None:
            return None
        return max(0.0, (as_utc(due) - as_utc(now)).total_seconds())  # type: ignore[operator]

    def release_jobs(self, takes: Sequence[Take]) -> int:
        """Give back jobs taken but never started; returns how many went back."""
        if not takes:
            return 0
        return self._make_ready(self.dialect.release_jobs(takes))

    def release_unknown_takes(self, worker_id: str, known: Sequence[Take]) -> int:
        """Give back the jobs leased to ``worker_id`` other than ``known`` (the takes it holds),
        after a claim whose outcome it could not learn; returns how many went back."""
        return self._make_ready(self.dialect.release_unknown_takes(worker_id, known))

    def rescue_expired_jobs(self, max_lease_expiries: int) -> int:
        """Re-queue (or fail) every job whose lease ran out; returns how many."""
        return self._make_ready(self.dialect.rescue_expired_jobs(max_lease_expiries))

    def expire_jobs(self) -> int:
        """Revoke ready jobs that passed their ``expires_at`` unstarted; returns how many."""
        with self._write() as conn:
            return conn.execute(self.dialect.expire_jobs()).rowcount

    def delete_finished_jobs(
        self, older_than: float, batch_size: int, max_batches: int | None = None
    ) -> int:
        """Delete jobs finished more than ``older_than`` seconds ago, a batch per short
        transaction so that no lock is held for long, and at most ``max_batches`` batches
        (None: until none is left); returns how many."""
        deleted = batches = 0
        while True:
            with self._write() as conn:
                count = conn.execute(
                    self.dialect.delete_finished_jobs(older_than, batch_size)
                ).rowcount
            deleted += count
            batches += 1
            if count < batch_size or batches == max_batches:
                return deleted

    def requeue_jobs(
        self,
        *,
        job_ids: Sequence[str] = (),
        task_name: str | None = None,
        queue: str | None = None,
    ) -> int:
        """Queue failed or revoked jobs again, chosen by id, task or queue; returns how many."""
        if not (job_ids or task_name or queue):
            raise InvalidOptionError("Say which jobs to retry: by id, by task or by queue.")
        return self._make_ready(self.dialect.requeue_jobs(job_ids, task_name, queue))

    def revoke_job(self, job_id: str) -> bool:
        """Revoke a job that has not started; False when it had started or finished."""
        return self._update_one(self.dialect.revoke_job(job_id))

    def get_job(self, job_id: str) -> Job | None:
        """The job's current row, or None when there is no such job."""
        with self._translate_errors(), self.engine.connect() as conn:
            row = conn.execute(self.dialect.get_job(job_id)).mappings().first()
        return Job.from_row(row) if row is not None else None

    def _goes_alone(self, statement: Statement) -> TypeGuard[DriverStatement]:
        return isinstance(statement, DriverStatement) and self.dialect.driver_autocommit

    @contextmanager
    def _autocommit_driver(self) -> Iterator[psycopg.Connection[Any]]:
        # A statement atomic on its own (a send outside any transaction of the caller, a
        # claim, a batch of outcomes) goes in autocommit through the pooled psycopg
        # connection itself: one round trip, where BEGIN, statement and COMMIT are three,
        # and no SQLAlchemy Connection around it, which cost a quarter of a send (measured:
        # 2,200-2,800 sends/s through it, 2,750-3,650 without).
        with self._translate_errors():
            pooled = self.engine.raw_connection()
            driver = cast(psycopg.Connection[Any], pooled.driver_connection)
            try:
                driver.autocommit = True
                try:
                    yield driver
                finally:
                    # Never hand the pool a dead connection, or one still in autocommit
                    # (one left mid-statement by an interrupt cannot leave it).
                    if driver.info.transaction_status is TransactionStatus.IDLE:
                        driver.autocommit = False
                    else:
                        pooled.invalidate()
            finally:
                pooled.close()

    def _make_ready(self, statement: Executable) -> int:
        # Jobs put back in the queue by anything but a send: workers that listen must hear
        # of them too, or they would wait for their fallback poll.
        with self._write() as conn:
            count = conn.execute(statement).rowcount
            if count:
                self._wake_workers(conn)
        return count

    def _wake_workers(self, conn: Connection) -> None:
        statement = self.dialect.wake_workers()
        if statement is not None:
            _execute(conn, statement)

    def _update_one(self, statement: Executable) -> bool:
        with self._write() as conn:
            return conn.execute(statement).rowcount == 1

    @contextmanager
    def _write(self, begin: Callable[[Connection], None] | None = None) -> Iterator[Connection]:
        with self._translate_errors(), self.engine.connect() as conn:
            (begin or self.dialect.begin_write)(conn)
            yield conn
            conn.commit()

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except sa_exc.DBAPIError as exc:
            raise _database_error(exc.orig or exc) from exc
        except sa_exc.SQLAlchemyError as exc:  # e.g. no pooled connection came free in time
            raise _database_error(exc) from exc
        except DRIVER_ERRORS as exc:
            raise _database_error(exc) from exc

    def _execute_in_caller_transaction(
        self, connection: CallerConnection, statement: DriverStatement
    ) -> None:
        # One statement, several ways to reach the caller's transaction; it is in the
        # driver's own parameter style, so every kind of connection sends it as it is.
        if isinstance(connection, scoped_session):  # Flask-SQLAlchemy's db.session is one
            connection = connection()
        sql, params = statement.sql, statement.params
        with self._translate_errors():
            if isinstance(connection, Session):
                connection = connection.connection()
            if isinstance(connection, Connection):
                check_driver(connection.dialect)
                self._check_same_database(connection.dialect.name, connection.engine.url.database)
                connection.exec_driver_sql(sql, params)
            elif isinstance(connection, sqlite3.Connection):
                main_file = connection.execute("PRAGMA database_list").fetchone()[2]
                self._check_same_database("sqlite", main_file)
                connection.execute(sql, params)
            elif isinstance(connection, psycopg.Connection):
                self._check_same_database("postgresql", connection.info.dbname)
                self._check_same_server(connection.info)
                with connection.cursor() as cursor:
                    cursor.execute(sql, params)
            else:
                raise ConfigurationError(
                    f"connection= got a {type(connection).__qualname__}; pass a SQLAlchemy "
                    "Connection or Session, a psycopg.Connection or a sqlite3.Connection."
                )

    def _check_same_database(self, kind: str, database: str | None) -> None:
        # A job written to another database would never be seen by this app's workers.
        ours = self.engine.url.database
        if kind == self.dialect.name and (
            not database or not ours or _same_database(kind, database, ours)
        ):
            return
        raise ConfigurationError(
            f"connection= is a connection to the {kind} database {database!r}, but this app's "
            f"queue is in the {self.dialect.name} database {ours!r}; pass a connection to the "
            "app's own database."
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


def _execute(connection: Connection, statement: Statement) -> CursorResult[Any]:
    if isinstance(statement, DriverStatement):
        return connection.exec_driver_sql(statement.sql, statement.params)
    return connection.execute(statement)


def _same_database(kind: str, a: str, b: str) -> bool:
    if kind == "sqlite":
        return os.path.realpath(a) == os.path.realpath(b)
    return a == b


TRANSIENT_ERRORS = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sqlite3.OperationalError,
    sqlite3.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
"""Errors of the connection or the moment, not of the statement: worth trying again."""


def _database_error(exc: BaseException) -> DatabaseError:
    message = str(exc).strip()
    if "does not exist" in message or "no such table" in message:
        if "sqlqueue_claim" in message:
            return DatabaseError(
                f"{message.rstrip('.')}. This database's sqlqueue schema is older than this "
                "code (it lacks migration 0004): run `sqlqueue migrate` against it.",
                transient=False,
            )
        if "sqlqueue_" in message:
            return DatabaseError(
                f"{message.rstrip('.')}. The queue's tables are missing: run `sqlqueue migrate` "
                "(or `alembic upgrade head` in the sqlqueue repository) against this database.",
                transient=False,
            )
    return DatabaseError(
        f"The database refused a sqlqueue statement: {message}",
        transient=isinstance(exc, TRANSIENT_ERRORS),
    )
