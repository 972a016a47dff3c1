"""What an operator reads about the queue: counts per queue, the workers, one job.

``sqlqueue status``, ``workers`` and ``inspect`` print these; the dashboard will show the
same values, so the queries live here, apart from both, and return plain dataclasses. Each
query reads an index (a test holds them to their plans on PostgreSQL), and none grows with
the history the table keeps: the live jobs (ready, scheduled, retrying, running) are few
next to the finished ones and are counted exactly; a count of finished jobs stops at
``HISTORY_COUNT_CAP``, each one range of ``ix_sqlqueue_jobs_outcomes`` read no further.

Times are the database's clock, read with the counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sqlqueue.conf import LONG_TRANSACTION, WORKER_GONE_AFTER
from sqlqueue.dialects.base import Dialect
from sqlqueue.jobs import JobStatus, as_utc
from sqlqueue.schema import FINISHED_WHERE, LEASED_WHERE, READY_PARTS, jobs, workers
from sqlqueue.store import JobStore

HISTORY_COUNT_CAP = 10_000
"""Where a count of finished jobs stops: a queue that failed this many jobs in the last hour
shows "10000+". Counting further would read every one of them."""

HOUR = 3600.0
DAY = 24 * HOUR


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """One queue's jobs. Ready, scheduled and retrying split the jobs waiting to be taken:
    due now; sent for later (a countdown, an eta); waiting for a retry's delay."""

    queue: str
    ready: int
    scheduled: int
    retrying: int
    running: int
    failed_last_hour: int
    failed_last_day: int
    succeeded_last_day: int
    """These three stop at ``HISTORY_COUNT_CAP``."""
    oldest_ready_age: float | None
    """Seconds the longest-waiting ready job has been due; None with none ready."""


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """A worker's row (``heartbeats``), and whether it is gone (no heartbeat for
    ``WORKER_GONE_AFTER`` seconds)."""

    id: str
    host: str
    pid: int
    queues: list[str] | None
    """None: every queue."""
    concurrency: int
    pool: str
    version: str
    started_at: datetime
    last_seen_at: datetime
    jobs_running: int
    last_seen_ago: float
    gone: bool


@dataclass(frozen=True, slots=True)
class Vacuum:
    """What keeps the database from removing the dead row versions jobs leave (PostgreSQL):
    the server's autovacuum switched off, or a transaction in this database open for longer
    than ``LONG_TRANSACTION`` (the one with the oldest snapshot). Another role's session is
    seen only by a role with ``pg_read_all_stats``."""

    autovacuum: bool
    holder_pid: int | None
    holder_username: str | None
    holder_application: str | None
    holder_state: str | None
    held_for: float | None

    @property
    def healthy(self) -> bool:
        return self.autovacuum and self.holder_pid is None


@dataclass(frozen=True, slots=True)
class Status:
    """The queue at one moment of the database's clock."""

    at: datetime
    queues: list[QueueStatus]
    workers: list[WorkerStatus]
    vacuum: Vacuum | None
    """None where vacuum is not a concern (SQLite)."""

    @property
    def live_workers(self) -> list[WorkerStatus]:
        return [worker for worker in self.workers if not worker.gone]


def read_status(store: JobStore) -> Status:
    """Every queue that has jobs, live or finished, and every worker."""
    dialect = store.dialect
    clock, waiting, running, known, worker_rows = store.read(
        [
            sa.select(dialect.now().label("now")),
            waiting_statement(dialect.now()),
            running_statement(),
            queues_with_history(),
            workers_statement(dialect.now()),
        ]
    )
    at = as_utc(clock[0]["now"])
    names = sorted({row["queue"] for row in (*waiting, *running, *known)})
    histories = store.read([history_statement(dialect, name) for name in names])
    by_queue: dict[str, Mapping[Any, Any]] = {row["queue"]: row for row in waiting}
    running_in = {row["queue"]: row["running"] for row in running}
    queues = []
    for name, (history,) in zip(names, histories, strict=True):
        row = by_queue.get(name, {})
        oldest = as_utc(row.get("oldest_due"))
        queues.append(
            QueueStatus(
                queue=name,
                ready=row.get("ready", 0),
                scheduled=row.get("scheduled", 0),
                retrying=row.get("retrying", 0),
                running=running_in.get(name, 0),
                failed_last_hour=history["failed_last_hour"],
                failed_last_day=history["failed_last_day"],
                succeeded_last_day=history["succeeded_last_day"],
                oldest_ready_age=(
                    max(0.0, (at - oldest).total_seconds())  # type: ignore[operator]
                    if oldest is not None
                    else None
                ),
            )
        )
    return Status(
        at=at,  # type: ignore[arg-type]
        queues=queues,
        workers=[_worker(row) for row in worker_rows],
        vacuum=read_vacuum(store),
    )


def read_vacuum(store: JobStore, long_transaction: float = LONG_TRANSACTION) -> Vacuum | None:
    statement = store.dialect.vacuum_status(long_transaction)
    if statement is None:
        return None
    ((row,),) = store.read([statement])
    return Vacuum(
        autovacuum=row["autovacuum"],
        holder_pid=row["pid"],
        holder_username=row["username"],
        holder_application=row["application"],
        holder_state=row["state"],
        held_for=None if row["held_for"] is None else float(row["held_for"]),
    )


def read_workers(store: JobStore) -> list[WorkerStatus]:
    """Every worker with a row: live ones, and those gone but not yet forgotten."""
    (rows,) = store.read([workers_statement(store.dialect.now())])
    return [_worker(row) for row in rows]


def read_job(store: JobStore, job_id: str) -> dict[str, Any] | None:
    """Every column of one job, the workflow's lists of ids included; None: no such job."""
    (rows,) = store.read([sa.select(jobs).where(jobs.c.id == job_id)])
    return dict(rows[0]) if rows else None


QUEUES_WITH_HISTORY = f"""
WITH RECURSIVE found(queue) AS (
    SELECT (SELECT queue FROM {jobs.name} WHERE {FINISHED_WHERE} ORDER BY queue LIMIT 1)
    UNION ALL
    SELECT (SELECT queue FROM {jobs.name} WHERE {FINISHED_WHERE} AND queue > found.queue
            ORDER BY queue LIMIT 1)
    FROM found WHERE found.queue IS NOT NULL
)
SELECT queue FROM found WHERE queue IS NOT NULL
"""  # noqa: S608 (constants, no input)


def waiting_statement(now: sa.ColumnElement[datetime]) -> sa.Select[Any]:
    """The jobs waiting to be taken, per queue: ``ix_sqlqueue_jobs_ready_in_queue`` for the
    jobs without limits, ``ix_sqlqueue_jobs_limited`` for the others."""
    ready = sa.union_all(
        *(
            sa.select(jobs.c.queue, jobs.c.status, jobs.c.scheduled_at).where(part)
            for part in READY_PARTS
        )
    ).subquery()
    due = ready.c.scheduled_at <= now
    pending = ready.c.status == JobStatus.PENDING.value
    return sa.select(
        ready.c.queue,
        # count(CASE …), not count(*) FILTER (…): MySQL has no FILTER.
        sa.func.count(sa.case((due, 1))).label("ready"),
        sa.func.count(sa.case((sa.and_(pending, sa.not_(due)), 1))).label("scheduled"),
        sa.func.count(sa.case((sa.and_(sa.not_(pending), sa.not_(due)), 1))).label("retrying"),
        sa.func.min(sa.case((due, ready.c.scheduled_at))).label("oldest_due"),
    ).group_by(ready.c.queue)


def running_statement() -> sa.Select[Any]:
    """The running jobs, per queue: ``ix_sqlqueue_jobs_leased``."""
    return (
        sa.select(jobs.c.queue, sa.func.count().label("running"))
        .where(LEASED_WHERE)
        .group_by(jobs.c.queue)
    )


def queues_with_history() -> sa.TextClause:
    """The queues that have finished jobs, one probe of ``ix_sqlqueue_jobs_outcomes`` per
    queue (a skip scan: the next queue name after the last one found), never one per job."""
    return sa.text(QUEUES_WITH_HISTORY)


def history_statement(dialect: Dialect, queue: str) -> sa.Select[Any]:
    """One queue's outcomes lately, each count one range of ``ix_sqlqueue_jobs_outcomes``
    read at most ``HISTORY_COUNT_CAP`` entries far."""
    return sa.select(
        _capped(dialect, queue, JobStatus.FAILURE, HOUR).label("failed_last_hour"),
        _capped(dialect, queue, JobStatus.FAILURE, DAY).label("failed_last_day"),
        _capped(dialect, queue, JobStatus.SUCCESS, DAY).label("succeeded_last_day"),
    )


def _capped(dialect: Dialect, queue: str, status: JobStatus, seconds: float) -> Any:
    some = (
        sa.select(sa.literal(1))
        .where(FINISHED_WHERE)
        .where(jobs.c.queue == queue, jobs.c.status == status.value)
        .where(jobs.c.finished_at > dialect.now_plus(-seconds))
        .limit(HISTORY_COUNT_CAP)
        .subquery()
    )
    return sa.select(sa.func.count()).select_from(some).scalar_subquery()


def workers_statement(now: sa.ColumnElement[datetime]) -> sa.Select[Any]:
    """Every worker's row, with the database's clock to tell the gone ones."""
    return sa.select(workers, now.label("now")).order_by(workers.c.host, workers.c.pid)


def _worker(row: Any) -> WorkerStatus:
    now = as_utc(row["now"])
    last_seen = as_utc(row["last_seen_at"])
    ago = max(0.0, (now - last_seen).total_seconds())  # type: ignore[operator]
    return WorkerStatus(
        id=row["id"],
        host=row["host"],
        pid=row["pid"],
        queues=row["queues"],
        concurrency=row["concurrency"],
        pool=row["pool"],
        version=row["version"],
        started_at=as_utc(row["started_at"]),  # type: ignore[arg-type]
        last_seen_at=last_seen,  # type: ignore[arg-type]
        jobs_running=row["jobs_running"],
        last_seen_ago=ago,
        gone=ago > WORKER_GONE_AFTER,
    )
