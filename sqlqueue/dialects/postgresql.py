"""PostgreSQL: row locks make the claim safe for any number of workers on any machines.

The claim is one statement: a CTE selects the next ready rows ``FOR UPDATE SKIP LOCKED``
and the UPDATE over it marks them taken, so two workers never lock the same row and
neither waits for the other. Times come from the database's clock
(``statement_timestamp()``), never from the workers', so machines with skewed clocks agree
on when a job is due and when a lease has run out.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

from sqlqueue.dialects.base import Dialect, JobOutcome
from sqlqueue.jobs import JobStatus
from sqlqueue.schema import jobs

NOTIFY_CHANNEL = "sqlqueue"
"""The channel new jobs are announced on; the payload is the job's queue."""

LISTEN_TIMEOUT = 1.0
"""Seconds the listener waits for a notification before checking whether to stop."""

MAX_LISTEN_BACKOFF = 30.0
"""Longest pause, in seconds, between attempts to reopen a lost LISTEN connection."""

LISTEN_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
"""libpq's TCP keepalive settings for the LISTEN connection, which is otherwise silent."""

logger = logging.getLogger(__name__)

FINISH_JOBS = sa.text(
    """
    UPDATE sqlqueue_jobs AS job
    SET status = done.status,
        finished_at = statement_timestamp(),
        lease_expires_at = NULL,
        result = CASE WHEN done.status = 'SUCCESS' THEN done.result ELSE job.result END,
        error_type = done.error_type,
        error_message = done.error_message,
        traceback = done.traceback
    FROM unnest(
        CAST(:ids AS uuid[]), CAST(:attempts AS integer[]), CAST(:statuses AS text[]),
        CAST(:results AS jsonb[]), CAST(:error_types AS text[]),
        CAST(:error_messages AS text[]), CAST(:tracebacks AS text[])
    ) AS done (id, attempt, status, result, error_type, error_message, traceback)
    WHERE job.id = done.id AND job.attempts = done.attempt AND job.status = 'STARTED'
    RETURNING job.id
    """
)
"""Finish many jobs in one statement: the same fence as ``finish_job`` (id, attempt and
STARTED), one row of arrays per job. Its text never changes with the batch's size, so the
server parses it once per connection."""


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

    def record_outcomes(self, outcomes: Sequence[JobOutcome]) -> list[Executable]:
        # Successes and failures, nearly every outcome of a busy worker, go in one statement;
        # retries (rarer, and each with its own delay) keep their per-job UPDATE.
        finished = [outcome for outcome in outcomes if outcome.status is not JobStatus.RETRY]
        statements: list[Executable] = [
            self.record_outcome(o) for o in outcomes if o.status is JobStatus.RETRY
        ]
        if finished:
            statements.append(
                FINISH_JOBS.bindparams(
                    ids=[outcome.take[0] for outcome in finished],
                    attempts=[outcome.take[1] for outcome in finished],
                    statuses=[outcome.status.value for outcome in finished],
                    results=[
                        json.dumps(outcome.values["result"])
                        if outcome.status is JobStatus.SUCCESS
                        else None
                        for outcome in finished
                    ],
                    error_types=[outcome.values.get("error_type") for outcome in finished],
                    error_messages=[outcome.values.get("error_message") for outcome in finished],
                    tracebacks=[outcome.values.get("traceback") for outcome in finished],
                )
            )
        return statements

    def listen(
        self,
        engine: Engine,
        wake: Callable[[], None],
        stop: threading.Event,
        listening: threading.Event,
    ) -> None:
        # One connection per worker process, in autocommit, doing nothing but LISTEN: an idle
        # worker is woken within milliseconds of a commit instead of at its next poll, and
        # needs no poll of its own while this connection is up. TCP keepalives make a
        # connection that died silently (a lost peer, no reset) fail here within a minute or
        # two, so that the worker goes back to polling.
        conninfo = make_conninfo(
            engine.url.set(drivername="postgresql").render_as_string(hide_password=False),
            **LISTEN_KEEPALIVES,
        )
        backoff = LISTEN_TIMEOUT
        while not stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    backoff = LISTEN_TIMEOUT
                    listening.set()
                    wake()  # sends committed while nobody listened announced nothing to us
                    while not stop.is_set():
                        for _notification in conn.notifies(timeout=LISTEN_TIMEOUT):
                            wake()
            except psycopg.Error as exc:
                listening.clear()
                wake()  # back to polling, from now rather than after the fallback wait
                logger.warning("LISTEN connection lost, polling until it is back: %s", exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_LISTEN_BACKOFF)
        listening.clear()

    def now(self) -> sa.ColumnElement[datetime]:
        # statement_timestamp(), not now(): a job enqueued late in a caller's long
        # transaction must count its countdown from the call, not from the BEGIN.
        return sa.func.statement_timestamp(type_=sa.DateTime(timezone=True))

    def now_plus(self, seconds: float) -> sa.ColumnElement[datetime]:
        return self.now() + timedelta(seconds=seconds)
