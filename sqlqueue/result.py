"""AsyncResult: the receipt of a job, readable from any process that has the app."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from sqlqueue.exceptions import JobNotFoundError, TaskFailedError, TaskRevokedError, TimeoutError
from sqlqueue.jobs import FINISHED_STATUSES, Job, JobStatus

if TYPE_CHECKING:
    from sqlqueue.app import SQLQueue

POLL_START = 0.02
"""Seconds ``get()`` first waits between reads of the job."""

POLL_MAX = 0.5
"""Longest wait, in seconds, between two reads in ``get()``."""


class AsyncResult:
    """A job's status and outcome, read from its row each time they are asked for."""

    __slots__ = ("app", "id")
    # A large send makes one per job: without a __dict__ each is one object for the garbage
    # collector to track and walk, not two.

    def __init__(self, job_id: str, app: SQLQueue) -> None:
        self.id = job_id
        self.app = app

    def __repr__(self) -> str:
        return f"<AsyncResult {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AsyncResult) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def status(self) -> str:
        """One of PENDING, STARTED, RETRY, SUCCESS, FAILURE, REVOKED."""
        return self._job().status.value

    state = status

    def ready(self) -> bool:
        """Whether the job has finished: succeeded, failed or been revoked."""
        return self._job().status in FINISHED_STATUSES

    def successful(self) -> bool:
        return self._job().status is JobStatus.SUCCESS

    def failed(self) -> bool:
        return self._job().status is JobStatus.FAILURE

    @property
    def result(self) -> Any:
        """The return value; for a failed job the ``TaskFailedError``; None until finished."""
        job = self._job()
        if job.status is JobStatus.FAILURE:
            return _failure(job)
        return job.result if job.status is JobStatus.SUCCESS else None

    @property
    def traceback(self) -> str | None:
        """The worker's traceback text of the last failure, if any."""
        return self._job().traceback

    def get(self, timeout: float | None = None, propagate: bool = True) -> Any:
        """Wait for the job to finish and return its result.

        Raises:
            TimeoutError: not finished within ``timeout`` seconds.
            TaskFailedError: the task failed (unless ``propagate=False``, which returns it).
            TaskRevokedError: the job was revoked (unless ``propagate=False``).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = POLL_START
        job = self._job()
        while job.status not in FINISHED_STATUSES:
            if deadline is not None and time.monotonic() >= deadline:
                raise _still_waiting(job, timeout)
            wait = pause if deadline is None else min(pause, max(0.0, deadline - time.monotonic()))
            time.sleep(wait)
            pause = min(pause * 1.5, POLL_MAX)
            job = self._job()
        return _outcome(job, propagate)

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> Any:
        """``get`` for async code: waits with ``asyncio.sleep`` and reads with the async driver."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = POLL_START
        job = await self._ajob()
        while job.status not in FINISHED_STATUSES:
            if deadline is not None and time.monotonic() >= deadline:
                raise _still_waiting(job, timeout)
            await asyncio.sleep(
                pause if deadline is None else min(pause, deadline - time.monotonic())
            )
            pause = min(pause * 1.5, POLL_MAX)
            job = await self._ajob()
        return _outcome(job, propagate)

    def revoke(self) -> bool:
        """Make sure a job that has not started never runs; False if it already started."""
        return self.app.store.revoke_job(self.id)

    async def _ajob(self) -> Job:
        return self._found(await self.app.store.aget_job(self.id))

    def _job(self) -> Job:
        return self._found(self.app.store.get_job(self.id))

    def _found(self, job: Job | None) -> Job:
        if job is None:
            raise JobNotFoundError(
                f"No job with id {self.id} in this app's database; check the id and that "
                "this app uses the database the job was sent to."
            )
        return job


class EagerResult(AsyncResult):
    """The outcome of a task run inline by ``task_always_eager``; it touches no database."""

    def __init__(
        self, job_id: str, app: SQLQueue, *, value: Any = None, error: TaskFailedError | None = None
    ) -> None:
        super().__init__(job_id, app)
        self._value = value
        self._error = error

    @property
    def status(self) -> str:
        return (JobStatus.FAILURE if self._error else JobStatus.SUCCESS).value

    state = status

    def ready(self) -> bool:
        return True

    def successful(self) -> bool:
        return self._error is None

    def failed(self) -> bool:
        return self._error is not None

    @property
    def result(self) -> Any:
        return self._error if self._error is not None else self._value

    @property
    def traceback(self) -> str | None:
        return self._error.traceback if self._error is not None else None

    def get(self, timeout: float | None = None, propagate: bool = True) -> Any:
        if self._error is not None and propagate:
            raise self._error
        return self.result

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> Any:
        return self.get(timeout, propagate)

    def revoke(self) -> bool:
        return False


def _still_waiting(job: Job, timeout: float | None) -> TimeoutError:
    return TimeoutError(
        f"Job {job.id} ({job.task_name}) is still {job.status} after {timeout:g}s; is a worker "
        f"running for its queue {job.queue!r}? Start one with `sqlqueue worker -A <module>`."
    )


def _failure(job: Job) -> TaskFailedError:
    return TaskFailedError(
        job.task_name, job.error_type or "Error", job.error_message or "", job.traceback
    )


def _outcome(job: Job, propagate: bool) -> Any:
    if job.status is JobStatus.SUCCESS:
        return job.result
    if job.status is JobStatus.FAILURE:
        error = _failure(job)
        if propagate:
            raise error
        return error
    reason = f" ({job.error_message})" if job.error_message else ""
    revoked = TaskRevokedError(
        f"Job {job.id} ({job.task_name}) was revoked{reason}; it has no result."
    )
    if propagate:
        raise revoked
    return revoked
