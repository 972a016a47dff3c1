"""Outcome: what one run of a job came to, as execution decides it and the store writes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlqueue.jobs import JobStatus
from sqlqueue.serialization import Failure


@dataclass(frozen=True, slots=True)
class Outcome:
    """A success with its result, a failure, a retry after a countdown, a requeue
    (``Reject(requeue=True)``) or a drop (``Ignore``).

    The result is JSON text, encoded once by the check that the task returned storable data
    (``execution.run_task``), and written to the row as it is. Which take of which job it
    belongs to travels beside it: an outcome is the same whichever worker wrote it.
    """

    status: JobStatus
    """SUCCESS, FAILURE, REJECTED or IGNORED (the job is finished; the last two when the task
    raised ``Reject`` or ``Ignore``), or RETRY or PENDING (it goes back to the queue: PENDING
    when the task raised ``Reject(requeue=True)``, which is not counted as a retry)."""
    result_json: str | None = None
    """For a success: the task's return value as JSON text; None when the task ignores
    its result (``ignore_result``)."""
    failure: Failure | None = None
    """For a failure: why. For a retry: the error that asked for it, if any. For a drop or
    a requeue: the ``Ignore`` or ``Reject``."""
    countdown: float = 0.0
    """For a retry: seconds before the job is ready again."""
    new_args: list[Any] | None = None
    """For a retry: the arguments of the next run, when the task gave new ones."""
    new_kwargs: dict[str, Any] | None = None
    """For a retry: the keyword arguments of the next run, when the task gave new ones."""

    @classmethod
    def succeeded(cls, result_json: str | None) -> Outcome:
        return cls(JobStatus.SUCCESS, result_json=result_json)

    @classmethod
    def failed(cls, failure: Failure) -> Outcome:
        return cls(JobStatus.FAILURE, failure=failure)

    @classmethod
    def retrying(
        cls,
        countdown: float,
        failure: Failure | None,
        new_args: list[Any] | None = None,
        new_kwargs: dict[str, Any] | None = None,
    ) -> Outcome:
        return cls(
            JobStatus.RETRY,
            failure=failure,
            countdown=countdown,
            new_args=new_args,
            new_kwargs=new_kwargs,
        )

    @classmethod
    def requeued(cls, failure: Failure) -> Outcome:
        return cls(JobStatus.PENDING, failure=failure)

    @classmethod
    def rejected(cls, failure: Failure) -> Outcome:
        return cls(JobStatus.REJECTED, failure=failure)

    @classmethod
    def ignored(cls, failure: Failure) -> Outcome:
        return cls(JobStatus.IGNORED, failure=failure)

    @property
    def again(self) -> bool:
        """Whether the job goes back to the queue (a retry or a requeue) rather than finish."""
        return self.status is JobStatus.RETRY or self.status is JobStatus.PENDING

    def error_values(self) -> dict[str, Any]:
        """The error columns this outcome sets: a success clears the error an earlier try
        left (as Celery's result does), a failure stores its own, and a retry stores the
        error that asked for it, or leaves the columns alone when there was none."""
        if self.failure is not None:
            return self.failure.as_values()
        if self.status is JobStatus.SUCCESS:
            return {"error_type": None, "error_message": None, "traceback": None}
        return {}

    def finish_values(self) -> dict[str, Any]:
        """The columns a success or a failure writes, as the drivers take them: the result
        as JSON text (a failure stores none), and the error."""
        return {"result": self.result_json, **self.error_values()}
