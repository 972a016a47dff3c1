"""MySQL's claim of limited jobs, which PostgreSQL's claim function makes in SQL.

The same walk as PostgreSQL's ``sqlqueue_claim`` (migration 0012), statement by statement in
the claim's transaction: the ready limited jobs' groups in key order, the first of each looked
at, a group whose limit lets nothing start skipped, and a task whose bucket is empty skipped
with all its groups. Migration 0014's generated columns stand in for the partial indexes
MySQL lacks: ``limited_ready`` leads ``ix_sqlqueue_jobs_limited`` and ``limited_running`` is
``ix_sqlqueue_jobs_limited_running``, so finished jobs are never read.

Two claims at once stay within a limit because each counts under a row lock held to its
commit. A rate-limited task's bucket row in ``sqlqueue_rate_limits`` is locked before its
tokens are read, as on PostgreSQL. A group with a concurrency limit is locked through its row
in ``sqlqueue_limit_groups`` (an upsert, which locks the row whether it inserts or finds it),
where PostgreSQL takes an advisory lock; under it the count of the group's running jobs, a
plain read in READ COMMITTED, sees every take committed before the lock was granted, and no
other claim of the group can take a job before this one commits. (Locking the group's first
ready job would not do: a job sent, or come due, ahead of it meanwhile is another row.)

Every claim takes its locks in one order, buckets and groups in key order (a task's groups
follow its name, and its bucket is locked at the first of them), then the jobs, ``SKIP
LOCKED``; nothing else locks buckets or groups, and finishers, renewals and rescues lock only
running jobs, which a claim never locks: a claim waits only for another claim of the same
task or group, and never deadlocks with a finisher.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.engine import Connection, RowMapping

from sqlqueue.dialects.mysql_sql import UTC_NOW, with_index
from sqlqueue.limits import burst, tokens
from sqlqueue.schema import JobId, job_columns, jobs, rate_limits

LIMITED_READY: sa.ColumnElement[str] = sa.literal_column("limited_ready", JobId)
"""Migration 0014's generated column: the ``limit_key`` of a ready job, else NULL."""

LIMITED_RUNNING: sa.ColumnElement[str] = sa.literal_column("limited_running", JobId)
"""Migration 0014's generated column: the ``limit_key`` of a running job, else NULL."""

LIMITED_INDEX = "ix_sqlqueue_jobs_limited"
LIMITED_RUNNING_INDEX = "ix_sqlqueue_jobs_limited_running"

limit_groups = sa.Table(
    "sqlqueue_limit_groups",
    sa.MetaData(),
    sa.Column("limit_key", JobId, primary_key=True),
)
"""MySQL's own table (migration 0014), not in ``schema.metadata``: one row per group with a
concurrency limit, the lock its claims count under."""


def claim_limited(
    conn: Connection,
    limit: int,
    queues: Sequence[str] | None,
    taken_values: dict[str, Any],
) -> list[RowMapping]:
    """Take up to ``limit`` ready limited jobs that their limits let start now, writing
    ``taken_values`` on each (``Dialect.taken``); the taken rows (``job_columns``)."""
    taken: list[RowMapping] = []
    after = ""
    bucket_task: str | None = None  # the task whose bucket this claim has made sure of
    while len(taken) < limit:
        # Any queue's: the worker's queues are asked for only where the limits let a job
        # start, so a held backlog in another queue is passed over by one probe.
        head = conn.execute(next_group(after)).first()
        if head is None:
            break
        key, task_name, concurrency_limit, interval = head
        after = key
        room = limit - len(taken)
        if interval is not None:
            if bucket_task != task_name:
                conn.execute(_new_bucket(task_name))
                bucket_task = task_name
            full_at, now = conn.execute(_locked_bucket(task_name)).one()
            free = tokens(full_at, now, interval)
            if free < 1:
                after = f"{task_name} "  # past every group of this task (``limits``)
                continue
            room = min(room, free)
        if concurrency_limit is not None:
            conn.execute(_lock_group(key))
            running = conn.execute(group_running_count(key)).scalar_one()
            room = min(room, concurrency_limit - running)
            if room < 1:
                continue
        ids = sorted(conn.execute(group_ready_jobs(key, queues, room)).scalars())
        if not ids:
            continue
        conn.execute(jobs.update().where(jobs.c.id.in_(ids)).values(taken_values))
        taken.extend(conn.execute(sa.select(*job_columns()).where(jobs.c.id.in_(ids))).mappings())
        if interval is not None:
            _fill(
                conn,
                task_name,
                max(full_at, now) + timedelta(seconds=len(ids) * interval),
                interval,
            )
    return taken


def _due() -> list[sa.ColumnElement[bool]]:
    return [
        jobs.c.scheduled_at <= UTC_NOW,
        sa.or_(jobs.c.expires_at.is_(None), jobs.c.expires_at > UTC_NOW),
    ]


def next_group(after: str) -> sa.Select[Any]:
    """The group after ``after`` in key order with a job ready and due, read without locks
    from the front of its index (its key, its task and its limits)."""
    return with_index(
        sa.select(LIMITED_READY, jobs.c.task_name, jobs.c.concurrency_limit, jobs.c.rate_interval)
        .where(LIMITED_READY > after, *_due())
        .order_by(LIMITED_READY)
        .limit(1),
        LIMITED_INDEX,
    )


def group_ready_jobs(key: str, queues: Sequence[str] | None, room: int) -> sa.Select[Any]:
    """The group's first ``room`` jobs ready and due (of ``queues``), in claim order, locked;
    those another transaction holds (a revoke, a claim's that counted them) skipped."""
    statement = (
        sa.select(jobs.c.id)
        .where(LIMITED_READY == key, *_due())
        .order_by(jobs.c.priority.desc(), jobs.c.scheduled_at, jobs.c.id)
        .limit(room)
        .with_for_update(skip_locked=True)
    )
    if queues:
        statement = statement.where(jobs.c.queue.in_(list(queues)))
    return with_index(statement, LIMITED_INDEX)


def group_running_count(key: str) -> sa.Select[Any]:
    """How many of the group's jobs run, those whose lease has not run out (a killed
    worker's stop counting when theirs does)."""
    return with_index(
        sa.select(sa.func.count())
        .select_from(jobs)
        .where(LIMITED_RUNNING == key, jobs.c.lease_expires_at > UTC_NOW),
        LIMITED_RUNNING_INDEX,
    )


def _lock_group(key: str) -> sa.Executable:
    insert = mysql_dialect.insert(limit_groups).values(limit_key=key)
    return insert.on_duplicate_key_update(limit_key=insert.inserted.limit_key)


def _new_bucket(task_name: str) -> sa.Executable:
    """A full bucket for a task that has none yet; nothing if it has one."""
    insert = mysql_dialect.insert(rate_limits).values(
        task_name=task_name, full_at=UTC_NOW, next_at=UTC_NOW
    )
    return insert.on_duplicate_key_update(task_name=rate_limits.c.task_name)


def _locked_bucket(task_name: str) -> sa.Select[Any]:
    """When the task's bucket is full again, and the database's now, the bucket locked."""
    return (
        sa.select(rate_limits.c.full_at, UTC_NOW)
        .where(rate_limits.c.task_name == task_name)
        .with_for_update()
    )


def _fill(conn: Connection, task_name: str, full_at: datetime, interval: float) -> None:
    """Write the bucket after a take: full again at ``full_at``, holding a job again once a
    full bucket's worth but one has dripped back in."""
    next_at = full_at - timedelta(seconds=(burst(interval) - 1) * interval)
    conn.execute(
        rate_limits.update()
        .where(rate_limits.c.task_name == task_name)
        .values(full_at=full_at, next_at=next_at)
    )
