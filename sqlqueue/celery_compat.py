"""Celery's names beyond the app's constructor, tasks and results: ``app.control.revoke``,
``current_task``, ``get_task_logger``, and, for each name Celery has and sqlqueue does not, the
error that says what to do instead (``NotSupportedError``), rather than a bare AttributeError.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NoReturn, cast

from sqlqueue.exceptions import NotSupportedError
from sqlqueue.request import current_request
from sqlqueue.shared import get_current_app

if TYPE_CHECKING:
    from sqlqueue.app import SQLQueue
    from sqlqueue.tasks import Task

_NO_BROKER = "there is no broker: jobs are rows in the queue's database"
_NO_BACKEND = "results are kept in the queue's own table: read them with app.AsyncResult(job_id)"
_MANY_CALLS = (
    "send many calls of a task as a group, group(task.s(*call) for call in calls), or with "
    "task.delay_many(calls)"
)
_NO_CHILDREN = (
    "a result knows its parent (r.parent), not its children: keep the handles apply_async "
    "returns (a group's GroupResult holds its members')"
)
_NO_REMOTE = (
    "workers take no remote commands: a job's and a worker's state are in the database "
    "(`sqlqueue status`, `sqlqueue workers`, `sqlqueue inspect JOB_ID`; `sqlqueue purge "
    "--queue NAME` empties a queue); revoke is app.control.revoke(job_id)"
)

APP_GAPS = {
    "GroupResult": "use sqlqueue.GroupResult.restore(group_id, app=app)",
    **dict.fromkeys(["backend", "ResultSet"], _NO_BACKEND),
    **dict.fromkeys(
        ["amqp", "connection", "connection_for_read", "connection_for_write", "pool"], _NO_BROKER
    ),
    "producer_or_acquire": _NO_BROKER,
    "broker_connection": _NO_BROKER,
    **dict.fromkeys(["start", "worker_main", "Worker"], "run `sqlqueue worker -A proj`"),
    "events": "there are no events: a job's state is in the database",
    "loader": "settings come from config_from_object() and conf.update()",
    "log": "sqlqueue logs through the logging module; configure it as usual",
    "steps": "the worker has no bootsteps; wrap each job with around_job() on a SQLQueue subclass",
}
"""Attributes of Celery's app that sqlqueue does not have, and what to do instead."""

TASK_GAPS = {
    **dict.fromkeys(["map", "starmap", "chunks"], _MANY_CALLS),
    "replace": "a running job cannot become another: return its result, and send the next "
    "step after it in a chain (task.s() | next_step.s())",
    "backend": _NO_BACKEND,
    "send_event": "there are no events: a job's state is in the database",
}
"""Attributes of Celery's Task that sqlqueue does not have, and what to do instead."""

RESULT_GAPS = {
    **dict.fromkeys(["children", "collect", "get_leaf", "iterdeps", "graph"], _NO_CHILDREN),
    "backend": _NO_BACKEND,
}
"""Attributes of Celery's AsyncResult that sqlqueue does not have, and what to do instead."""


PACKAGE_GAPS = {
    **dict.fromkeys(["chunks", "xmap", "xstarmap"], _MANY_CALLS),
    "uuid": "a job's id is a new UUID unless apply_async(task_id=...) chooses one",
}
"""Names ``from celery import ...`` gives that ``sqlqueue`` does not, and what to do instead."""


def refuse_import(name: str) -> NoReturn:
    """The error for ``from sqlqueue import <name>``: for a name Celery's package has, an
    ImportError saying the sqlqueue way (an AttributeError's message would be replaced by
    Python's "cannot import name"); else the AttributeError any module gives."""
    if name in PACKAGE_GAPS:
        raise ImportError(
            f"sqlqueue.{name} is Celery's and not sqlqueue's: {PACKAGE_GAPS[name]}.",
            name="sqlqueue",
        )
    raise AttributeError(f"module 'sqlqueue' has no attribute {name!r}", name=name)


def refuse(obj: object, label: str, name: str, gaps: dict[str, str]) -> NoReturn:
    """Raise the error for ``obj.name``: ``NotSupportedError`` with the sqlqueue way for a name
    Celery has (``label.name`` in the message), else the AttributeError any object gives."""
    if name in gaps:
        raise NotSupportedError(f"{label}.{name} is Celery's and not sqlqueue's: {gaps[name]}.")
    raise AttributeError(
        f"{type(obj).__name__!r} object has no attribute {name!r}", name=name, obj=obj
    )


class Control:
    """``app.control``: revoking jobs, as Celery's remote control does; the other commands are
    for workers listening to a broker, which sqlqueue's do not."""

    def __init__(self, app: SQLQueue) -> None:
        self.app = app

    def revoke(
        self,
        task_id: str | Iterable[str],
        destination: Any = None,
        terminate: bool = False,
        signal: Any = None,
        **kwargs: Any,
    ) -> None:
        """Revoke one job or several by id, as ``AsyncResult(job_id).revoke(...)`` does: a job
        not yet started never runs; with ``terminate=True`` a running one is stopped too."""
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        for job_id in ids:
            self.app.AsyncResult(job_id).revoke(terminate=terminate, signal=signal)

    def terminate(self, task_id: str | Iterable[str], signal: Any = None, **kwargs: Any) -> None:
        """``revoke(task_id, terminate=True)``."""
        self.revoke(task_id, terminate=True, signal=signal)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise NotSupportedError(f"app.control.{name} is Celery's and not sqlqueue's: {_NO_REMOTE}.")


def get_task_logger(name: str) -> logging.Logger:
    """Celery's ``get_task_logger``: the logger of a task module, configured as usual with the
    logging module (a worker logs at INFO to stderr)."""
    return logging.getLogger(name)


class _CurrentTask:
    """Celery's ``current_task``: the task whose job runs in this thread, at each use; false
    outside a job."""

    def _task(self) -> Task[..., Any]:
        request = current_request.get()
        if request is None:
            raise RuntimeError(
                "current_task is used outside a running job: use it inside a task's function "
                "(or give the task bind=True and use self)."
            )
        return get_current_app().tasks[request.task]

    def __bool__(self) -> bool:
        return current_request.get() is not None

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._task(), attribute)

    def __repr__(self) -> str:
        return f"<current task: {self._task()!r}>" if self else "<current task: none>"


current_task = cast("Task[..., Any]", _CurrentTask())
"""The running task (``from sqlqueue import current_task``), typed as the task it stands for."""
