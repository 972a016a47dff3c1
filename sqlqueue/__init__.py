"""sqlqueue: a task queue in your application's own SQL database."""

from __future__ import annotations

from sqlqueue import states
from sqlqueue.app import SQLQueue
from sqlqueue.canvas import Signature, chain, chord, group, maybe_signature, signature, subtask
from sqlqueue.celery_app import Celery
from sqlqueue.celery_compat import current_task, get_task_logger, refuse_import
from sqlqueue.exceptions import (
    CeleryCompatibilityWarning,
    ChordError,
    ConfigurationError,
    DatabaseError,
    DuplicateJobIdError,
    Ignore,
    InvalidOptionError,
    JobNotFinishedError,
    JobNotFoundError,
    MaxRetriesExceededError,
    NotRunningError,
    NotSupportedError,
    Reject,
    Retry,
    SerializationError,
    SoftTimeLimitExceeded,
    SQLQueueError,
    TaskArgumentsError,
    TaskFailedError,
    TaskRegistrationError,
    TaskRevokedError,
    Terminated,
    TimeLimitExceeded,
    TimeoutError,
    UnknownTaskError,
    UnsupportedDatabaseError,
    WorkerLostError,
)
from sqlqueue.group_result import GroupResult
from sqlqueue.jobs import JobStatus
from sqlqueue.result import AsyncResult, EagerResult
from sqlqueue.shared import current_app, shared_task
from sqlqueue.tasks import Task
from sqlqueue.worker import Worker
from sqlqueue.worker_options import WorkerOptions

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Only names the package lacks: Celery's (`from sqlqueue import xmap`) say the way.
    refuse_import(name)


__all__ = [
    "AsyncResult",
    "Celery",
    "CeleryCompatibilityWarning",
    "ChordError",
    "ConfigurationError",
    "DatabaseError",
    "DuplicateJobIdError",
    "EagerResult",
    "GroupResult",
    "Ignore",
    "InvalidOptionError",
    "JobNotFinishedError",
    "JobNotFoundError",
    "JobStatus",
    "MaxRetriesExceededError",
    "NotRunningError",
    "NotSupportedError",
    "Reject",
    "Retry",
    "SQLQueue",
    "SQLQueueError",
    "SerializationError",
    "Signature",
    "SoftTimeLimitExceeded",
    "Task",
    "TaskArgumentsError",
    "TaskFailedError",
    "TaskRegistrationError",
    "TaskRevokedError",
    "Terminated",
    "TimeLimitExceeded",
    "TimeoutError",
    "UnknownTaskError",
    "UnsupportedDatabaseError",
    "Worker",
    "WorkerLostError",
    "WorkerOptions",
    "__version__",
    "chain",
    "chord",
    "current_app",
    "current_task",
    "get_task_logger",
    "group",
    "maybe_signature",
    "shared_task",
    "signature",
    "states",
    "subtask",
]
