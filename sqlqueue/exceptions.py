"""Every error sqlqueue raises on purpose.

Each class's docstring is the sentence a user should read first; the message passed at
the raise site adds the specifics (which task, which value) and what to do about it.
"""

from __future__ import annotations

import builtins
from typing import Any


class SQLQueueError(Exception):
    """Base class for every error sqlqueue raises on purpose; never raised directly."""


class ConfigurationError(SQLQueueError):
    """The app, engine or an option combination is not usable."""


class UnsupportedDatabaseError(ConfigurationError):
    """The database is not one sqlqueue supports."""


class TaskRegistrationError(SQLQueueError):
    """Two different functions were registered under one task name."""


class UnknownTaskError(SQLQueueError, KeyError):
    """No task is registered under this name."""

    def __str__(self) -> str:
        # KeyError.__str__ would wrap the message in quotes.
        return str(self.args[0]) if self.args else ""


class InvalidOptionError(SQLQueueError, ValueError):
    """An argument to a public call is out of range or malformed."""


class TaskArgumentsError(SQLQueueError, TypeError):
    """The arguments do not fit the task's signature."""


class SerializationError(SQLQueueError, TypeError):
    """A value cannot be stored as JSON."""


class TimeoutError(SQLQueueError, builtins.TimeoutError):
    """The job did not finish within the time given to ``AsyncResult.get()``."""


class JobNotFoundError(SQLQueueError, LookupError):
    """No job exists with this id (it may have been pruned)."""


class JobNotFinishedError(SQLQueueError):
    """The job has not finished, and the call needs a finished one (``forget()``)."""


class TaskFailedError(SQLQueueError):
    """The task raised an exception; its type, message and traceback are attached."""

    def __init__(
        self, task_name: str, exc_type: str, exc_message: str, traceback: str | None
    ) -> None:
        super().__init__(f"Task {task_name!r} failed with {exc_type}: {exc_message}")
        self.task_name = task_name
        self.exc_type = exc_type
        self.exc_message = exc_message
        self.traceback = traceback


class ChordError(TaskFailedError):
    """A job of a chord's header failed or was revoked, so its body never ran: what the
    body's ``get()`` raises, its message naming that job and its error."""


class DuplicateJobIdError(SQLQueueError, ValueError):
    """A job with the id given as ``task_id=`` exists already; nothing was written. Inside a
    transaction of the caller's, PostgreSQL has aborted that transaction: roll it back."""


class TaskRevokedError(SQLQueueError):
    """The job was revoked before it ran, so it has no result."""


class NotRunningError(SQLQueueError, RuntimeError):
    """``update_state`` was called outside a running job: there is no job to write it to."""


class DatabaseError(SQLQueueError):
    """The database refused or failed a statement; the driver's error is the cause."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient
        """True when trying again later may work (connection lost, lock timeout); False when
        the database refused this very statement (bad data, missing table)."""


class _LimitError(SQLQueueError):
    # Raised into a running thread as a bare class, so the docstring is the message.
    def __init__(self, *args: object) -> None:
        super().__init__(*(args or (self.__doc__,)))


class SoftTimeLimitExceeded(_LimitError):
    """The task ran past its soft_time_limit; it may catch this to clean up."""


class TimeLimitExceeded(_LimitError):
    """The task ran past its time_limit and was stopped."""


class Terminated(_LimitError):
    """The job was revoked with terminate=True while it ran; it ends REVOKED whatever the
    task does next (it may catch this to clean up)."""


class WorkerLostError(SQLQueueError):
    """The process running the job died (a crash, ``os._exit()``, the OOM killer)."""


class Retry(SQLQueueError):
    """Raised by ``task.retry()`` to ask the worker to run the job again later."""

    def __init__(
        self,
        countdown: float,
        exc: BaseException | None = None,
        *,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        reason = f" after {type(exc).__name__}: {exc}" if exc is not None else ""
        super().__init__(f"Retry in {countdown:g}s{reason}")
        self.countdown = countdown
        self.exc = exc
        self.new_args = args
        """The arguments of the next run, when ``retry(args=...)`` gave new ones."""
        self.new_kwargs = kwargs
        """The keyword arguments of the next run, when ``retry(kwargs=...)`` gave new ones."""


class Reject(SQLQueueError):
    """The task refused its job: it ends REJECTED at once, without retries (Celery's ``Reject``).

    With ``requeue=True`` the job goes back to the queue instead, to run again at once; it
    does not count as a retry, so a task that always rejects this way never ends.
    """

    def __init__(self, reason: object = None, requeue: bool = False) -> None:
        super().__init__(*(() if reason is None else (reason,)))
        self.reason = reason
        self.requeue = requeue

    def __repr__(self) -> str:
        return f"reject requeue={self.requeue}: {self.reason}"


class Ignore(SQLQueueError):
    """The task dropped its job: it ends IGNORED, with no result and no hooks called
    (Celery's ``Ignore``)."""


class MaxRetriesExceededError(SQLQueueError):
    """The task asked for another retry but has used all of its ``max_retries``."""


class NotSupportedError(SQLQueueError, AttributeError, NotImplementedError):
    """A Celery name sqlqueue does not have (``app.backend``, ``task.s()``, ``control.inspect()``);
    the message says the sqlqueue way. An ``AttributeError`` too, so ``hasattr`` answers False."""


class CeleryCompatibilityWarning(UserWarning):
    """A Celery setting or argument was accepted but has no effect in sqlqueue; the message
    says why. Filter it with ``warnings.filterwarnings("ignore", category=...)``."""
