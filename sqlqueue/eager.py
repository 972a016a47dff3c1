"""Eager mode (``task_always_eager``): a send runs its task inline, retries included; a
workflow runs its jobs inline in its plan's order, as workers would have."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlqueue.conf import EAGER_MAX_RETRIES
from sqlqueue.exceptions import (
    ChordError,
    MaxRetriesExceededError,
    TaskFailedError,
    TaskRevokedError,
    UnknownTaskError,
)
from sqlqueue.execution import run_task
from sqlqueue.group_result import GroupResult
from sqlqueue.jobs import JobStatus
from sqlqueue.outcomes import Outcome
from sqlqueue.plans import Feed, PlannedJob, WorkflowPlan, follows_group
from sqlqueue.request import Request
from sqlqueue.result import AsyncResult, EagerResult
from sqlqueue.serialization import Failure, encode_calls
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


def run_workflow_eagerly(
    app: SQLQueue, plan: WorkflowPlan, *, propagate: bool | None = None
) -> dict[str, EagerResult]:
    """Run a workflow's jobs inline, in the plan's order, and return their results by id,
    as the store settles them (``settle``) when workers run them.

    A job whose prerequisites all succeeded runs with what they feed it. One that follows a
    job that did not succeed never runs: it ends REVOKED, its ``get()`` raising the failure
    that stopped it; but a chord's body fails, with a ``ChordError``. A ``link_error``
    callback runs only if its job failed. With ``propagate`` (default:
    ``task_eager_propagates``), the first failure is raised once every job has had its turn.
    """
    for job in plan.jobs:  # refused before any runs, as a send is before any is written
        if job.task_name not in app.tasks:
            raise UnknownTaskError(
                f"No task named {job.task_name!r} is registered here to run inline "
                "(task_always_eager, or apply()); import the module that defines it."
            )
        encode_calls(job.task_name, [(job.args, job.kwargs)], app.conf.max_payload_bytes)
    results: dict[str, EagerResult] = {}
    causes: dict[str, tuple[str, TaskFailedError | None]] = {}
    """Why a job did not succeed: the job that stopped it (itself, or one before it), and
    that job's failure (None when it was revoked or ignored)."""
    for job in plan.jobs:
        results[job.id] = _run_step(app, job, [results[i] for i in job.prerequisites], causes)
    _give_parents(app, plan, results)
    if app.conf.task_eager_propagates if propagate is None else propagate:
        for result in results.values():
            if result.status in _FAILED:
                raise result.info
    return results


_FAILED = (JobStatus.FAILURE.value, JobStatus.REJECTED.value)
"""What releases a ``link_error`` callback: the task failed (a revoked or ignored job did not)."""


def _give_parents(app: SQLQueue, plan: WorkflowPlan, results: dict[str, EagerResult]) -> None:
    """Set each result's ``parent``, as the store's rows give it: the job or group it followed."""
    members: dict[str, list[EagerResult]] = {}
    for job in sorted(plan.jobs, key=lambda job: job.group_index or 0):
        if job.group_id is not None:
            members.setdefault(job.group_id, []).append(results[job.id])
    for job in plan.jobs:
        if job.parent_id in results:
            results[job.id].parent = results[job.parent_id]
        elif job.parent_id is not None:  # a group (with no jobs, when it was empty)
            results[job.id].parent = GroupResult(job.parent_id, members.get(job.parent_id, []), app)


def _run_step(
    app: SQLQueue,
    job: PlannedJob,
    before: list[EagerResult],
    causes: dict[str, tuple[str, TaskFailedError | None]],
) -> EagerResult:
    """Run one job of a workflow whose prerequisites (``before``) have had their turn."""
    failed = next((result for result in before if result.status in _FAILED), None)
    if job.feed is Feed.FAILED_ID:
        if failed is None:  # its job did not fail: never run (the store deletes its row)
            causes[job.id] = (job.id, None)
            return _stopped(app, job, "its job did not fail")
        fed: list[Any] = [failed.id]
    elif all(result.successful() for result in before):
        values = [result.result for result in before]
        fed = {None: [], Feed.RESULT: values[:1], Feed.RESULTS: [values]}[job.feed]
    else:
        culprit = next(result for result in before if not result.successful())
        cause_id, failure = causes[culprit.id]
        if follows_group(job.feed, job.parent_id, job.prerequisites):  # a chord's body fails
            what = f"raised {failure.exc_type}: {failure.exc_message}" if failure else "was revoked"
            chord_error = ChordError(
                job.task_name, "ChordError", f"Dependency {cause_id} {what}", None
            )
            causes[job.id] = (job.id, chord_error)
            return EagerResult(job.id, app, error=chord_error, status=JobStatus.FAILURE)
        causes[job.id] = (cause_id, failure)
        if failure is None:
            return _stopped(app, job, f"The step before it, job {cause_id}, was revoked.")
        # As the store keeps it: the stopping failure, in the row of the step it stopped.
        error = TaskFailedError(
            job.task_name, failure.exc_type, failure.exc_message, failure.traceback
        )
        return EagerResult(job.id, app, error=error, status=JobStatus.REVOKED)
    task = app.tasks[job.task_name]
    result = run_eagerly(
        app, task, job.id, [*fed, *job.args], dict(job.kwargs), job.options.queue, propagate=False
    )
    if result.status in _FAILED:
        causes[job.id] = (job.id, cast(TaskFailedError, result.info))
    elif not result.successful():
        causes[job.id] = (job.id, None)
    return result


def _stopped(app: SQLQueue, job: PlannedJob, reason: str) -> EagerResult:
    error = TaskRevokedError(
        f"Job {job.id} ({job.task_name}) was revoked ({reason}); it has no result."
    )
    return EagerResult(job.id, app, error=error, status=JobStatus.REVOKED)


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
