"""Settling: what a job's outcome does to the workflow steps that wait for it.

Run in the transaction that records the outcome, so the step's release and the outcome
commit together or not at all. A success counts down each waiting dependent under its row
lock, and the one transaction that brings a count to zero releases the step: a chord's body
is released exactly once, by whichever header job finishes last, and a header job that
retries releases nothing, as it has not finished. A failure stops what waits for it, through
every step after: a chain's later steps become REVOKED carrying the failure, a chord's body
FAILURE with a ``ChordError``; the ``link_error`` callbacks of a failed job are released (each
receives its id when taken), and the callbacks no failure will release are deleted.

On PostgreSQL and MySQL the successes a worker records are settled by the finishing
statements themselves (``Dialect.releases_in_finish``); everything else comes here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Connection, RowMapping

from sqlqueue.dialects.base import Dialect
from sqlqueue.jobs import JobStatus, as_utc
from sqlqueue.plans import follows_group

FAILED = frozenset({JobStatus.FAILURE, JobStatus.REJECTED})
"""Outcomes that release ``link_error`` callbacks: the task failed (revoked and ignored
jobs did not)."""


@dataclass(frozen=True, slots=True)
class _Cause:
    """Why a waiting step will never run: the job that did not succeed, and its error
    (empty when it was revoked or ignored rather than failed)."""

    job_id: str
    error: Mapping[str, Any]


def settle(conn: Connection, dialect: Dialect, job_ids: Iterable[str]) -> bool:
    """Release or stop the steps waiting for these jobs, which have just finished, in
    ``conn``'s transaction; returns whether a step was released (workers should be woken)."""
    finished = _rows(conn, dialect.jobs_settled, job_ids)
    successes: Counter[str] = Counter()
    releases: set[str] = set()
    """Steps to release."""
    unneeded: list[str] = []
    stopped: list[tuple[str, _Cause]] = []
    for row in finished:
        status = JobStatus(row["status"])
        if status is JobStatus.SUCCESS:
            successes.update(row["dependents"] or ())
            unneeded.extend(row["errbacks"] or ())
            continue
        _fail_callbacks(row, status in FAILED, releases, unneeded)
        cause = _Cause(row["id"], _error_of(row) if status in FAILED else {})
        stopped.extend((job_id, cause) for job_id in row["dependents"] or ())
    for job_id in sorted(successes):
        left = conn.execute(dialect.count_down(job_id, successes[job_id])).scalar()
        if left == 0:
            releases.add(job_id)
    _stop(conn, dialect, stopped, releases, unneeded)
    for chunk in chunks(unneeded):
        conn.execute(dialect.drop_waiting(chunk))
    if releases:
        _release(conn, dialect, releases)
    return bool(releases)


def _fail_callbacks(row: RowMapping, failed: bool, releases: set[str], unneeded: list[str]) -> None:
    for errback in row["errbacks"] or ():
        if failed:
            releases.add(errback)
        else:
            unneeded.append(errback)


def _error_of(row: RowMapping) -> dict[str, Any]:
    return {
        "error_type": row["error_type"],
        "error_message": row["error_message"],
        "traceback": row["traceback"],
    }


def _stop(
    conn: Connection,
    dialect: Dialect,
    stopped: list[tuple[str, _Cause]],
    releases: set[str],
    unneeded: list[str],
) -> None:
    """Stop the steps that wait for a job that did not succeed, and every step after them,
    a level of the workflow at a time, each level's rows locked in id order."""
    while stopped:
        level: dict[str, _Cause] = {}
        for job_id, cause in stopped:
            level.setdefault(job_id, cause)
        stopped = []
        for row in _rows(conn, dialect.lock_waiting, level):
            cause = level[row["id"]]
            if follows_group(row["feed"], row["parent_id"], row["prerequisites"] or ()):
                error = _chord_error(cause)
                conn.execute(dialect.stop_waiting(row["id"], JobStatus.FAILURE, error))
                _fail_callbacks(row, True, releases, unneeded)
                cause = _Cause(row["id"], error)
            else:
                error = dict(cause.error) or {
                    "error_message": f"The step before it, job {cause.job_id}, was revoked."
                }
                conn.execute(dialect.stop_waiting(row["id"], JobStatus.REVOKED, error))
                _fail_callbacks(row, False, releases, unneeded)
            stopped.extend((job_id, cause) for job_id in row["dependents"] or ())


def _chord_error(cause: _Cause) -> dict[str, Any]:
    if cause.error:
        what = f"raised {cause.error['error_type']}: {cause.error['error_message']}"
    else:
        what = "was revoked"
    return {
        "error_type": "ChordError",
        "error_message": f"Dependency {cause.job_id} {what}",
        "traceback": None,
    }


def _release(conn: Connection, dialect: Dialect, releases: Iterable[str]) -> None:
    """Make these steps ready; a countdown of theirs counts from now. What they receive
    from the steps before them is read when they are taken (``JobStore.claim_jobs``)."""
    for row in _rows(conn, dialect.released_jobs, releases):
        delay = (as_utc(row["scheduled_at"]) - as_utc(row["created_at"])).total_seconds()  # type: ignore[operator]
        conn.execute(dialect.release_waiting(row["id"], max(0.0, delay)))


CHUNK = 1000
"""Ids per statement: a chord's body may wait for more jobs than a statement takes
parameters (PostgreSQL's driver allows 65,535, SQLite 32,766)."""


def chunks(job_ids: Iterable[str]) -> Iterator[list[str]]:
    """The distinct ids in ascending order, a chunk at a time (so locks follow id order)."""
    ordered = sorted(set(job_ids))
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]


def _rows(
    conn: Connection, statement: Callable[[Sequence[str]], Select[Any]], job_ids: Iterable[str]
) -> list[RowMapping]:
    return [row for chunk in chunks(job_ids) for row in conn.execute(statement(chunk)).mappings()]
