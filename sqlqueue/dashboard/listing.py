"""The dashboard's list of jobs: one page at a time, after a keyset cursor (never OFFSET,
which reads every row it skips), each page read from an index in the order it keeps.

- A finished status: newest finished first, ``(finished_at, id)`` descending. With a queue,
  one range of ``ix_sqlqueue_jobs_outcomes`` (queue, status, finished_at); without, one such
  range per queue that has history (found by ``status.queues_with_history``'s skip scan),
  each read no further than a page, merged.
- A live status (waiting, ready, retrying, running): newest sent first, ``(created_at, id)``
  descending, among that status's jobs, read from the partial index that holds them (few, next
  to the history: ``sqlqueue status`` counts them all).
- Any status: by id, the primary key.

A task filter narrows what those ranges read; it has no index of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sqlqueue.jobs import FINISHED_STATUSES, JobStatus, as_utc
from sqlqueue.schema import FINISHED_WHERE, LEASED_WHERE, READY_PARTS, jobs
from sqlqueue.status import queues_with_history
from sqlqueue.store import JobStore

PAGE_SIZE = 50

WAITING_WHERE = sa.text("workflow_id IS NOT NULL AND status IN ('WAITING', 'PENDING', 'RETRY')")
"""``ix_sqlqueue_jobs_workflow``'s predicate: a waiting job is always a workflow's step."""

COLUMNS = (
    jobs.c.id,
    jobs.c.task_name,
    jobs.c.queue,
    jobs.c.status,
    jobs.c.created_at,
    jobs.c.finished_at,
    jobs.c.attempts,
    jobs.c.error_type,
)


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What the jobs page was asked for; empty strings are no filter."""

    status: str = ""
    queue: str = ""
    task: str = ""


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None
    """Where the next page starts; None on the last page."""


def read_page(store: JobStore, chosen: JobFilter, cursor: str | None) -> Page:
    """One page of jobs after ``cursor`` (None: the first page)."""
    after = _parse_cursor(cursor)
    if chosen.status in FINISHED_STATUSES:
        queues = [chosen.queue] if chosen.queue else _queues_with_history(store)
        parts = [_finished(chosen, queue, after) for queue in queues]
        key = jobs.c.finished_at.name
    elif chosen.status:
        parts = [_live(chosen, where, after) for where in _live_wheres(chosen.status)]
        key = jobs.c.created_at.name
    else:
        parts = [_any(chosen, after)]
        key = ""
    if not parts:
        return Page([], None)
    if len(parts) == 1:
        statement: sa.Select[Any] = parts[0]
    else:
        merged = sa.union_all(*(sa.select(part.subquery()) for part in parts)).subquery()
        statement = (
            sa.select(merged)
            .order_by(merged.c[key].desc(), merged.c.id.desc())
            .limit(PAGE_SIZE + 1)
        )
    (rows,) = store.read([statement])
    found: list[dict[str, Any]] = [
        {
            name: as_utc(value) if isinstance(value, datetime) else value
            for name, value in row.items()
        }
        for row in rows
    ]
    if len(found) <= PAGE_SIZE:
        return Page(found, None)
    last = found[PAGE_SIZE - 1]
    return Page(found[:PAGE_SIZE], _cursor(last[key] if key else None, last["id"]))


def _queues_with_history(store: JobStore) -> list[str]:
    (rows,) = store.read([queues_with_history()])
    return [row["queue"] for row in rows]


def _live_wheres(status: str) -> list[sa.TextClause]:
    if status in (JobStatus.PENDING, JobStatus.RETRY):
        return list(READY_PARTS)
    if status == JobStatus.STARTED:
        return [LEASED_WHERE]
    if status == JobStatus.WAITING:
        return [WAITING_WHERE]
    raise ValueError(f"unknown status {status!r}")


def _filtered(statement: sa.Select[Any], chosen: JobFilter) -> sa.Select[Any]:
    if chosen.queue:
        statement = statement.where(jobs.c.queue == chosen.queue)
    if chosen.task:
        statement = statement.where(jobs.c.task_name == chosen.task)
    return statement


def _finished(
    chosen: JobFilter, queue: str, after: tuple[datetime | None, str] | None
) -> sa.Select[Any]:
    statement: sa.Select[Any] = sa.select(*COLUMNS).where(
        FINISHED_WHERE, jobs.c.queue == queue, jobs.c.status == chosen.status
    )
    if after is not None:
        statement = statement.where(_before(jobs.c.finished_at, after))
    statement = _filtered(statement, JobFilter(task=chosen.task))
    return statement.order_by(jobs.c.finished_at.desc(), jobs.c.id.desc()).limit(PAGE_SIZE + 1)


def _live(
    chosen: JobFilter, where: sa.TextClause, after: tuple[datetime | None, str] | None
) -> sa.Select[Any]:
    statement: sa.Select[Any] = sa.select(*COLUMNS).where(where, jobs.c.status == chosen.status)
    if after is not None:
        statement = statement.where(_before(jobs.c.created_at, after))
    statement = _filtered(statement, chosen)
    return statement.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(PAGE_SIZE + 1)


def _any(chosen: JobFilter, after: tuple[datetime | None, str] | None) -> sa.Select[Any]:
    statement: sa.Select[Any] = sa.select(*COLUMNS)
    if after is not None:
        statement = statement.where(jobs.c.id > after[1])
    return _filtered(statement, chosen).order_by(jobs.c.id).limit(PAGE_SIZE + 1)


def _before(column: sa.Column[Any], after: tuple[datetime | None, str]) -> sa.ColumnElement[bool]:
    """``(column, id) < after``, its values bound with the columns' types (SQLite's times
    are text, compared as the column's type writes them)."""
    at, job_id = after
    return sa.tuple_(column, jobs.c.id) < sa.tuple_(
        sa.literal(at, column.type), sa.literal(job_id, jobs.c.id.type)
    )


def _cursor(at: datetime | None, job_id: str) -> str:
    return f"{at.isoformat() if at is not None else ''}|{job_id}"


def _parse_cursor(cursor: str | None) -> tuple[datetime | None, str] | None:
    """A cursor this module wrote; anything else is ``ValueError``."""
    if not cursor:
        return None
    at, separator, job_id = cursor.partition("|")
    if not separator or not job_id:
        raise ValueError(f"not a page cursor: {cursor!r}")
    return (datetime.fromisoformat(at) if at else None, job_id)
