"""Run one taken job and decide what it came to; no SQL and no loop here.

Kept apart from the worker so that retries, failures and result checks can be
exercised (and read) without threads, signals or a database.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from dataclasses import replace
from functools import partial
from typing import Any

from sqlqueue import signals
from sqlqueue.exceptions import Ignore, Reject, Retry, SerializationError, UnknownTaskError
from sqlqueue.hooks import ExceptionInfo, call_hooks
from sqlqueue.jobs import Job, JobStatus
from sqlqueue.outcomes import Outcome
from sqlqueue.request import Request, current_request
from sqlqueue.serialization import Failure, encode_json
from sqlqueue.tasks import Task
from sqlqueue.timelimits import no_limits, thread_time_limits

Limits = Callable[[Task[..., Any], Callable[[], Any]], Any]
"""How a pool enforces a task's time limits on its call: ``limits(task, call)`` runs ``call``
and returns what it returned (see ``timelimits``)."""

RunCoroutine = Callable[[Coroutine[Any, Any, Any]], Any]
"""How an ``async def`` task's coroutine is run to its result: on the worker's event loop,
or with ``asyncio.run`` where there is none (eager runs, process-pool children)."""


def execute(
    task: Task[..., Any] | None,
    job: Job,
    limits: Limits = thread_time_limits,
    run_coroutine: RunCoroutine = asyncio.run,
) -> Outcome:
    """Call the task for this job and classify what happened."""
    if task is None:
        return unknown_task(job.task_name)
    request = Request(
        id=job.id,
        task=job.task_name,
        args=job.args,
        kwargs=job.kwargs,
        retries=job.retries,
        attempts=job.attempts,
        queue=job.queue,
    )
    return run_task(task, request, limits, run_coroutine)


def unknown_task(name: str) -> Outcome:
    """The outcome of a job whose task this worker does not have."""
    return Outcome.failed(
        Failure.from_exception(
            UnknownTaskError(
                f"Task {name!r} is not registered in this worker; is the module that defines "
                "it imported by the app given to `sqlqueue worker -A`?"
            )
        )
    )


def _call_task(task: Task[..., Any], request: Request, run_coroutine: RunCoroutine) -> Any:
    """The task's return value; an ``async def`` task's coroutine is run to its result."""
    if "before_start" in task.hooks:
        task.before_start(request.id, request.args, request.kwargs)
    result = task(*request.args, **request.kwargs)
    if inspect.iscoroutine(result):
        result = run_coroutine(result)
    return result


def run_task(
    task: Task[..., Any],
    request: Request,
    limits: Limits = no_limits,
    run_coroutine: RunCoroutine = asyncio.run,
) -> Outcome:
    """Call ``task`` with the request's arguments, with ``self.request`` set for the call
    and for the hooks the task defines (``hooks``), which are called after it."""
    token = current_request.set(request)
    raised: BaseException | None
    try:
        signals.task_prerun.send(
            sender=task, task_id=request.id, task=task, args=request.args, kwargs=request.kwargs
        )
        try:
            result = limits(task, partial(_call_task, task, request, run_coroutine))
        except BaseException as exc:
            # Whatever a task raises (SystemExit, CancelledError too) is its outcome; none of
            # it may escape into the worker's threads.
            result = None
            outcome, raised = _raised(task, request, exc)
        else:
            if request.retry_later:  # retry(throw=False), then the run returned
                outcome, raised = _raised(task, request, request.retry_later[0])
            else:
                outcome, raised = _returned(task, result)
        if task.hooks:
            outcome = call_hooks(task, request, outcome, raised, result)
        send_outcome_signals(task, request, outcome, raised, result)
        return outcome
    finally:
        current_request.reset(token)


def send_outcome_signals(
    task: Task[..., Any],
    request: Request,
    outcome: Outcome,
    raised: BaseException | None,
    returned: Any,
) -> None:
    """Celery's signals for a run's outcome, then ``task_postrun``. A failure a task hook
    caused has no exception of the task's to report: only ``task_postrun`` hears of it."""
    if outcome.status is JobStatus.SUCCESS:
        signals.task_success.send(sender=task, result=returned)
    elif outcome.status is JobStatus.RETRY and isinstance(raised, Retry):
        signals.task_retry.send(
            sender=task,
            request=request,
            reason=raised.exc if raised.exc is not None else raised,
            einfo=ExceptionInfo(raised),
        )
    elif outcome.status is JobStatus.FAILURE and raised is not None:
        signals.task_failure.send(
            sender=task,
            task_id=request.id,
            exception=raised,
            args=request.args,
            kwargs=request.kwargs,
            traceback=raised.__traceback__,
            einfo=ExceptionInfo(raised),
        )
    signals.task_postrun.send(
        sender=task,
        task_id=request.id,
        task=task,
        args=request.args,
        kwargs=request.kwargs,
        retval=returned if outcome.status is JobStatus.SUCCESS else raised,
        state=outcome.status.value,
    )


def _returned(task: Task[..., Any], result: Any) -> tuple[Outcome, BaseException | None]:
    """The outcome of a run that returned ``result``, and the exception behind it, if any.

    A success carries the return value as JSON text: encoding it is how it is checked, and
    that text is what the row stores, so it is encoded once."""
    if task.ignores_result:
        return Outcome.succeeded(None), None
    try:
        result_json = encode_json(result, f"The return value of task {task.name!r}")
    except SerializationError as exc:
        return Outcome.failed(Failure.from_exception(exc)), exc
    return Outcome.succeeded(result_json), None


def _raised(
    task: Task[..., Any], request: Request, raised: BaseException
) -> tuple[Outcome, BaseException]:
    """The outcome of a run that raised, and the exception behind it: for an automatic
    retry, the ``Retry`` that Celery's ``autoretry_for`` would have raised."""
    if request.retry_later and not isinstance(raised, CONTROL):
        # retry(throw=False): the job is retried whatever the rest of the run came to.
        raised = request.retry_later[0]
    if isinstance(raised, Retry):
        failure = Failure.from_exception(raised.exc) if raised.exc is not None else None
        return Outcome.retrying(
            raised.countdown, failure, raised.new_args, raised.new_kwargs
        ), raised
    if isinstance(raised, Reject | Ignore):
        failure = Failure.from_exception(raised)
        if not failure.error_message:  # a bare Reject() or Ignore(): say what it was
            failure = replace(failure, error_message=f"The task raised {type(raised).__name__}.")
        if isinstance(raised, Ignore):
            return Outcome.ignored(failure), raised
        return (Outcome.requeued(failure) if raised.requeue else Outcome.rejected(failure)), raised
    policy = task.retry_policy
    if policy.autoretries(raised, request.retries):
        retry = Retry(policy.delay(request.retries), raised)
        return Outcome.retrying(retry.countdown, Failure.from_exception(raised)), retry
    return Outcome.failed(Failure.from_exception(raised)), raised


CONTROL = (Retry, Reject, Ignore)
"""What a task raises to decide its job's outcome, rather than to fail it."""
