"""sqlqueue: a task queue in your application's own SQL database."""

from __future__ import annotations

from sqlqueue.app import SQLQueue
from sqlqueue.exceptions import (
    ConfigurationError,
    DatabaseError,
    InvalidOptionError,
    JobNotFoundError,
    MaxRetriesExceededError,
    Retry,
    SerializationError,
    SoftTimeLimitExceeded,
    SQLQueueError,
    TaskArgumentsError,
    TaskFailedError,
    TaskRegistrationError,
    TaskRevokedError,
    TimeLimitExceeded,
    TimeoutError,
    UnknownTaskError,
    UnsupportedDatabaseError,
    WorkerLostError,
)
from sqlqueue.jobs import JobStatus
from sqlqueue.result import AsyncResult
from sqlqueue.tasks import Task
from sqlqueue.worker import Worker
from sqlqueue.worker_options import WorkerOptions

__version__ = "0.1.0"

__all__ = [
    "AsyncResult",
    "ConfigurationError",
    "DatabaseError",
    "InvalidOptionError",
    "JobNotFoundError",
    "JobStatus",
    "MaxRetriesExceededError",
    "Retry",
    "SQLQueue",
    "SQLQueueError",
    "SerializationError",
    "SoftTimeLimitExceeded",
    "Task",
    "TaskArgumentsError",
    "TaskFailedError",
    "TaskRegistrationError",
    "TaskRevokedError",
    "TimeLimitExceeded",
    "TimeoutError",
    "UnknownTaskError",
    "UnsupportedDatabaseError",
    "Worker",
    "WorkerLostError",
    "WorkerOptions",
    "__version__",
]
