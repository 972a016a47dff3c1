"""The dashboard's list of jobs: one page at a time, after a keyset cursor (never OFFSET,
which reads every row it skips), each page read from an index in the order it keeps.

- A finished status: newest finished first, ``(finished_at, id)`` descending. With a queue,
  one range of ``ix_sqlqueue_jobs_outcomes`` (queue, status, finished_at); without, one such
  range per queue that has history (found by ``status.queues_with_history``'s skip scan),
  each read no further than a page, merged.
- A live status (waiting, ready, retrying, running): newest sent first, ``(created_at, id)``
  descending, among that status's jobs, read from the partial index that holds them (few, next
  to the history: ``sqlqueue status`` counts them all).
- Any status: by id, descending, the primary key.

A task has no index: a task filter reads those ranges as far as ``SEARCH_CAP`` jobs each, no
further. A page that found fewer jobs of the task than it holds, in a range that went on,
says where it stopped, and its Next link reads on from there.
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
SEARCH_CAP = 5_000
"""How many jobs of each range a page filtered by task reads at most."""

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

Key = tuple[Any, ...]
"""Where a job stands in a list: (time, id), or (id,) in the list of any status."""


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
    searched_to: datetime | str | None = None
    """With a task filter: where this page stopped reading, short of a full page (a time,
    or an id in the list of any status); None when it read every job it could."""


def read_page(store: JobStore, chosen: JobFilter, cursor: str | None) -> Page:
    """One page of jobs after ``cursor`` (None: the first page)."""
    after = _parse_cursor(cursor)
    time_column: sa.Column[Any] | None
    if chosen.status in FINISHED_STATUSES:
        queues = [chosen.queue] if chosen.queue else _queues_with_history(store)
        time_column = jobs.c.finished_at
        parts = [_finished(chosen.status, queue, after) for queue in queues]
    elif chosen.status:
        time_column = jobs.c.created_at
        parts = [_live(chosen, where, after) for where in _live_wheres(chosen.status)]
    else:
        time_column = None
        parts = [_any(chosen.queue, after)]
    if not parts:
        return Page([], None)
    order = [*([time_column.desc()] if time_column is not None else []), jobs.c.id.desc()]
    statements: list[sa.Select[Any] | sa.CompoundSelect[Any]] = [
        _searched(part.order_by(*order), chosen.task, time_column)
        if chosen.task
        else part.order_by(*order).limit(PAGE_SIZE + 1)
        for part in parts
    ]
    time_name = time_column.name if time_column is not None else None

    def key(row: dict[str, Any]) -> Key:
        return (row[time_name], row["id"]) if time_name else (row["id"],)

    found: list[dict[str, Any]] = []
    stops: list[Key] = []
    for rows in store.read(statements):
        for row in rows:
            job = {
                name: as_utc(value) if isinstance(value, datetime) else value
                for name, value in row.items()
                if name != "edge"
            }
            if row.get("edge"):
                stops.append(key(job))
            elif not chosen.task or job["task_name"] == chosen.task:
                found.append(job)
    # Where a search stopped short, the jobs older than the newest stop are not all known:
    # this page ends there, and the next one reads on from it.
    stop = max(stops) if stops else None
    found.sort(key=key, reverse=True)
    shown = [job for job in found if stop is None or key(job) >= stop]
    if len(shown) > PAGE_SIZE:
        return Page(shown[:PAGE_SIZE], _cursor(key(shown[PAGE_SIZE - 1])))
    if stop is not None:
        return Page(shown, _cursor(stop), searched_to=stop[0])
    return Page(shown, None)


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


def _finished(status: str, queue: str, after: Key | None) -> sa.Select[Any]:
    statement: sa.Select[Any] = sa.select(*COLUMNS).where(
        FINISHED_WHERE, jobs.c.queue == queue, jobs.c.status == status
    )
    if after is not None:
        statement = statement.where(_before(jobs.c.finished_at, after))
    return statement


def _live(chosen: JobFilter, where: sa.TextClause, after: Key | None) -> sa.Select[Any]:
    statement: sa.Select[Any] = sa.select(*COLUMNS).where(where, jobs.c.status == chosen.status)
    if chosen.queue:
        statement = statement.where(jobs.c.queue == chosen.queue)
    if after is not None:
        statement = statement.where(_before(jobs.c.created_at, after))
    return statement


def _any(queue: str, after: Key | None) -> sa.Select[Any]:
    statement: sa.Select[Any] = sa.select(*COLUMNS)
    if queue:
        statement = statement.where(jobs.c.queue == queue)
    if after is not None:
        statement = statement.where(jobs.c.id < after[-1])
    return statement


def _searched(
    ordered: sa.Select[Any], task: str, time_column: sa.Column[Any] | None
) -> sa.CompoundSelect[Any]:
    """The jobs of ``task`` among the first ``SEARCH_CAP`` of an ordered range, and the last
    job read (``edge``) when the range goes on beyond them (it held that many)."""
    window = ordered.limit(SEARCH_CAP).cte("searched")
    newest_first = [
        *([window.c[time_column.name].desc()] if time_column is not None else []),
        window.c.id.desc(),
    ]
    oldest_first = [
        *([window.c[time_column.name].asc()] if time_column is not None else []),
        window.c.id.asc(),
    ]
    columns = [window.c[column.name] for column in COLUMNS]
    read = sa.select(sa.func.count()).select_from(window).scalar_subquery()
    matches = (
        sa.select(*columns, sa.literal(False).label("edge"))
        .where(window.c.task_name == task)
        .order_by(*newest_first)
        .limit(PAGE_SIZE + 1)
        .subquery()
    )
    edge = (
        sa.select(*columns, sa.literal(True).label("edge"))
        .where(read == SEARCH_CAP)
        .order_by(*oldest_first)
        .limit(1)
        .subquery()
    )
    return sa.union_all(sa.select(matches), sa.select(edge))


def _before(column: sa.Column[Any], after: Key) -> sa.ColumnElement[bool]:
    """``(column, id) < after``, its values bound with the columns' types (SQLite's times
    are text, compared as the column's type writes them)."""
    at, job_id = after
    return sa.tuple_(column, jobs.c.id) < sa.tuple_(
        sa.literal(at, column.type), sa.literal(job_id, jobs.c.id.type)
    )


def _cursor(key: Key) -> str:
    if len(key) == 1:
        return f"|{key[0]}"
    at, job_id = key
    return f"{at.isoformat()}|{job_id}"


def _parse_cursor(cursor: str | None) -> Key | None:
    """A cursor this module wrote; anything else is ``ValueError``."""
    if not cursor:
        return None
    at, separator, job_id = cursor.partition("|")
    if not separator or not job_id:
        raise ValueError(f"not a page cursor: {cursor!r}")
    return (datetime.fromisoformat(at), job_id) if at else (job_id,)
