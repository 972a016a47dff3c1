"""SQLite: one machine, several processes, correct because writers take turns.

SQLite has no row locks, so the claim (the shape of PostgreSQL's, without ``FOR UPDATE``)
runs in a ``BEGIN IMMEDIATE`` transaction: it takes the database's single write lock before
reading, so two workers can never select the same ready row. An engine
sqlqueue builds from a URL puts the file in WAL mode, so that readers (``AsyncResult.get()``,
the application) go on while a worker writes; an engine the application built is left as
it is. A busy timeout makes a writer wait its turn instead of failing with "database is locked".
The same write lock keeps a claim of limited jobs (``sqlite_limits``, in the claim's
transaction) within its limits: nothing runs between its count and its take.

SQLite stores times as text without a zone; every time written is UTC and taken from this
process's clock, which all processes on one machine share. The times of statements built
with ``now()`` and ``now_plus()`` (a claim's lease and start, a renewal, a re-queue, the due
and expiry tests) are read when the statement runs: after ``BEGIN IMMEDIATE`` has waited for
the lock. The statements of fixed text take theirs when they are built, before any wait: a
new job's ``created_at``, ``scheduled_at`` and ``expires_at`` (``insert_jobs``) and a
finished job's ``finished_at`` (``record_outcomes``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Engine, RowMapping
from sqlalchemy.sql.dml import ReturningUpdate

from sqlqueue.conf import SQLITE_BUSY_TIMEOUT
from sqlqueue.dialects.base import Dialect, DriverStatement, Statement, Take
from sqlqueue.dialects.sqlite_limits import claim_limited
from sqlqueue.engines import unpooled_async_engine
from sqlqueue.exceptions import ConfigurationError
from sqlqueue.jobs import JobStatus, NewJobs
from sqlqueue.outcomes import Outcome
from sqlqueue.plans import WorkflowPlan, planned_rows
from sqlqueue.schema import (
    UNFINISHED_WHERE,
    UNLIMITED_READY_WHERE,
    Timestamp,
    job_columns,
    jobs,
)

if TYPE_CHECKING:  # the async extra's; see engines.unpooled_async_engine
    from sqlalchemy.ext.asyncio import AsyncEngine


class SQLiteDialect(Dialect):
    name = "sqlite"
    upsert = staticmethod(sqlite_dialect.insert)

    tunes_connections = False
    """Whether the connections are sqlqueue's to tune (WAL, ``synchronous=NORMAL``): only
    when it built the engine from a URL, never on an engine the application built."""

    def create_engine(self, url: URL) -> Engine:
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})
        self.tunes_connections = True
        event.listen(engine, "connect", _tune_connection)
        self.configure_engine(engine)
        return engine

    def create_async_engine(self, url: URL) -> AsyncEngine:
        try:
            import aiosqlite  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                "adelay(), aapply_async() and aget() on SQLite need the aiosqlite driver: "
                "pip install 'sqlqueue[async]'."
            ) from None
        engine = unpooled_async_engine(
            url.set(drivername="sqlite+aiosqlite"), connect_args={"timeout": SQLITE_BUSY_TIMEOUT}
        )
        if self.tunes_connections:
            event.listen(engine.sync_engine, "connect", _tune_connection)
        self.configure_engine(engine.sync_engine)
        return engine

    def configure_engine(self, engine: Engine) -> None:
        # SQLAlchemy's documented recipe for real SQLite transactions: the driver's implicit
        # (and late) BEGIN is switched off and every transaction emits its own BEGIN. It is
        # all sqlqueue changes on an engine the application built.
        event.listen(engine, "begin", _begin)

    def insert_jobs(self, new_jobs: NewJobs) -> DriverStatement:
        # One statement for one job or many, as on PostgreSQL, so that a send is atomic
        # even on a caller's connection in autocommit (Django's, outside atomic()): the ids
        # and arguments travel as one JSON array, unpacked by json_each.
        columns = [new_jobs.ids, *new_jobs.arguments()]
        if new_jobs.limits is not None:
            columns.append(new_jobs.limits.keys)
        rows = json.dumps(list(zip(*columns, strict=True)))
        insert = INSERT_JOBS if new_jobs.limits is None else INSERT_LIMITED_JOBS
        return DriverStatement(insert, {"jobs": rows, **_shared(new_jobs)})

    def insert_unique_jobs(self, new_jobs: NewJobs) -> list[DriverStatement]:
        # Two statements: the jobs inserted, then the holders of the other keys. SQLite's
        # writers take turns, so in one transaction nothing comes between them.
        keys = cast(list[str], new_jobs.unique_keys)
        columns = [new_jobs.ids, *new_jobs.arguments(), keys]
        insert = INSERT_UNIQUE_JOBS
        if new_jobs.limits is not None:
            columns.append(new_jobs.limits.keys)
            insert = INSERT_LIMITED_UNIQUE_JOBS
        rows = json.dumps(list(zip(*columns, strict=True)))
        return [
            DriverStatement(insert, {"jobs": rows, **_shared(new_jobs)}),
            DriverStatement(UNIQUE_HOLDERS, {"unique_keys": json.dumps(keys)}),
        ]

    def insert_workflow(self, plan: WorkflowPlan, max_payload_bytes: int) -> DriverStatement:
        now = datetime.now(UTC)

        def at(when: datetime | None, seconds: float | None) -> str | None:
            if when is None and seconds is not None:
                when = now + timedelta(seconds=seconds)
            return None if when is None else _stored_time(when)

        rows = [
            [
                row.id,
                row.args,
                row.kwargs,
                row.task_name,
                row.queue,
                row.priority,
                (JobStatus.WAITING if row.waiting_for else JobStatus.PENDING).value,
                at(row.eta, row.countdown),
                at(row.expires_at, row.expires_in),
                row.parent_id,
                row.group_id,
                row.group_index,
                row.group_members,
                row.waiting_for or None,
                row.prerequisites,
                row.feed,
                row.dependents,
                row.errbacks,
            ]
            for row in planned_rows(plan, max_payload_bytes)
        ]
        return DriverStatement(
            INSERT_WORKFLOW,
            {"jobs": json.dumps(rows), "created_at": _stored_time(now), "workflow_id": plan.id},
        )

    def results_in_order(self, job_ids: Sequence[str]) -> DriverStatement:
        return DriverStatement(RESULTS_IN_ORDER, {"ids": json.dumps(list(job_ids))})

    def chord_results(self, job_id: str) -> DriverStatement:
        return DriverStatement(CHORD_RESULTS, {"id": job_id})

    def claim_jobs(
        self, limit: int, queues: Sequence[str] | None, worker_id: str, lease: float
    ) -> ReturningUpdate[Any]:
        # Safe without row locks because it runs under the write lock (see the module's
        # docstring): one UPDATE over the first ready jobs, answering with the taken rows.
        if queues:
            # One ordered probe per queue, in that queue's index, the best of them merged: in
            # the order of all ready jobs, a queue's may lie behind any number of another's.
            probes = [
                self._ready_jobs(limit).where(jobs.c.queue == queue).subquery()
                for queue in dict.fromkeys(queues)
            ]
            merged = sa.union_all(
                *(sa.select(probe.c.id, probe.c.priority, probe.c.scheduled_at) for probe in probes)
            ).subquery()
            ready = (
                sa.select(merged.c.id)
                .order_by(merged.c.priority.desc(), merged.c.scheduled_at, merged.c.id)
                .limit(limit)
            )
        else:
            ready = self._ready_jobs(limit).with_only_columns(jobs.c.id)
        ready_cte = ready.cte("ready")
        return (
            jobs.update()
            .where(jobs.c.id == ready_cte.c.id)
            .values(self.taken(worker_id, lease))
            .returning(*job_columns())
        )

    def claim_limited_jobs(
        self,
        connection: Connection,
        limit: int,
        queues: Sequence[str] | None,
        worker_id: str,
        lease: float,
    ) -> list[RowMapping]:
        return claim_limited(connection, limit, queues, worker_id, lease)

    def _ready_jobs(self, limit: int) -> sa.Select[Any]:
        # The first ``limit`` jobs without limits that are ready and due, in the order
        # workers take them (``claim_limited_jobs`` takes the limited ones).
        return (
            sa.select(jobs.c.id, jobs.c.priority, jobs.c.scheduled_at)
            .where(UNLIMITED_READY_WHERE)
            .where(jobs.c.scheduled_at <= self.now())
            .where(sa.or_(jobs.c.expires_at.is_(None), jobs.c.expires_at > self.now()))
            .order_by(jobs.c.priority.desc(), jobs.c.scheduled_at, jobs.c.id)
            .limit(limit)
        )

    def record_outcomes(
        self, outcomes: Sequence[tuple[Take, Outcome]], releasing: bool = False, wake: bool = False
    ) -> list[Statement]:
        # One fenced UPDATE per job, all under one write lock; successes and failures as
        # fixed text (SQLAlchemy's statement building cost more than SQLite's work), each
        # answering with the job's id when its take still held the job.
        finished_at = _stored_time(datetime.now(UTC))
        return [
            self.retry_job(take, outcome)
            if outcome.again
            else DriverStatement(
                FINISH_JOB,
                {
                    "id": take[0],
                    "attempt": take[1],
                    "status": outcome.status.value,
                    "finished_at": finished_at,
                    **outcome.finish_values(),
                },
            )
            for take, outcome in outcomes
        ]

    def begin_write(self, connection: Connection) -> None:
        # Taking the write lock up front is what makes the claim safe; a deferred BEGIN
        # would let two workers read the same ready row before either writes.
        connection.execution_options(**{IMMEDIATE: True})
        connection.begin()

    def duplicate_id(self, error: BaseException) -> bool:
        return isinstance(error, sqlite3.IntegrityError) and "sqlqueue_jobs.id" in str(error)

    def now(self) -> sa.ColumnElement[datetime]:
        # Read when the statement runs, not when it is built: a claim may wait long for the
        # write lock, and a lease counted from before the wait would be short by as much.
        return sa.bindparam(None, callable_=_utcnow, type_=Timestamp)

    def now_plus(self, seconds: float) -> sa.ColumnElement[datetime]:
        return sa.bindparam(None, callable_=partial(_utcnow, seconds), type_=Timestamp)


INSERT_JOBS = f"""
INSERT INTO {jobs.name} (id, args, kwargs, task_name, queue, priority, status,
                         scheduled_at, expires_at, created_at)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
       :task_name, :queue, :priority, 'PENDING', :scheduled_at, :expires_at, :created_at
FROM json_each(:jobs)
"""  # noqa: S608 (constants, no input)
"""Each element of ``:jobs`` is [stored id, arguments' JSON text, keyword arguments' JSON
text]; the texts are JSON strings there, so json_extract gives back the text to store."""

INSERT_LIMITED_JOBS = f"""
INSERT INTO {jobs.name} (id, args, kwargs, task_name, queue, priority, status,
                         scheduled_at, expires_at, created_at, limit_key, concurrency_limit,
                         rate_interval)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
       :task_name, :queue, :priority, 'PENDING', :scheduled_at, :expires_at, :created_at,
       json_extract(value, '$[3]'), :concurrency_limit, :rate_interval
FROM json_each(:jobs)
"""  # noqa: S608 (constants, no input)
"""``INSERT_JOBS`` for a limited task's jobs (``sqlqueue.limits``): each element has the
job's ``limit_key`` fourth, and all share the limits. Jobs without limits never name these
columns."""

INSERT_UNIQUE_JOBS = f"""
INSERT INTO {jobs.name} (id, args, kwargs, task_name, queue, priority, status,
                         scheduled_at, expires_at, created_at, unique_key)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
       :task_name, :queue, :priority, 'PENDING', :scheduled_at, :expires_at, :created_at,
       json_extract(value, '$[3]')
FROM json_each(:jobs) WHERE true
ON CONFLICT (unique_key) WHERE {UNFINISHED_WHERE} DO NOTHING
RETURNING unique_key, id
"""  # noqa: S608 (constants, no input)
"""``INSERT_JOBS`` with each job's unique key, fourth in its element; a job whose key an
unfinished job holds is not inserted, and the others answer with their key and id. (``WHERE true`` tells SQLite's parser that ON
CONFLICT belongs to the INSERT, not to a join; the conflict target repeats the partial
index's predicate, as SQLite requires to use it.)"""

INSERT_LIMITED_UNIQUE_JOBS = f"""
INSERT INTO {jobs.name} (id, args, kwargs, task_name, queue, priority, status,
                         scheduled_at, expires_at, created_at, unique_key, limit_key,
                         concurrency_limit, rate_interval)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
       :task_name, :queue, :priority, 'PENDING', :scheduled_at, :expires_at, :created_at,
       json_extract(value, '$[3]'), json_extract(value, '$[4]'), :concurrency_limit,
       :rate_interval
FROM json_each(:jobs) WHERE true
ON CONFLICT (unique_key) WHERE {UNFINISHED_WHERE} DO NOTHING
RETURNING unique_key, id
"""  # noqa: S608 (constants, no input)
"""``INSERT_UNIQUE_JOBS`` for a limited task's jobs, each element's ``limit_key`` fifth."""

UNIQUE_HOLDERS = f"""
SELECT unique_key, id FROM {jobs.name}
WHERE unique_key IN (SELECT value FROM json_each(:unique_keys)) AND {UNFINISHED_WHERE}
"""  # noqa: S608 (constants, no input)
"""The unfinished job holding each of these keys, read after ``INSERT_UNIQUE_JOBS`` in its
transaction (which answered for the keys it inserted itself)."""

INSERT_WORKFLOW = f"""
INSERT INTO {jobs.name} (id, args, kwargs, task_name, queue, priority, status, scheduled_at,
                         expires_at, created_at, workflow_id, parent_id, group_id,
                         group_index, group_members, waiting_for, prerequisites, feed,
                         dependents, errbacks)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
       json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'),
       json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]'),
       :created_at, :workflow_id, json_extract(value, '$[9]'), json_extract(value, '$[10]'),
       json_extract(value, '$[11]'), json_extract(value, '$[12]'),
       json_extract(value, '$[13]'), json_extract(value, '$[14]'),
       json_extract(value, '$[15]'), json_extract(value, '$[16]'),
       json_extract(value, '$[17]')
FROM json_each(:jobs)
"""  # noqa: S608 (constants, no input)
"""Each element of ``:jobs`` is one job's columns (see ``insert_workflow``): texts that are
JSON already travel as JSON strings, lists of ids as arrays, which json_extract gives back
as their JSON text."""

RESULTS_IN_ORDER = f"""
SELECT json_group_array(json(job.result))
FROM (SELECT wanted.key, job.result FROM json_each(:ids) AS wanted
      LEFT JOIN {jobs.name} AS job ON job.id = wanted.value ORDER BY wanted.key) AS job
"""  # noqa: S608 (constants, no input)

CHORD_RESULTS = f"""
SELECT json_group_array(json(job.result))
FROM (SELECT wanted.key, job.result
      FROM {jobs.name} AS body, json_each(body.prerequisites) AS wanted
      LEFT JOIN {jobs.name} AS job ON job.id = wanted.value
      WHERE body.id = :id ORDER BY wanted.key) AS job
"""  # noqa: S608 (constants, no input)

FINISH_JOB = f"""
UPDATE {jobs.name}
SET status = :status, finished_at = :finished_at, lease_expires_at = NULL, progress = NULL,
    result = CASE WHEN :status = 'SUCCESS' THEN :result ELSE result END,
    error_type = :error_type, error_message = :error_message, traceback = :traceback
WHERE id = :id AND attempts = :attempt AND status = 'STARTED'
RETURNING id, attempts
"""  # noqa: S608 (constants, no input)
"""Record one job's success or failure, fenced by its take; answers with the take when it
still held the job."""

_sqlite = sqlite_dialect.dialect()
_stored_time = cast(
    Callable[[datetime], str], Timestamp.dialect_impl(_sqlite).bind_processor(_sqlite)
)
"""SQLAlchemy's own conversion, so that times written here read back like any other."""


def _shared(new_jobs: NewJobs) -> dict[str, Any]:
    """The columns every job of a send shares, times taken now (see the module's docstring)."""
    now = datetime.now(UTC)
    scheduled_at = new_jobs.eta or now + timedelta(seconds=new_jobs.countdown)
    expires_at = new_jobs.expires_at
    if expires_at is None and new_jobs.expires_in is not None:
        expires_at = now + timedelta(seconds=new_jobs.expires_in)
    limits = new_jobs.limits
    return {
        **(
            {}
            if limits is None
            else {
                "concurrency_limit": limits.concurrency_limit,
                "rate_interval": limits.rate_interval,
            }
        ),
        "task_name": new_jobs.task_name,
        "queue": new_jobs.queue,
        "priority": new_jobs.priority,
        "scheduled_at": _stored_time(scheduled_at),
        "expires_at": _stored_time(expires_at) if expires_at is not None else None,
        "created_at": _stored_time(now),
    }


AUTOCOMMIT = "AUTOCOMMIT"

IMMEDIATE = "sqlqueue_begin_immediate"
"""Execution option asking the ``begin`` hook for ``BEGIN IMMEDIATE``."""


def _utcnow(plus: float = 0.0) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=plus)


def _tune_connection(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers go on while a worker writes; with it, synchronous=NORMAL loses no
    # integrity, only the last commits should the machine (not the process) crash.
    cursor = dbapi_connection.cursor()  # a cursor: aiosqlite's adapted connection has no execute()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
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
