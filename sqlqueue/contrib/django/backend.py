"""A backend for Django's task framework (``django.tasks``, Django 6; the ``django_tasks``
backport on Django 5.2): ``@task`` functions run by sqlqueue's workers.

    # settings.py
    TASKS = {"default": {"BACKEND": "sqlqueue.contrib.django.backend.SQLQueueBackend"}}

    # orders/tasks.py
    from django.tasks import task

    @task(priority=10, queue_name="default")
    def send_receipt(order_id): ...

    send_receipt.enqueue(order.pk)          # inside transaction.atomic(): joins it
    send_receipt.using(run_after=later).enqueue(order.pk)
    send_receipt.get_result(result_id).status

Every ``@task`` is registered with sqlqueue's Django app under its module path when Django
validates it, so the worker that imports ``tasks.py`` runs it and nothing else. Priorities are
Django's (-100..100, higher first), ``run_after`` is the job's eta, ``queue_name`` its queue.
Statuses map as READY = PENDING/RETRY, RUNNING = STARTED, SUCCESSFUL = SUCCESS,
FAILED = FAILURE, REVOKED or REJECTED, SUCCESSFUL = IGNORED too (no return value).
"""

from __future__ import annotations

import builtins
from typing import Any

from django.utils import timezone
from django.utils.module_loading import import_string

from sqlqueue.contrib.django import app
from sqlqueue.exceptions import InvalidOptionError
from sqlqueue.jobs import Job, JobStatus
from sqlqueue.options import check_job_id
from sqlqueue.send_options import SendOptions
from sqlqueue.tasks import Task as SQLQueueTask

try:  # Django 6
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskContext, TaskError, TaskResult, TaskResultStatus
    from django.tasks.exceptions import TaskResultDoesNotExist
except ImportError:  # Django 5.2 with the django-tasks backport
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import TaskContext, TaskError, TaskResult, TaskResultStatus
    from django_tasks.exceptions import TaskResultDoesNotExist

STATUSES = {
    JobStatus.PENDING: TaskResultStatus.READY,
    JobStatus.RETRY: TaskResultStatus.READY,
    JobStatus.STARTED: TaskResultStatus.RUNNING,
    JobStatus.SUCCESS: TaskResultStatus.SUCCESSFUL,
    JobStatus.FAILURE: TaskResultStatus.FAILED,
    JobStatus.REVOKED: TaskResultStatus.FAILED,
    JobStatus.REJECTED: TaskResultStatus.FAILED,
    JobStatus.IGNORED: TaskResultStatus.SUCCESSFUL,
}


STORED_ERROR_CLASSES = {"WorkerLost": "sqlqueue.exceptions.WorkerLostError"}
"""Failures the database writes itself, by name, and the class Django is to import for them."""


def exception_class_path(error_type: str) -> str:
    """The importable path of a job's ``error_type``, for ``TaskError.exception_class``.

    sqlqueue stores a built-in exception by its bare name (``ValueError``, as Python's
    tracebacks and Celery's ``exc_type`` name it), so its results, CLI and existing rows
    read naturally; Django imports the path, and finds ``builtins.ValueError``.
    """
    if error_type in STORED_ERROR_CLASSES:
        return STORED_ERROR_CLASSES[error_type]
    found = getattr(builtins, error_type, None)
    if isinstance(found, type) and issubclass(found, BaseException):
        return f"builtins.{error_type}"
    return error_type


class SQLQueueBackend(BaseTaskBackend):
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def validate_task(self, task: Any) -> None:
        super().validate_task(task)
        if task.module_path not in app.tasks:
            app.tasks.register(self._sqlqueue_task(task))

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        sqlqueue_task = app.tasks[task.module_path]
        options = SendOptions.build(
            app.conf,
            sqlqueue_task,
            eta=task.run_after,
            queue=task.queue_name,
            priority=task.priority,
        )
        result = app.send_job(sqlqueue_task, task.module_path, list(args), dict(kwargs), options)
        # Not read back: inside transaction.atomic() the row is not visible to other
        # connections until the commit.
        return TaskResult(
            task=task,
            id=result.id,
            status=TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=list(args),
            kwargs=dict(kwargs),
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )

    def get_result(self, result_id: str) -> Any:
        try:
            job = app.store.get_job(check_job_id(result_id))
        except InvalidOptionError:
            job = None
        if job is None:
            raise TaskResultDoesNotExist(result_id)
        return self._task_result(job)

    def _task_result(self, job: Job) -> Any:
        result = TaskResult(
            task=import_string(job.task_name),
            id=job.id,
            status=STATUSES[job.status],
            enqueued_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            last_attempted_at=job.started_at,
            args=job.args,
            kwargs=job.kwargs,
            backend=self.alias,
            errors=(
                [
                    TaskError(
                        exception_class_path=exception_class_path(job.error_type),
                        traceback=job.traceback or "",
                    )
                ]
                if job.status is JobStatus.FAILURE and job.error_type
                else []
            ),
            worker_ids=[job.worker_id or ""] * job.attempts,
        )
        if job.status is JobStatus.SUCCESS:
            object.__setattr__(result, "_return_value", job.result)
        return result

    def _sqlqueue_task(self, task: Any) -> SQLQueueTask[..., Any]:
        backend = self

        def run(job: Any, *args: Any, **kwargs: Any) -> Any:
            if task.takes_context:
                context = TaskContext(task_result=backend.get_result(job.request.id))
                return task.call(context, *args, **kwargs)
            return task.call(*args, **kwargs)

        run.__module__, run.__qualname__ = task.func.__module__, task.func.__qualname__
        return SQLQueueTask(app, run, name=task.module_path, bind=True)
