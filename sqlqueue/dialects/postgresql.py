"""PostgreSQL: row locks make the claim safe for any number of workers on any machines.

The claim is one statement: a CTE selects the next ready rows ``FOR UPDATE SKIP LOCKED``
and the UPDATE over it marks them taken, so two workers never lock the same row and
neither waits for the other. Times come from the database's clock
(``statement_timestamp()``), never from the workers', so machines with skewed clocks agree
on when a job is due and when a lease has run out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from sqlqueue.dialects.base import Dialect, DriverStatement
from sqlqueue.jobs import NewJobs
from sqlqueue.schema import jobs

NOTIFY_CHANNEL = "sqlqueue"
"""The channel new jobs are announced on; the payload is the job's queue."""

LISTEN_TIMEOUT = 1.0
"""Seconds the listener waits for a notification before checking whether to stop."""

MAX_LISTEN_BACKOFF = 30.0
"""Longest pause, in seconds, between attempts to reopen a lost LISTEN connection."""

# What every job of a send shares. Times are statement_timestamp(), as in now().
_SHARED = """%(task_name)s, %(queue)s, %(priority)s, 'PENDING',
           coalesce(%(eta)s::timestamptz,
                    statement_timestamp() + %(countdown)s::float8 * interval '1 second'),
           coalesce(%(expires_at)s::timestamptz,
                    statement_timestamp() + %(expires_in)s::float8 * interval '1 second'),
           statement_timestamp()"""

_COLUMNS = """id, args, kwargs, task_name, queue, priority, status,
                             scheduled_at, expires_at, created_at"""

# One job: a plain VALUES, the cheapest statement for the server to plan and run.
INSERT_JOB = f"""
WITH inserted AS (
    INSERT INTO {jobs.name} ({_COLUMNS})
    VALUES (%(id)s, %(args)s, %(kwargs)s, {_SHARED})
    RETURNING queue
)
SELECT pg_notify('{NOTIFY_CHANNEL}', queue) FROM inserted
"""  # noqa: S608 (constants, no input)

# Many jobs: the ids as one array and the arguments as one JSON array each, zipped by
# ROWS FROM. Three parameters whatever the number of jobs, each parsed by the server in
# one pass (an array of a hundred thousand JSON texts costs the driver and the server
# several times more), and the same statement text every time, prepared once.
INSERT_JOBS = f"""
WITH inserted AS (
    INSERT INTO {jobs.name} ({_COLUMNS})
    SELECT id, args, kwargs, {_SHARED}
    FROM ROWS FROM (unnest(%(id)s::uuid[]),
                    jsonb_array_elements(%(args)s::jsonb),
                    jsonb_array_elements(%(kwargs)s::jsonb)) AS new (id, args, kwargs)
    RETURNING queue
)
SELECT pg_notify('{NOTIFY_CHANNEL}', queue) FROM inserted LIMIT 1
"""  # noqa: S608 (constants, no input)

logger = logging.getLogger(__name__)


class PostgreSQLDialect(Dialect):
    name = "postgresql"
    supports_listen_notify = True

    def create_engine(self, url: URL) -> Engine:
        # postgresql:// means psycopg 3 here, whatever SQLAlchemy's default driver is.
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return super().create_engine(url)

    def create_async_engine(self, url: URL) -> AsyncEngine:
        # psycopg 3 is sync and async in one driver.
        return super().create_async_engine(url.set(drivername="postgresql+psycopg"))

    def insert_jobs(self, new_jobs: NewJobs) -> DriverStatement:
        # The wake-up travels with the rows, in the same statement. NOTIFY is
        # transactional, so listeners hear it at the commit (never for a rollback), once
        # per queue per transaction: PostgreSQL folds equal notifications into one.
        params: dict[str, Any] = {
            "task_name": new_jobs.task_name,
            "queue": new_jobs.queue,
            "priority": new_jobs.priority,
            "eta": new_jobs.eta,
            "countdown": new_jobs.countdown,
            "expires_at": new_jobs.expires_at,
            "expires_in": new_jobs.expires_in,
        }
        if len(new_jobs.ids) == 1:
            params.update(id=new_jobs.ids[0], args=new_jobs.args[0], kwargs=new_jobs.kwargs[0])
            return DriverStatement(INSERT_JOB, params)
        params.update(
            id=new_jobs.ids,
            args=f"[{','.join(new_jobs.args)}]",
            kwargs=f"[{','.join(new_jobs.kwargs)}]",
        )
        return DriverStatement(INSERT_JOBS, params)

    def begin_insert(self, connection: Connection) -> None:
        # The insert is one statement, atomic on its own: sent in autocommit it is one round
        # trip, where BEGIN, the insert and COMMIT would be three.
        connection.execution_options(isolation_level="AUTOCOMMIT")

    def listen(self, engine: Engine, wake: Callable[[], None], stop: threading.Event) -> None:
        # One connection per worker process, in autocommit, doing nothing but LISTEN: an idle
        # worker is woken within milliseconds of a commit instead of at its next poll.
        conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        backoff = LISTEN_TIMEOUT
        while not stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    backoff = LISTEN_TIMEOUT
                    while not stop.is_set():
                        for _notification in conn.notifies(timeout=LISTEN_TIMEOUT):
                            wake()
            except psycopg.Error as exc:
                logger.warning("LISTEN connection lost, polling until it is back: %s", exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_LISTEN_BACKOFF)

    def now(self) -> sa.ColumnElement[datetime]:
        # statement_timestamp(), not now(): a job enqueued late in a caller's long
        # transaction must count its countdown from the call, not from the BEGIN.
        return sa.func.statement_timestamp(type_=sa.DateTime(timezone=True))

    def now_plus(self, seconds: float) -> sa.ColumnElement[datetime]:
        return self.now() + timedelta(seconds=seconds)
