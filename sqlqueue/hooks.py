"""Celery's task hooks (``on_success``, ``on_failure``, ``on_retry``, ``after_return``),
called after a run with Celery's arguments, and what a hook that raises does to the outcome.

Celery calls them in the worker once the task has returned or raised; so does sqlqueue, in the
thread or process that ran the task, before the outcome is written (the job still reads
STARTED from inside a hook). As in Celery, ``after_return`` follows a success or a failure
only, and a ``Reject`` or an ``Ignore`` calls no hook. A hook that raises is logged with its
traceback, and the job fails with the hook's error, as Celery records such an "internal
error" in place of the outcome; ``on_retry`` is the exception: the retry stands, as in Celery,
where the retry has been sent before the hook runs.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from sqlqueue.exceptions import Ignore, Reject, Retry
from sqlqueue.jobs import JobStatus
from sqlqueue.outcomes import Outcome
from sqlqueue.serialization import Failure

if TYPE_CHECKING:
    from sqlqueue.request import Request
from sqlqueue.tasks import Task

logger = logging.getLogger("sqlqueue.worker")


@dataclass(frozen=True, slots=True)
class ExceptionInfo:
    """An exception as Celery's hooks receive it (Celery's ``einfo``)."""

    exception: BaseException

    @property
    def type(self) -> type[BaseException]:
        return type(self.exception)

    @property
    def tb(self) -> TracebackType | None:
        return self.exception.__traceback__

    @property
    def traceback(self) -> str:
        """The traceback as text, as it is stored with a failure."""
        return "".join(traceback.format_exception(self.exception))

    def __str__(self) -> str:
        return self.traceback


def call_hooks(
    task: Task[..., Any],
    request: Request,
    outcome: Outcome,
    raised: BaseException | None,
    returned: Any,
) -> Outcome:
    """Call the hooks the task defines for this outcome; returns the outcome to write.

    ``raised`` is what the run raised (for a retry, the ``Retry``, also of an automatic one
    or of ``retry(throw=False)``), ``returned`` what it returned."""
    if not task.hooks or isinstance(raised, Reject | Ignore):
        return outcome
    call = partial(_call, task, request)
    task_id, args, kwargs = request.id, request.args, request.kwargs
    if outcome.status is JobStatus.RETRY:
        retry = cast(Retry, raised)  # a retry's outcome comes with its Retry
        call("on_retry", retry.exc, task_id, args, kwargs, ExceptionInfo(retry))
        return outcome
    if outcome.status is JobStatus.SUCCESS:
        error = call("on_success", returned, task_id, args, kwargs)
        if error is not None:
            # As in Celery, the run fails with the hook's error, and on_failure hears of it.
            call("on_failure", error, task_id, args, kwargs, ExceptionInfo(error))
            return _failed(error)
        error = call("after_return", JobStatus.SUCCESS.value, returned, task_id, args, kwargs, None)
        return outcome if error is None else _failed(error)
    if outcome.status is JobStatus.FAILURE and raised is not None:
        einfo = ExceptionInfo(raised)
        error = call("on_failure", raised, task_id, args, kwargs, einfo) or call(
            "after_return", JobStatus.FAILURE.value, raised, task_id, args, kwargs, einfo
        )
        return outcome if error is None else _failed(error)
    return outcome


def _call(task: Task[..., Any], request: Request, hook: str, *args: Any) -> BaseException | None:
    """Call one hook, if the task defines it; the exception it raised, logged, or None."""
    if hook not in task.hooks:
        return None
    try:
        getattr(task, hook)(*args)
    except BaseException as exc:  # as the task's own: nothing escapes into the worker
        logger.exception("hook %s of task=%s id=%s raised", hook, task.name, request.id)
        return exc
    return None


def _failed(error: BaseException) -> Outcome:
    return Outcome.failed(Failure.from_exception(error))
