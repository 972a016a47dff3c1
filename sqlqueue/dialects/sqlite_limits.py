"""SQLite's claim of limited jobs, which PostgreSQL's claim function makes in SQL.

The same walk as PostgreSQL's ``sqlqueue_claim`` (migration 0012), statement by statement
in the claim's transaction: the ready limited jobs' groups in key order, the first of each
looked at, a group whose limit lets nothing start skipped, and a task whose bucket is empty
skipped with all its groups. SQLite's claim holds the database's write lock from its BEGIN
(``BEGIN IMMEDIATE``), so no other claim runs between the count of a group's running jobs
and the taking of its jobs: nothing more is needed to keep two workers within a limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, RowMapping

from sqlqueue.jobs import JobStatus, as_utc
from sqlqueue.limits import burst, tokens
from sqlqueue.schema import (
    LIMITED_READY_WHERE,
    LIMITED_RUNNING_WHERE,
    job_columns,
    jobs,
    rate_limits,
)


def claim_limited(
    conn: Connection, limit: int, queues: Sequence[str] | None, worker_id: str, lease: float
) -> list[RowMapping]:
    """Take up to ``limit`` ready limited jobs that their limits let start now, and lease
    them; the taken rows (``job_columns``)."""
    now = datetime.now(UTC)
    taken: list[RowMapping] = []
    after = ""
    while len(taken) < limit:
        # Any queue's: the worker's queues are asked for only where the limits let a job
        # start, so a held backlog in another queue is passed over by one probe.
        head = conn.execute(_first_of_next_group(after, now)).first()
        if head is None:
            break
        key, task_name, concurrency_limit, interval = head
        after = key
        room = limit - len(taken)
        if interval is not None:
            full_at = _bucket(conn, task_name, now)
            free = tokens(full_at, now, interval)
            if free < 1:
                after = f"{task_name} "  # past every group of this task (``limits``)
                continue
            room = min(room, free)
        if concurrency_limit is not None:
            running = conn.execute(
                sa.select(sa.func.count())
                .select_from(jobs)
                .where(jobs.c.limit_key == key)
                .where(LIMITED_RUNNING_WHERE)
                .where(jobs.c.lease_expires_at > now)
            ).scalar_one()
            room = min(room, concurrency_limit - running)
            if room < 1:
                continue
        rows = conn.execute(_take(key, room, queues, worker_id, lease, now)).mappings().all()
        taken.extend(rows)
        if interval is not None and rows:
            _fill(
                conn,
                task_name,
                max(full_at, now) + timedelta(seconds=len(rows) * interval),
                interval,
            )
    return taken


def _ready(key: str | None, queues: Sequence[str] | None, now: datetime) -> list[Any]:
    where: list[Any] = [
        LIMITED_READY_WHERE,
        jobs.c.scheduled_at <= now,
        sa.or_(jobs.c.expires_at.is_(None), jobs.c.expires_at > now),
    ]
    if key is not None:
        where.append(jobs.c.limit_key == key)
    if queues:
        where.append(jobs.c.queue.in_(list(queues)))
    return where


def _first_of_next_group(after: str, now: datetime) -> sa.Select[Any]:
    return (
        sa.select(
            jobs.c.limit_key, jobs.c.task_name, jobs.c.concurrency_limit, jobs.c.rate_interval
        )
        .where(*_ready(None, None, now))
        .where(jobs.c.limit_key > after)
        .order_by(jobs.c.limit_key)
        .limit(1)
    )


def _take(
    key: str, room: int, queues: Sequence[str] | None, worker_id: str, lease: float, now: datetime
) -> sa.Update:
    first = (
        sa.select(jobs.c.id)
        .where(*_ready(key, queues, now))
        .order_by(jobs.c.limit_key, jobs.c.priority.desc(), jobs.c.scheduled_at, jobs.c.id)
        .limit(room)
    )
    return (
        jobs.update()
        .where(jobs.c.id.in_(first.scalar_subquery()))
        .values(
            status=JobStatus.STARTED.value,
            attempts=jobs.c.attempts + 1,
            started_at=now,
            lease_expires_at=now + timedelta(seconds=lease),
            worker_id=worker_id,
        )
        .returning(*job_columns())
    )


def _bucket(conn: Connection, task_name: str, now: datetime) -> datetime:
    """When the task's bucket is full again (``now`` for a task without a row yet)."""
    full_at = conn.execute(
        sa.select(rate_limits.c.full_at).where(rate_limits.c.task_name == task_name)
    ).scalar()
    return now if full_at is None else as_utc(full_at)  # type: ignore[return-value]


def _fill(conn: Connection, task_name: str, full_at: datetime, interval: float) -> None:
    """Write the bucket after a take: full again at ``full_at``, holding a job again once a
    full bucket's worth but one has dripped back in."""
    next_at = full_at - timedelta(seconds=(burst(interval) - 1) * interval)
    upsert = sqlite_insert(rate_limits).values(
        task_name=task_name, full_at=full_at, next_at=next_at
    )
    conn.execute(
        upsert.on_conflict_do_update(
            index_elements=[rate_limits.c.task_name],
            set_={"full_at": upsert.excluded.full_at, "next_at": upsert.excluded.next_at},
        )
    )
