"""AsyncResult: the receipt of a job, readable from any process that has the app."""

from __future__ import annotations

import asyncio
import signal as signals
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlqueue.exceptions import (
    ChordError,
    InvalidOptionError,
    JobNotFinishedError,
    JobNotFoundError,
    TaskFailedError,
    TaskRevokedError,
    TimeoutError,
)
from sqlqueue.jobs import FINISHED_STATUSES, Job, JobStatus

if TYPE_CHECKING:
    from sqlqueue.app import SQLQueue
    from sqlqueue.group_result import GroupResult

POLL_START = 0.02
"""Seconds ``get()`` first waits between reads of the job."""

POLL_MAX = 0.5
"""Longest wait, in seconds, between two reads in ``get()``, unless its ``interval`` says."""

OnError = Callable[[Exception], Any]
"""What ``then()`` calls with the exception its callback raised."""


class AsyncResult:
    """A job's status and outcome, read from its row each time they are asked for."""

    __slots__ = ("_callbacks", "app", "duplicate", "id")
    # A large send makes one per job: without a __dict__ each is one object for the garbage
    # collector to track and walk, not two.

    def __init__(
        self, job_id: str, app: SQLQueue | None = None, *, duplicate: bool = False
    ) -> None:
        """``app`` defaults to the current app, as Celery's ``AsyncResult(task_id)`` does."""
        if app is None:
            from sqlqueue.shared import get_current_app  # shared imports tasks, which import this

            app = get_current_app()
        self.id = job_id
        self.app = app
        self.duplicate = duplicate
        """Whether the send that answered with it wrote nothing, for an unfinished job held
        its unique key: this is that job (docs/tasks.md, "Unique jobs")."""
        self._callbacks: tuple[tuple[Callable[[AsyncResult], Any], OnError | None], ...] = ()
        """What ``then()`` asked to call once this handle sees the job finished."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.id}>"

    @property
    def task_id(self) -> str:
        """Celery's other name for ``id``."""
        return self.id

    if not TYPE_CHECKING:  # a type checker keeps reporting unknown attributes

        def __getattr__(self, name):
            # Only names no attribute has: Celery's that sqlqueue lacks say what to do instead.
            from sqlqueue.celery_compat import RESULT_GAPS, refuse

            refuse(self, "result", name, RESULT_GAPS)

    def __eq__(self, other: object) -> bool:
        # As Celery's: equal to a result of the same id, and to the id itself.
        if isinstance(other, AsyncResult):
            return other.id == self.id
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def status(self) -> str:
        """One of PENDING, STARTED, RETRY, SUCCESS, FAILURE, REVOKED, REJECTED, IGNORED."""
        return self._job().status.value

    @property
    def state(self) -> str:
        """``status``, except while the job runs with progress: the state the task reported
        with ``update_state`` (Celery's ``state``)."""
        job = self._job()
        if job.status is JobStatus.STARTED and job.progress is not None:
            return str(job.progress["state"])
        return job.status.value

    @property
    def info(self) -> Any:
        """Celery's ``info`` (and ``result``): the return value once SUCCESS; the exception
        that ``get(propagate=False)`` returns once failed or revoked; while running, the
        ``meta`` of ``update_state``, else a dict of the worker running it; while waiting
        for a retry, the error that asked for it; None while PENDING."""
        return _info(self._job())

    result = info

    @property
    def date_done(self) -> datetime | None:
        """When the job finished (UTC), None until then."""
        return self._job().finished_at

    @property
    def name(self) -> str:
        """The task's name."""
        return self._job().task_name

    @property
    def args(self) -> list[Any]:
        return self._job().args

    @property
    def kwargs(self) -> dict[str, Any]:
        return self._job().kwargs

    @property
    def queue(self) -> str:
        return self._job().queue

    @property
    def retries(self) -> int:
        """How many times the job has been retried."""
        return self._job().retries

    @property
    def worker(self) -> str | None:
        """The id (``host:pid:random``) of the worker that holds the job, or last held it."""
        return self._job().worker_id

    @property
    def parent(self) -> AsyncResult | GroupResult | None:
        """The result this job's workflow step follows: the chain's step before it, or the
        group whose results a chord's body receives; None for a job that follows none."""
        parent_id = self._job().parent_id
        if parent_id is None:
            return None
        if self.app.store.get_job(parent_id) is not None:
            return AsyncResult(parent_id, self.app)
        from sqlqueue.group_result import GroupResult  # which imports this module

        # A group: its jobs, in order (none for an empty group, which has no rows).
        members = self.app.store.group_member_ids(parent_id)
        return GroupResult(
            parent_id, [AsyncResult(job_id, self.app) for job_id in members], self.app
        )

    def ready(self) -> bool:
        """Whether the job has finished: succeeded, failed or been revoked."""
        return self._job().status in FINISHED_STATUSES

    def successful(self) -> bool:
        return self._job().status is JobStatus.SUCCESS

    def failed(self) -> bool:
        return self._job().status is JobStatus.FAILURE

    @property
    def traceback(self) -> str | None:
        """The worker's traceback text of the last failure, if any."""
        return self._job().traceback

    def get(
        self, timeout: float | None = None, propagate: bool = True, interval: float = POLL_MAX
    ) -> Any:
        """Wait for the job to finish and return its result; ``interval`` is the longest
        pause, in seconds, between two reads of its row.

        Raises:
            TimeoutError: not finished within ``timeout`` seconds.
            TaskFailedError: the task failed (unless ``propagate=False``, which returns it).
            TaskRevokedError: the job was revoked (unless ``propagate=False``).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = min(POLL_START, interval)
        job = self._job()
        while job.status not in FINISHED_STATUSES:
            if deadline is not None and time.monotonic() >= deadline:
                raise _still_waiting(job, timeout)
            wait = pause if deadline is None else min(pause, max(0.0, deadline - time.monotonic()))
            time.sleep(wait)
            pause = min(pause * 1.5, interval)
            job = self._job()
        return _outcome(job, propagate)

    wait = get
    """Celery's other name for ``get``."""

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> Any:
        """``get`` for async code: waits with ``asyncio.sleep`` and reads with the async driver."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = POLL_START
        job = await self._ajob()
        while job.status not in FINISHED_STATUSES:
            if deadline is not None and time.monotonic() >= deadline:
                raise _still_waiting(job, timeout)
            await asyncio.sleep(
                pause if deadline is None else min(pause, deadline - time.monotonic())
            )
            pause = min(pause * 1.5, POLL_MAX)
            job = await self._ajob()
        return _outcome(job, propagate)

    def then(self, callback: Callable[[AsyncResult], Any], on_error: OnError | None = None) -> None:
        """Call ``callback(self)`` once this handle sees the job finished, as Celery's
        promise does with a result backend that is read rather than pushed: at once if it
        has finished, else from the ``get()``, ``wait()``, ``ready()`` or other read that
        first finds it finished, in this process. An exception the callback raises goes to
        ``on_error(exc)`` when given, else to the caller of that read."""
        self._callbacks += ((callback, on_error),)
        self._job()

    def forget(self) -> None:
        """Delete the finished job's row, result and all (Celery's ``forget``); reading it
        afterwards raises ``JobNotFoundError``. Nothing happens for an id with no row.

        Raises:
            JobNotFinishedError: the job has not finished; it would run and write its
                result anyway. ``revoke()`` it first, or wait for it.
        """
        if self.app.store.delete_finished_job(self.id):
            return
        job = self.app.store.get_job(self.id)
        if job is not None and job.status not in FINISHED_STATUSES:
            raise JobNotFinishedError(
                f"Job {self.id} ({job.task_name}) is {job.status}, not finished: forget() "
                "deletes a finished job's result. revoke() it first, or wait for it."
            )

    def revoke(self, terminate: bool = False, signal: str | int | None = None) -> bool:
        """Make sure the job never runs, or with ``terminate=True`` also stop it if it runs:
        it ends REVOKED either way. Returns False when it had already finished (or, without
        ``terminate``, started).

        A running job is stopped by its worker as soon as it learns of the revoke (at once
        on PostgreSQL, within its poll interval on SQLite): in a thread, ``Terminated`` is
        raised in the task; in a process-pool child, the child is killed and replaced.
        ``signal`` is accepted for Celery's sake and must name a signal, but the pool
        decides how the job is stopped.
        """
        if signal is not None:
            check_signal(signal)
        return self.app.store.revoke_jobs([self.id], terminate) > 0

    async def _ajob(self) -> Job:
        return self._found(await self.app.store.aget_job(self.id))

    def _job(self) -> Job:
        return self._found(self.app.store.get_job(self.id))

    def _found(self, job: Job | None) -> Job:
        if job is None:
            raise JobNotFoundError(
                f"No job with id {self.id} in this app's database; check the id and that "
                "this app uses the database the job was sent to."
            )
        if self._callbacks and job.status in FINISHED_STATUSES:
            self._call_back()
        return job

    def _call_back(self) -> None:
        callbacks, self._callbacks = self._callbacks, ()
        for callback, on_error in callbacks:
            try:
                callback(self)
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(exc)


class EagerResult(AsyncResult):
    """The outcome of a task run inline (``task_always_eager``, ``task.apply()``); it
    touches no database."""

    def __init__(
        self,
        job_id: str,
        app: SQLQueue,
        *,
        value: Any = None,
        error: TaskFailedError | TaskRevokedError | None = None,
        status: JobStatus = JobStatus.SUCCESS,
    ) -> None:
        super().__init__(job_id, app)
        self._value = value
        self._error = error
        """A failure (FAILURE, REJECTED), or what ``get()`` raises after an ``Ignore``."""
        self._status = status
        """What the run came to, as a worker would have stored it."""
        self._parent: AsyncResult | GroupResult | None = None

    @property
    def status(self) -> str:
        return self._status.value

    @property
    def parent(self) -> AsyncResult | GroupResult | None:
        """The result of what it followed in a workflow run inline with it (set by that run)."""
        return self._parent

    @parent.setter
    def parent(self, parent: AsyncResult | GroupResult | None) -> None:
        self._parent = parent

    state = status

    def ready(self) -> bool:
        return True

    def successful(self) -> bool:
        return self._status is JobStatus.SUCCESS

    def failed(self) -> bool:
        return self._status is JobStatus.FAILURE

    @property
    def info(self) -> Any:
        return self._error if self._error is not None else self._value

    result = info

    @property
    def date_done(self) -> datetime | None:
        return None  # the run's time was never stored, as with Celery's EagerResult

    @property
    def traceback(self) -> str | None:
        return self._error.traceback if isinstance(self._error, TaskFailedError) else None

    def get(
        self, timeout: float | None = None, propagate: bool = True, interval: float = POLL_MAX
    ) -> Any:
        if self._error is not None and propagate:
            raise self._error
        return self.result

    wait = get

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> Any:
        return self.get(timeout, propagate)

    def then(self, callback: Callable[[AsyncResult], Any], on_error: OnError | None = None) -> None:
        self._callbacks += ((callback, on_error),)
        self._call_back()  # it has finished

    def forget(self) -> None:
        return  # nothing was stored

    def revoke(self, terminate: bool = False, signal: str | int | None = None) -> bool:
        return False


def _info(job: Job) -> Any:
    if job.status in FINISHED_STATUSES:
        return _outcome(job, propagate=False)
    if job.status is JobStatus.STARTED:
        if job.progress is not None:
            return job.progress["meta"]
        return _runner(job.worker_id)
    if job.status is JobStatus.RETRY and job.error_type is not None:
        return _failure(job)
    return None


def _runner(worker_id: str | None) -> dict[str, Any]:
    """What Celery says of a started task (its ``hostname`` and ``pid``), with the worker's id."""
    host, _, rest = (worker_id or "").partition(":")
    pid = rest.partition(":")[0]
    return {"worker": worker_id, "hostname": host, "pid": int(pid) if pid.isdigit() else None}


def check_signal(signal: str | int) -> signals.Signals:
    """A signal named as Celery takes it (``"SIGKILL"``, ``"KILL"``, ``9``), or a refusal."""
    try:
        if isinstance(signal, str):
            name = signal.upper()
            return signals.Signals[name if name.startswith("SIG") else f"SIG{name}"]
        return signals.Signals(signal)
    except (KeyError, ValueError):
        raise InvalidOptionError(
            f"revoke(signal={signal!r}) names no signal; use a name such as 'SIGTERM'."
        ) from None


def _still_waiting(job: Job, timeout: float | None) -> TimeoutError:
    return TimeoutError(
        f"Job {job.id} ({job.task_name}) is still {job.status} after {timeout:g}s; is a worker "
        f"running for its queue {job.queue!r}? Start one with `sqlqueue worker -A <module>`."
    )


def _failure(job: Job) -> TaskFailedError:
    error = ChordError if job.error_type == "ChordError" else TaskFailedError
    return error(job.task_name, job.error_type or "Error", job.error_message or "", job.traceback)


def _outcome(job: Job, propagate: bool) -> Any:
    if job.status is JobStatus.SUCCESS:
        return job.result
    if job.status is JobStatus.FAILURE or job.status is JobStatus.REJECTED:
        # A Reject is stored as the job's error, as in eager runs: it fails the result.
        error = _failure(job)
        if propagate:
            raise error
        return error
    if job.status is JobStatus.REVOKED and job.error_type not in (None, "Expired"):
        # A workflow's step that never ran because a step before it failed: its get()
        # raises that failure.
        error = _failure(job)
        if propagate:
            raise error
        return error
    reason = f" ({job.error_message})" if job.error_message else ""
    revoked = TaskRevokedError(
        f"Job {job.id} ({job.task_name}) was revoked{reason}; it has no result."
    )
    if propagate:
        raise revoked
    return revoked


def __getattr__(name: str) -> object:
    # ``from sqlqueue.result import GroupResult``, where Celery's users look for it; its module
    # imports this one.
    if name == "GroupResult":
        from sqlqueue.group_result import GroupResult

        return GroupResult
    raise AttributeError(f"module 'sqlqueue.result' has no attribute {name!r}", name=name)
