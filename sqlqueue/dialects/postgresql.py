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
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

from sqlqueue.dialects.base import Dialect
from sqlqueue.schema import jobs

NOTIFY_CHANNEL = "sqlqueue"
"""The channel new jobs are announced on; the payload is the job's queue."""

LISTEN_TIMEOUT = 1.0
"""Seconds the listener waits for a notification before checking whether to stop."""

MAX_LISTEN_BACKOFF = 30.0
"""Longest pause, in seconds, between attempts to reopen a lost LISTEN connection."""

logger = logging.getLogger(__name__)


class PostgreSQLDialect(Dialect):
    name = "postgresql"
    supports_listen_notify = True

    def create_engine(self, url: URL) -> Engine:
        # postgresql:// means psycopg 3 here, whatever SQLAlchemy's default driver is.
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return sa.create_engine(url, pool_pre_ping=True)

    def create_async_engine(self, url: URL) -> AsyncEngine:
        # psycopg 3 is sync and async in one driver.
        return super().create_async_engine(url.set(drivername="postgresql+psycopg"))

    def insert_jobs(self, rows: Sequence[dict[str, Any]]) -> Executable:
        # The wake-up travels with the insert, in one statement: NOTIFY is transactional, so
        # listeners hear it at the commit (never for a rollback), and PostgreSQL folds equal
        # notifications of one transaction into one, so a thousand jobs wake workers once.
        inserted = self.plain_insert(rows).returning(jobs.c.queue).cte("inserted")
        return sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, inserted.c.queue))

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
