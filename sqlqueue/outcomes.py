"""Outcome: what one run of a job came to, as execution decides it and the store writes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlqueue.jobs import JobStatus
from sqlqueue.serialization import Failure


@dataclass(frozen=True, slots=True)
class Outcome:
    """A success with its result, a failure, or a retry after a countdown.

    The result is JSON text, encoded once by the check that the task returned storable data
    (``execution.run_task``), and written to the row as it is. Which take of which job it
    belongs to travels beside it: an outcome is the same whichever worker wrote it.
    """

    status: JobStatus
    """SUCCESS or FAILURE (the job is finished), or RETRY (it goes back to the queue)."""
    result_json: str | None = None
    """For a success: the task's return value as JSON text."""
    failure: Failure | None = None
    """For a failure: why. For a retry: the error that asked for it, if any."""
    countdown: float = 0.0
    """For a retry: seconds before the job is ready again."""

    @classmethod
    def succeeded(cls, result_json: str) -> Outcome:
        return cls(JobStatus.SUCCESS, result_json=result_json)

    @classmethod
    def failed(cls, failure: Failure) -> Outcome:
        return cls(JobStatus.FAILURE, failure=failure)

    @classmethod
    def retrying(cls, countdown: float, failure: Failure | None) -> Outcome:
        return cls(JobStatus.RETRY, failure=failure, countdown=countdown)

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
