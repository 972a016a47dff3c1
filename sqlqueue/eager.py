"""Eager mode (``task_always_eager``): a send runs its task inline, retries included."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlqueue.conf import EAGER_MAX_RETRIES
from sqlqueue.exceptions import MaxRetriesExceededError, TaskFailedError, TaskRevokedError
from sqlqueue.execution import run_task
from sqlqueue.jobs import JobStatus
from sqlqueue.outcomes import Outcome
from sqlqueue.request import Request
from sqlqueue.result import AsyncResult, EagerResult
from sqlqueue.serialization import Failure
from sqlqueue.tasks import Task

if TYPE_CHECKING:
    from sqlqueue.app import SQLQueue
    from sqlqueue.send_options import SendOptions


def run_all_eagerly(
    app: SQLQueue,
    task: Task[..., Any],
    ids: Sequence[str],
    calls: Sequence[tuple[Sequence[Any], dict[str, Any]]],
    options: SendOptions,
) -> list[AsyncResult]:
    """Run each call in turn, as the jobs of these ids would have run on a worker (sent
    with ``options``, of which only the queue shows, in ``request.queue``)."""
    return [
        run_eagerly(app, task, job_id, list(args), kwargs, options.queue)  # as a worker reads them
        for job_id, (args, kwargs) in zip(ids, calls, strict=True)
    ]


def run_eagerly(
    app: SQLQueue,
    task: Task[..., Any],
    job_id: str,
    args: list[Any],
    kwargs: dict[str, Any],
    queue: str,
    *,
    propagate: bool | None = None,
) -> EagerResult:
    """Run one call to its outcome; a failure is raised when ``propagate`` (default:
    ``task_eager_propagates``). A retry runs at once, with the new arguments it gave, if
    any. The result's status is the one a worker would store (as Celery's eager runs), but a
    ``Reject`` ends the run ``REJECTED`` even with ``requeue=True``, since nothing would take
    it again."""
    retries = 0
    while True:
        request = Request(
            id=job_id,
            task=task.name,
            args=args,
            kwargs=kwargs,
            retries=retries,
            attempts=retries + 1,
            queue=queue,
            is_eager=True,
        )
        outcome = run_task(task, request)
        if outcome.status is not JobStatus.RETRY:
            break
        if retries >= max(EAGER_MAX_RETRIES, task.retry_policy.max_retries or 0):
            outcome = _retries_exhausted(task, retries, outcome)
            break
        retries += 1  # at once: the countdown is not waited for, as in Celery
        args = args if outcome.new_args is None else outcome.new_args
        kwargs = kwargs if outcome.new_kwargs is None else outcome.new_kwargs
    if outcome.status is JobStatus.SUCCESS:
        # What a worker's result would read back from its row: tuples come back as lists.
        value = None if outcome.result_json is None else json.loads(outcome.result_json)
        return EagerResult(job_id, app, value=value)
    failure = cast(Failure, outcome.failure)  # not a success: a failure, which says why
    error: TaskFailedError | TaskRevokedError
    if outcome.status is JobStatus.IGNORED:
        error = TaskRevokedError(f"Job {job_id} ({task.name}) was ignored: {failure.error_message}")
    else:
        error = TaskFailedError(
            task.name, failure.error_type, failure.error_message, failure.traceback
        )
    if app.conf.task_eager_propagates if propagate is None else propagate:
        raise error
    status = JobStatus.REJECTED if outcome.status is JobStatus.PENDING else outcome.status
    return EagerResult(job_id, app, error=error, status=status)


def _retries_exhausted(task: Task[..., Any], retries: int, retrying: Outcome) -> Outcome:
    last = retrying.failure
    reason = f" Its last error: {last.error_type}: {last.error_message}" if last else ""
    return Outcome.failed(
        Failure.from_exception(
            MaxRetriesExceededError(
                f"Task {task.name!r} was retried {retries} times in eager mode and asked for "
                f"another; eager mode allows EAGER_MAX_RETRIES ({EAGER_MAX_RETRIES}) retries, "
                "or max_retries when higher, as its retries run at once and might never end."
                f"{reason}"
            )
        )
    )
