"""PostgreSQL: row locks make the claim safe for any number of workers on any machines.

The claim is one statement, the function ``sqlqueue_claim`` (migration 0004): a CTE selects
the next ready rows ``FOR UPDATE SKIP LOCKED`` and the UPDATE over it marks them taken, so
two workers never lock the same row and neither waits for the other. Times come from the
database's clock (``statement_timestamp()``), never from the workers', so machines with skewed
clocks agree on when a job is due and when a lease has run out.

Jobs with limits (docs/limits.md) are taken by the same function first (migration 0012), group
by group: under a transaction-scoped advisory lock on the group's key it counts the group's
running jobs, and under the row lock of the task's token bucket it takes from the bucket, so
two claims at once never exceed a limit together.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.engine import URL, Engine
from sqlalchemy.sql import Executable

from sqlqueue.dialects.base import CopyStatement, Dialect, DriverStatement, Statement, Take
from sqlqueue.dialects.postgresql_listen import NOTIFY_CHANNEL, REVOKE_CHANNEL, listen
from sqlqueue.engines import ping_when_idle, unpooled_async_engine
from sqlqueue.exceptions import ConfigurationError
from sqlqueue.jobs import NewJobs
from sqlqueue.outcomes import Outcome
from sqlqueue.plans import WorkflowPlan, planned_rows
from sqlqueue.schema import UNFINISHED_WHERE, job_columns, jobs

if TYPE_CHECKING:  # the async extra's; see engines.unpooled_async_engine
    from sqlalchemy.ext.asyncio import AsyncEngine

# What every job of a send shares. Times are statement_timestamp(), as in now().
_SHARED = """%(task_name)s, %(queue)s, %(priority)s, 'PENDING',
           coalesce(%(eta)s::timestamptz,
                    statement_timestamp() + %(countdown)s::float8 * interval '1 second'),
           coalesce(%(expires_at)s::timestamptz,
                    statement_timestamp() + %(expires_in)s::float8 * interval '1 second'),
           statement_timestamp()"""

_COLUMNS = """id, args, kwargs, task_name, queue, priority, status,
                             scheduled_at, expires_at, created_at"""
_LIMIT_COLUMNS = "limit_key, concurrency_limit, rate_interval"
_LIMITS = "%(concurrency_limit)s::integer, %(rate_interval)s::float8"

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
    FROM ROWS FROM (unnest(%(id)s::text[]),
                    jsonb_array_elements(%(args)s::jsonb),
                    jsonb_array_elements(%(kwargs)s::jsonb)) AS new (id, args, kwargs)
    RETURNING queue
)
SELECT pg_notify('{NOTIFY_CHANNEL}', queue) FROM inserted LIMIT 1
"""  # noqa: S608 (constants, no input)
# The jobs of a limited task (``sqlqueue.limits``), one or many: each with its group's key,
# all with the same limits. Jobs without limits never name these columns.
INSERT_LIMITED_JOBS = f"""
WITH inserted AS (
    INSERT INTO {jobs.name} ({_COLUMNS}, {_LIMIT_COLUMNS})
    SELECT id, args, kwargs, {_SHARED}, limit_key, {_LIMITS}
    FROM ROWS FROM (unnest(%(id)s::text[]),
                    jsonb_array_elements(%(args)s::jsonb),
                    jsonb_array_elements(%(kwargs)s::jsonb),
                    unnest(%(limit_key)s::text[])) AS new (id, args, kwargs, limit_key)
    RETURNING queue
)
SELECT pg_notify('{NOTIFY_CHANNEL}', queue) FROM inserted LIMIT 1
"""  # noqa: S608 (constants, no input)


# Unique jobs (at most one unfinished job per key; their keys are distinct within a send):
# each job is inserted unless an unfinished job holds its key, and the answer is, for each
# key, the job that holds it: the new one, or the one there before. The conflict target
# repeats the partial index's predicate, which is how PostgreSQL finds the index. A key held
# by a job another transaction committed while this insert waited for it is in neither
# half (the snapshot of the statement predates that commit): the store sends those keys
# again, in a statement that sees it.
def _insert_unique_jobs(limited: bool) -> str:
    """``INSERT_UNIQUE_JOBS``, or with each job's limits too (``INSERT_LIMITED_UNIQUE_JOBS``)."""
    key, columns, values = (
        (", unnest(%(limit_key)s::text[])", f", {_LIMIT_COLUMNS}", f", limit_key, {_LIMITS}")
        if limited
        else ("", "", "")
    )
    return f"""
WITH new AS (
    SELECT * FROM ROWS FROM (unnest(%(id)s::text[]),
                             jsonb_array_elements(%(args)s::jsonb),
                             jsonb_array_elements(%(kwargs)s::jsonb),
                             unnest(%(unique_key)s::text[]){key})
                   AS new (id, args, kwargs, unique_key{", limit_key" if limited else ""})
), inserted AS (
    INSERT INTO {jobs.name} ({_COLUMNS}, unique_key{columns})
    SELECT id, args, kwargs, {_SHARED}, unique_key{values} FROM new
    ON CONFLICT (unique_key) WHERE {UNFINISHED_WHERE} DO NOTHING
    RETURNING unique_key, id, queue
), woken AS (
    SELECT pg_notify('{NOTIFY_CHANNEL}', queue) FROM inserted LIMIT 1
)
SELECT unique_key, id FROM inserted WHERE (SELECT count(*) FROM woken) = 1
UNION ALL
SELECT held.unique_key, held.id FROM {jobs.name} AS held
WHERE held.unique_key = ANY(%(unique_key)s::text[]) AND {UNFINISHED_WHERE}
  AND held.unique_key NOT IN (SELECT unique_key FROM inserted)
"""  # noqa: S608 (constants, no input)


INSERT_UNIQUE_JOBS = _insert_unique_jobs(limited=False)
INSERT_LIMITED_UNIQUE_JOBS = _insert_unique_jobs(limited=True)

# A workflow: every column a job may differ in travels as an array (JSON ones as one JSON
# array each), zipped by ROWS FROM, so a workflow of any size is one statement, atomic even
# on a caller's connection in autocommit. Steps with prerequisites are stored WAITING.
INSERT_WORKFLOW = f"""
WITH inserted AS (
    INSERT INTO {jobs.name} ({_COLUMNS}, workflow_id, parent_id, group_id, group_index,
                             group_members, waiting_for, prerequisites, feed, dependents,
                             errbacks)
    SELECT new.id, new.args, new.kwargs, new.task_name, new.queue, new.priority,
           CASE WHEN new.waiting_for > 0 THEN 'WAITING' ELSE 'PENDING' END,
           coalesce(new.eta,
                    statement_timestamp() + new.countdown * interval '1 second'),
           coalesce(new.expires_at,
                    statement_timestamp() + new.expires_in * interval '1 second'),
           statement_timestamp(), %(workflow_id)s, new.parent_id, new.group_id,
           new.group_index, nullif(new.group_members, 'null'), nullif(new.waiting_for, 0),
           nullif(new.prerequisites, 'null'),
           new.feed, nullif(new.dependents, 'null'), nullif(new.errbacks, 'null')
    FROM ROWS FROM (
        unnest(%(ids)s::text[]), jsonb_array_elements(%(args)s::jsonb),
        jsonb_array_elements(%(kwargs)s::jsonb), unnest(%(task_names)s::text[]),
        unnest(%(queues)s::text[]), unnest(%(priorities)s::integer[]),
        unnest(%(etas)s::timestamptz[]), unnest(%(countdowns)s::float8[]),
        unnest(%(expires_ats)s::timestamptz[]), unnest(%(expires_ins)s::float8[]),
        unnest(%(parent_ids)s::text[]), unnest(%(group_ids)s::text[]),
        unnest(%(group_indexes)s::integer[]), jsonb_array_elements(%(group_members)s::jsonb),
        unnest(%(waiting_fors)s::integer[]),
        jsonb_array_elements(%(prerequisites)s::jsonb), unnest(%(feeds)s::text[]),
        jsonb_array_elements(%(dependents)s::jsonb), jsonb_array_elements(%(errbacks)s::jsonb)
    ) AS new (id, args, kwargs, task_name, queue, priority, eta, countdown, expires_at,
              expires_in, parent_id, group_id, group_index, group_members, waiting_for,
              prerequisites,
              feed, dependents, errbacks)
    RETURNING status
)
SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM inserted WHERE status = 'PENDING' LIMIT 1
"""  # noqa: S608 (constants, no input)

# One array in, one JSON array out: a chord's body receives thousands of results, which as
# rows would cost the driver a JSON decoding each.
RESULTS_IN_ORDER = f"""
SELECT coalesce(jsonb_agg(job.result ORDER BY wanted.position), '[]')
FROM unnest(%(ids)s::text[]) WITH ORDINALITY AS wanted (id, position)
LEFT JOIN {jobs.name} AS job ON job.id = wanted.id
"""  # noqa: S608 (constants, no input)

CHORD_RESULTS = f"""
SELECT coalesce(jsonb_agg(job.result ORDER BY wanted.position), '[]')
FROM {jobs.name} AS body
CROSS JOIN LATERAL jsonb_array_elements_text(body.prerequisites)
    WITH ORDINALITY AS wanted (id, position)
LEFT JOIN {jobs.name} AS job ON job.id = wanted.id
WHERE body.id = %(id)s
"""  # noqa: S608 (constants, no input)

COPY_MIN_JOBS = 1000
"""Sends of this many jobs or more are written with COPY (``copy_jobs``); smaller ones with
the one INSERT, whose single round trip costs as much or less than COPY's five there."""

COPY_CHUNK = 5_000
"""Rows per piece of COPY data: the server inserts one piece while the next is built."""

# COPY takes no expressions: the times every job of a send shares are read first, in the
# same transaction, as INSERT_JOB computes them.
COPY_TIMES = """
SELECT coalesce(%(eta)s::timestamptz,
                statement_timestamp() + %(countdown)s::float8 * interval '1 second'),
       coalesce(%(expires_at)s::timestamptz,
                statement_timestamp() + %(expires_in)s::float8 * interval '1 second'),
       statement_timestamp()
"""

COPY_JOBS = f"COPY {jobs.name} ({_COLUMNS}) FROM STDIN"

NOTIFY_QUEUE = f"SELECT pg_notify('{NOTIFY_CHANNEL}', %(queue)s)"

VACUUM_STATUS = """
SELECT current_setting('autovacuum') = 'on' AS autovacuum, oldest.pid,
       oldest.usename AS username, oldest.application_name AS application, oldest.state,
       extract(epoch FROM statement_timestamp() - oldest.xact_start) AS held_for
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT pid, usename, application_name, state, xact_start
    FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND coalesce(backend_xmin, backend_xid) IS NOT NULL
      AND xact_start < statement_timestamp() - :seconds * interval '1 second'
    ORDER BY age(coalesce(backend_xmin, backend_xid)) DESC
    LIMIT 1
) AS oldest ON true
"""
"""What keeps vacuum from removing dead row versions: the server's autovacuum switched off,
or the transaction holding the oldest snapshot in this database (docs/storage.md, "A long
transaction elsewhere"). PostgreSQL hides when another role's transaction started from a role
without ``pg_read_all_stats``, so such a session is not named: its age is unknown."""

FINISH_JOBS = f"""
UPDATE {jobs.name} AS job
SET status = done.status,
    finished_at = statement_timestamp(),
    lease_expires_at = NULL, progress = NULL,
    result = CASE WHEN done.status = 'SUCCESS' THEN done.result ELSE job.result END,
    error_type = done.error_type,
    error_message = done.error_message,
    traceback = done.traceback
FROM unnest(%(ids)s::text[], %(attempts)s::integer[], %(statuses)s::text[],
            %(results)s::jsonb[], %(error_types)s::text[], %(error_messages)s::text[],
            %(tracebacks)s::text[])
     AS done (id, attempt, status, result, error_type, error_message, traceback)
WHERE job.id = done.id AND job.attempts = done.attempt
  AND coalesce(job.status, '') = 'STARTED' -- schema.STARTED_BY_ID: through the primary key
RETURNING job.id, job.attempts
"""  # noqa: S608 (constants, no input)
"""Finish many jobs in one statement, each fenced by its take (id, attempt and STARTED),
one row of arrays per job. Its text never changes with the batch's size, so
psycopg prepares it once per connection."""

FINISH_AND_WAKE = f"""
WITH finished AS ({FINISH_JOBS})
SELECT id, attempts FROM finished
WHERE (SELECT count(*) FROM (SELECT pg_notify('{NOTIFY_CHANNEL}', '')) AS woken) >= 0
"""  # noqa: S608 (constants, no input)
"""``FINISH_JOBS`` that wakes the listening workers at its commit, in the same statement:
jobs with a concurrency limit are among those it finishes, and their slots free (a worker
their limit held has no other way to hear of it before its next poll)."""

_FINISHED = FINISH_JOBS.replace(
    "RETURNING job.id, job.attempts",
    "RETURNING job.id, job.attempts, job.status, job.dependents, job.errbacks",
)

FINISH_AND_RELEASE = f"""
WITH finished AS ({_FINISHED}),
counted AS (
    SELECT dependent.id, count(*) AS successes
    FROM finished, jsonb_array_elements_text(finished.dependents) AS dependent (id)
    WHERE finished.status = 'SUCCESS'
    GROUP BY dependent.id
),
released AS (
    UPDATE {jobs.name} AS waiting
    SET waiting_for = waiting.waiting_for - counted.successes,
        status = CASE WHEN waiting.waiting_for > counted.successes THEN 'WAITING'
                      ELSE 'PENDING' END,
        scheduled_at = CASE WHEN waiting.waiting_for > counted.successes
                            THEN waiting.scheduled_at
                            ELSE statement_timestamp()
                                 + (waiting.scheduled_at - waiting.created_at) END
    FROM counted
    WHERE waiting.id = counted.id
      AND coalesce(waiting.status, '') = 'WAITING' -- schema.WAITING_BY_ID
    RETURNING waiting.status
),
unneeded AS (
    DELETE FROM {jobs.name}
    WHERE coalesce(status, '') = 'WAITING'  -- schema.WAITING_BY_ID
      AND id = ANY (ARRAY(  -- an array: probed by primary key
        SELECT jsonb_array_elements_text(errbacks) FROM finished WHERE status = 'SUCCESS'
    ))
)
SELECT id, attempts FROM finished
WHERE (SELECT count(*) FROM (SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM released
                             WHERE status = 'PENDING' LIMIT 1) AS woken) >= 0
"""  # noqa: S608 (constants, no input)
"""``FINISH_JOBS`` for a batch with jobs that workflow steps wait for: each success counts
its dependents down under their row locks, and the one statement that brings a count to zero
makes the step ready (a countdown counting from now) and wakes the workers; the link_error
callbacks of each success are deleted. READ COMMITTED re-reads a waiting row another
transaction changed before counting it down, so two batches finishing a chord's last header
jobs at once release its body once. The workers' answer is the takes, as ``FINISH_JOBS``'s;
the notification rides in the WHERE, whose subquery runs once."""

_POSTGRESQL = postgresql_dialect.dialect()  # type: ignore[no-untyped-call]
CLAIM_JOBS = f"""
SELECT {
    ", ".join(f"{column.compile(dialect=_POSTGRESQL)} AS {column.name}" for column in job_columns())
}
FROM sqlqueue_claim(%(limit)s, %(lease)s, %(worker_id)s, %(queues)s::text[]) AS sqlqueue_jobs
"""  # noqa: S608 (constants, no input)
"""The claim (see the module's docstring), a function made by migration 0004 so that the
planner always walks the ready index in order; the migration says why. Given queues, it
picks candidates from each queue's own index without locking them, then locks and takes only
those it keeps (migration 0006)."""


class PostgreSQLDialect(Dialect):
    name = "postgresql"
    upsert = staticmethod(postgresql_dialect.insert)
    driver_autocommit = True
    releases_in_finish = True
    supports_listen_notify = True

    def create_engine(self, url: URL) -> Engine:
        # postgresql:// means psycopg 3 here, whatever SQLAlchemy's default driver is.
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        threshold = _prepare_threshold(url)
        engine = sa.create_engine(url)
        if threshold is not KEEP_PSYCOPG_DEFAULT:
            _pass_prepare_threshold(engine, threshold)
        ping_when_idle(engine)
        return engine

    def create_async_engine(self, url: URL) -> AsyncEngine:
        # psycopg 3 is sync and async in one driver. The URL is the sync engine's, with its
        # prepare_threshold still in it: the async connections take it too.
        url = url.set(drivername="postgresql+psycopg")
        threshold = _prepare_threshold(url)
        engine = unpooled_async_engine(url)
        if threshold is not KEEP_PSYCOPG_DEFAULT:
            _pass_prepare_threshold(engine.sync_engine, threshold)
        return engine

    def insert_jobs(self, new_jobs: NewJobs) -> DriverStatement:
        # The wake-up travels with the rows, in the same statement. NOTIFY is
        # transactional, so listeners hear it at the commit (never for a rollback), once
        # per queue per transaction: PostgreSQL folds equal notifications into one.
        args, kwargs = new_jobs.arguments()
        if new_jobs.limits is not None:
            return DriverStatement(INSERT_LIMITED_JOBS, _many(new_jobs, args, kwargs))
        if len(new_jobs.ids) == 1:
            return DriverStatement(
                INSERT_JOB,
                {**_shared(new_jobs), "id": new_jobs.ids[0], "args": args[0], "kwargs": kwargs[0]},
            )
        return DriverStatement(INSERT_JOBS, _many(new_jobs, args, kwargs))

    def insert_unique_jobs(self, new_jobs: NewJobs) -> list[DriverStatement]:
        args, kwargs = new_jobs.arguments()
        params = {**_many(new_jobs, args, kwargs), "unique_key": new_jobs.unique_keys}
        limited = new_jobs.limits is not None
        return [
            DriverStatement(INSERT_LIMITED_UNIQUE_JOBS if limited else INSERT_UNIQUE_JOBS, params)
        ]

    def insert_workflow(self, plan: WorkflowPlan, max_payload_bytes: int) -> DriverStatement:
        rows = planned_rows(plan, max_payload_bytes)

        def column(name: str) -> list[Any]:
            return [getattr(row, name) for row in rows]

        def json_column(name: str) -> str:
            return json.dumps(column(name))

        return DriverStatement(
            INSERT_WORKFLOW,
            {
                "workflow_id": plan.id,
                "ids": column("id"),
                # Each job's arguments are JSON texts already: joined, not encoded again.
                "args": f"[{','.join(column('args'))}]",
                "kwargs": f"[{','.join(column('kwargs'))}]",
                "task_names": column("task_name"),
                "queues": column("queue"),
                "priorities": column("priority"),
                "etas": column("eta"),
                "countdowns": column("countdown"),
                "expires_ats": column("expires_at"),
                "expires_ins": column("expires_in"),
                "parent_ids": column("parent_id"),
                "group_ids": column("group_id"),
                "group_indexes": column("group_index"),
                "group_members": json_column("group_members"),
                "waiting_fors": column("waiting_for"),
                "prerequisites": json_column("prerequisites"),
                "feeds": column("feed"),
                "dependents": json_column("dependents"),
                "errbacks": json_column("errbacks"),
            },
        )

    def copy_jobs(self, new_jobs: NewJobs) -> CopyStatement | None:
        # The same rows as insert_jobs, streamed: the server's bulk insert path writes a
        # page of rows per WAL record, and the driver sends text it need not convert. Each
        # chunk's arguments are encoded (and checked) while the server takes in the one
        # before it, on the other side of the socket; a refused one ends the COPY, and
        # the transaction around it (the send's own, or a savepoint in the caller's) with it.
        if len(new_jobs.ids) < COPY_MIN_JOBS or new_jobs.limits is not None:
            return None  # (a limited task's: INSERT_LIMITED_JOBS writes their limits too)
        times = {
            "eta": new_jobs.eta,
            "countdown": new_jobs.countdown,
            "expires_at": new_jobs.expires_at,
            "expires_in": new_jobs.expires_in,
        }

        def rows(shared: Sequence[Any]) -> Iterator[str]:
            scheduled_at, expires_at, created_at = (
                _copy_text(value.isoformat()) if value is not None else "\\N" for value in shared
            )
            rest = (
                f"\t{_copy_text(new_jobs.task_name)}\t{_copy_text(new_jobs.queue)}"
                f"\t{new_jobs.priority}\tPENDING\t{scheduled_at}\t{expires_at}\t{created_at}\n"
            )
            ids = new_jobs.ids
            for start in range(0, len(ids), COPY_CHUNK):
                end = start + COPY_CHUNK
                args, kwargs = new_jobs.arguments(start, end)
                yield "".join(
                    [
                        f"{job_id}\t{_copy_text(job_args)}\t{_copy_text(job_kwargs)}{rest}"
                        for job_id, job_args, job_kwargs in zip(
                            ids[start:end], args, kwargs, strict=True
                        )
                    ]
                )

        return CopyStatement(
            before=DriverStatement(COPY_TIMES, times),
            copy=COPY_JOBS,
            rows=rows,
            after=DriverStatement(NOTIFY_QUEUE, {"queue": new_jobs.queue}),
        )

    def claim_jobs(
        self, limit: int, queues: Sequence[str] | None, worker_id: str, lease: float
    ) -> DriverStatement:
        return DriverStatement(
            CLAIM_JOBS,
            {
                "limit": limit,
                "lease": lease,
                "worker_id": worker_id,
                "queues": list(queues) if queues else None,
            },
        )

    def record_outcomes(
        self, outcomes: Sequence[tuple[Take, Outcome]], releasing: bool = False, wake: bool = False
    ) -> list[Statement]:
        # Successes and failures, nearly every outcome of a busy worker, go in one statement;
        # retries (rarer, and each with its own delay) keep their per-job UPDATE.
        statements: list[Statement] = [
            self.retry_job(take, outcome) for take, outcome in outcomes if outcome.again
        ]
        finished = [(take, o) for take, o in outcomes if not o.again]
        if finished:
            columns = [o.finish_values() for _, o in finished]
            # (With steps to release, the store wakes the workers: the release wakes them
            # only for the steps it makes ready.)
            finish = FINISH_AND_RELEASE if releasing else FINISH_AND_WAKE if wake else FINISH_JOBS
            statements.append(
                DriverStatement(
                    finish,
                    {
                        "ids": [take[0] for take, _ in finished],
                        "attempts": [take[1] for take, _ in finished],
                        "statuses": [o.status.value for _, o in finished],
                        **{
                            f"{name}s": [values[name] for values in columns]
                            for name in ("result", "error_type", "error_message", "traceback")
                        },
                    },
                )
            )
        return statements

    def results_in_order(self, job_ids: Sequence[str]) -> DriverStatement:
        return DriverStatement(RESULTS_IN_ORDER, {"ids": list(job_ids)})

    def chord_results(self, job_id: str) -> DriverStatement:
        return DriverStatement(CHORD_RESULTS, {"id": job_id})

    def vacuum_status(self, long_transaction: float) -> Executable:
        return sa.text(VACUUM_STATUS).bindparams(seconds=long_transaction)

    def wake_workers(self) -> DriverStatement:
        # Any notification wakes a listener; the payload names no queue, so all of them look.
        return DriverStatement(f"SELECT pg_notify('{NOTIFY_CHANNEL}', '')", {})

    def announce_revoke(self, job_id: str) -> DriverStatement:
        return DriverStatement(f"SELECT pg_notify('{REVOKE_CHANNEL}', %(id)s)", {"id": job_id})

    listen = staticmethod(listen)  # the LISTEN connection: postgresql_listen.py

    def duplicate_id(self, error: BaseException) -> bool:
        return (
            isinstance(error, psycopg.errors.UniqueViolation)
            and error.diag.constraint_name == "pk_sqlqueue_jobs"
        )

    def now(self) -> sa.ColumnElement[datetime]:
        # statement_timestamp(), not now(): a job enqueued late in a caller's long
        # transaction must count its countdown from the call, not from the BEGIN.
        return sa.func.statement_timestamp(type_=sa.DateTime(timezone=True))

    def now_plus(self, seconds: float) -> sa.ColumnElement[datetime]:
        return self.now() + timedelta(seconds=seconds)


PREPARE_THRESHOLD = "prepare_threshold"
"""The URL query parameter that sets psycopg's ``prepare_threshold`` on the connections of the
engines sqlqueue builds: ``none`` behind a pooler in transaction mode (docs/databases.md)."""


KEEP_PSYCOPG_DEFAULT = object()
"""No ``prepare_threshold`` in the URL: psycopg's own default (5) stands."""


def _prepare_threshold(url: URL) -> int | object | None:
    """The ``PREPARE_THRESHOLD`` a URL gives, as psycopg takes it (checked when the engine is
    made, not at its first connection), or ``KEEP_PSYCOPG_DEFAULT``."""
    given = url.query.get(PREPARE_THRESHOLD)
    if given is None:
        return KEEP_PSYCOPG_DEFAULT
    threshold = given if isinstance(given, str) else ",".join(given)
    if threshold.lower() == "none":
        return None
    if threshold.isascii() and threshold.isdigit():
        return int(threshold)
    raise ConfigurationError(
        f"{PREPARE_THRESHOLD}={threshold} in the URL: give {PREPARE_THRESHOLD}=none (never "
        "prepare statements, as a pooler in transaction mode needs) or a number of runs."
    )


def _pass_prepare_threshold(engine: Engine, threshold: int | object | None) -> None:
    """Hand psycopg the threshold as a number or None: SQLAlchemy passes the URL's query on
    to ``connect()`` as strings, which psycopg does not read. The URL keeps it, so that an
    engine made from this one's URL (the async twin) prepares as this one does."""

    def convert(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
        params[PREPARE_THRESHOLD] = threshold

    event.listen(engine, "do_connect", convert)


def _shared(new_jobs: NewJobs) -> dict[str, Any]:
    """The parameters every job of a send shares (``_SHARED``)."""
    return {
        "task_name": new_jobs.task_name,
        "queue": new_jobs.queue,
        "priority": new_jobs.priority,
        "eta": new_jobs.eta,
        "countdown": new_jobs.countdown,
        "expires_at": new_jobs.expires_at,
        "expires_in": new_jobs.expires_in,
    }


def _many(new_jobs: NewJobs, args: list[str], kwargs: list[str]) -> dict[str, Any]:
    """The parameters of a send of many jobs: the ids as one array, the arguments' JSON texts
    joined into one JSON array each."""
    return {
        **_shared(new_jobs),
        "id": new_jobs.ids,
        "args": f"[{','.join(args)}]",
        "kwargs": f"[{','.join(kwargs)}]",
        **_limits(new_jobs),
    }


def _limits(new_jobs: NewJobs) -> dict[str, Any]:
    """The parameters of a limited task's jobs (``_LIMITS``, and their keys); none for others."""
    limits = new_jobs.limits
    if limits is None:
        return {}
    return {
        "limit_key": limits.keys,
        "concurrency_limit": limits.concurrency_limit,
        "rate_interval": limits.rate_interval,
    }


def _copy_text(value: str) -> str:
    """A value as COPY's text format spells it. JSON from ``encode_json`` and names hold no
    control characters (they are escaped, or refused), so a backslash is all that needs it."""
    return value.replace("\\", "\\\\") if "\\" in value else value
