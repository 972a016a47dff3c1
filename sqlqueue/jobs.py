"""A job is one requested run of a task: its status and a snapshot of its row."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlqueue.limits import Limits
from sqlqueue.serialization import encode_calls


class JobStatus(enum.StrEnum):
    """Celery's state names, stored in the table as these very strings."""

    WAITING = "WAITING"
    """A workflow's step waiting for the jobs before it; never taken until they release it."""
    PENDING = "PENDING"
    STARTED = "STARTED"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"
    REJECTED = "REJECTED"
    """The task raised ``Reject``: failed for good, without its retries."""
    IGNORED = "IGNORED"
    """The task raised ``Ignore``: finished, with no outcome to keep."""


READY_STATUSES = (JobStatus.PENDING, JobStatus.RETRY)
"""Statuses of jobs waiting to be taken (once their ``scheduled_at`` has come)."""

FINISHED_STATUSES = frozenset(
    {
        JobStatus.SUCCESS,
        JobStatus.FAILURE,
        JobStatus.REVOKED,
        JobStatus.REJECTED,
        JobStatus.IGNORED,
    }
)
"""Statuses a job never leaves."""


def as_utc(value: datetime | None) -> datetime | None:
    """Attach UTC to the naive timestamps SQLite returns; every stored time is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A snapshot of one row of ``sqlqueue_jobs``; it does not change when the row does."""

    id: str
    task_name: str
    queue: str
    priority: int
    args: list[Any]
    kwargs: dict[str, Any]
    status: JobStatus
    attempts: int
    """How many times a worker has taken the job; it is also the fencing token of the take."""
    retries: int
    expired_leases: int
    scheduled_at: datetime
    expires_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_expires_at: datetime | None
    worker_id: str | None
    result: Any
    error_type: str | None
    error_message: str | None
    traceback: str | None
    progress: dict[str, Any] | None
    """What the task last said of itself while running (``update_state``): its state and meta."""
    workflow_id: str | None = None
    """The workflow it belongs to (``plans``), if any."""
    parent_id: str | None = None
    """The job, or group, whose outcome it follows in its workflow."""
    group_id: str | None = None
    group_index: int | None = None
    releases: bool = False
    """Whether other jobs wait for its outcome: recording it must release or stop them."""
    feed: str | None = None
    """What it receives from the jobs it waited for (``plans.Feed``), put before its
    arguments when it is taken: stored apart, since those jobs finish after it is sent."""
    concurrency_limit: int | None = None
    """How many jobs of its group may run at once (docs/limits.md); a finish frees a slot."""

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Job:
        """Build a snapshot from a result row of the jobs table, read as ``job_columns``."""
        return cls(
            id=str(row["id"]),
            task_name=row["task_name"],
            queue=row["queue"],
            priority=row["priority"],
            args=row["args"],
            kwargs=row["kwargs"],
            status=JobStatus(row["status"]),
            attempts=row["attempts"],
            retries=row["retries"],
            expired_leases=row["expired_leases"],
            scheduled_at=as_utc(row["scheduled_at"]),  # type: ignore[arg-type]
            expires_at=as_utc(row["expires_at"]),
            created_at=as_utc(row["created_at"]),  # type: ignore[arg-type]
            started_at=as_utc(row["started_at"]),
            finished_at=as_utc(row["finished_at"]),
            lease_expires_at=as_utc(row["lease_expires_at"]),
            worker_id=row["worker_id"],
            result=row["result"],
            error_type=row["error_type"],
            error_message=row["error_message"],
            traceback=row["traceback"],
            progress=row["progress"],
            workflow_id=row["workflow_id"],
            parent_id=row["parent_id"],
            group_id=row["group_id"],
            group_index=row["group_index"],
            releases=row["releases"],
            feed=row["feed"],
            concurrency_limit=row["concurrency_limit"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NewJobs:
    """Jobs of one task sent in one call with the same options, ready to write.

    A send is one task and one set of options for any number of calls, so only the ids and
    the arguments vary from job to job. The calls fit the task's signature; their JSON, the
    last check, is made as they are written (``arguments``), and the encoding that checked
    them is the one stored: a large send encodes each chunk of its COPY while the database
    takes in the previous one, and a refused call ends the send with nothing written.
    """

    task_name: str
    queue: str
    priority: int
    eta: datetime | None
    """When the jobs become ready; None means ``countdown`` seconds after the insert."""
    countdown: float
    expires_at: datetime | None
    """When jobs not yet started expire; None means ``expires_in`` seconds after the
    insert, or never when that is None too."""
    expires_in: float | None
    ids: list[str]
    calls: Sequence[tuple[Sequence[Any], Mapping[str, Any]]]
    """Each job's positional and keyword arguments, as Python values."""
    max_payload_bytes: int
    """The most bytes of JSON one job's arguments may take (``conf.max_payload_bytes``)."""
    unique_keys: list[str] | None = None
    """Each job's unique key, distinct (``unique``), or None for jobs without one."""
    limits: Limits | None = None
    """What the claim holds them to (``limits``), or None for jobs of a task without limits."""

    def only(self, positions: Sequence[int], unique_keys: list[str]) -> NewJobs:
        """The jobs at these positions only, with these unique keys (one each)."""
        limits = self.limits
        if limits is not None:
            limits = replace(limits, keys=[limits.keys[at] for at in positions])
        return replace(
            self,
            ids=[self.ids[at] for at in positions],
            calls=[self.calls[at] for at in positions],
            unique_keys=unique_keys,
            limits=limits,
        )

    def arguments(self, start: int = 0, end: int | None = None) -> tuple[list[str], list[str]]:
        """The JSON texts of the args and of the kwargs of ``calls[start:end]``; raises
        ``SerializationError`` or ``InvalidOptionError`` for the first call that cannot be
        stored."""
        return encode_calls(self.task_name, self.calls[start:end], self.max_payload_bytes)
