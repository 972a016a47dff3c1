"""Run one taken job and decide what it came to; no SQL and no loop here.

Kept apart from the worker so that retries, failures and result checks can be
exercised (and read) without threads, signals or a database.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlqueue.exceptions import Retry, SerializationError, UnknownTaskError
from sqlqueue.jobs import Job
from sqlqueue.serialization import Failure, check_json
from sqlqueue.tasks import Request, Task, current_request
from sqlqueue.timelimits import no_limits, thread_time_limits


@dataclass(frozen=True, slots=True)
class Succeeded:
    result: Any


@dataclass(frozen=True, slots=True)
class Retrying:
    countdown: float
    failure: Failure | None


@dataclass(frozen=True, slots=True)
class Failed:
    failure: Failure


Outcome = Succeeded | Retrying | Failed


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


def unknown_task(name: str) -> Failed:
    """The outcome of a job whose task this worker does not have."""
    return Failed(
        Failure.from_exception(
            UnknownTaskError(
                f"Task {name!r} is not registered in this worker; is the module that defines "
                "it imported by the app given to `sqlqueue worker -A`?"
            )
        )
    )


def _call_task(task: Task[..., Any], request: Request, run_coroutine: RunCoroutine) -> Any:
    """The task's return value; an ``async def`` task's coroutine is run to its result."""
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
    """Call ``task`` with the request's arguments, with ``self.request`` set for the call."""
    token = current_request.set(request)
    try:
        result = limits(task, partial(_call_task, task, request, run_coroutine))
    except Retry as retry:
        failure = Failure.from_exception(retry.exc) if retry.exc is not None else None
        return Retrying(retry.countdown, failure)
    except BaseException as exc:
        # Whatever a task raises (SystemExit, CancelledError too) is its outcome; none of it
        # may escape into the worker's threads.
        policy = task.retry_policy
        if isinstance(exc, policy.autoretry_for) and not policy.exhausted(request.retries):
            return Retrying(policy.delay(request.retries), Failure.from_exception(exc))
        return Failed(Failure.from_exception(exc))
    finally:
        current_request.reset(token)
    try:
        check_json(result, f"The return value of task {task.name!r}")
    except SerializationError as exc:
        return Failed(Failure.from_exception(exc))
    return Succeeded(result)
