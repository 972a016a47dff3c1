"""The app: where the queue lives (a database), which tasks exist, and how jobs are sent."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Concatenate, Literal, Unpack, overload

from sqlalchemy.engine import Engine

from sqlqueue import canvas, shared, tasks
from sqlqueue.caller_connections import CallerConnection
from sqlqueue.conf import Settings, database_url_from_env
from sqlqueue.dialects import create_engine_for_url
from sqlqueue.dialects.base import Dialect
from sqlqueue.eager import run_all_eagerly, run_workflow_eagerly
from sqlqueue.exceptions import (
    ConfigurationError,
    InvalidOptionError,
    TaskRegistrationError,
    UnknownTaskError,
)
from sqlqueue.jobs import NewJobs
from sqlqueue.limits import limits_of
from sqlqueue.options import check_job_id, check_name
from sqlqueue.periodic import Signal, add_periodic_task
from sqlqueue.result import AsyncResult
from sqlqueue.send_options import SendOptions
from sqlqueue.store import JobStore
from sqlqueue.task_options import TaskOptions
from sqlqueue.tasks import P, R, Task, argument_lists
from sqlqueue.unique import unique_keys

if TYPE_CHECKING:
    from sqlqueue.plans import WorkflowPlan


class TaskRegistry(dict[str, Task[..., Any]]):
    """Task name -> Task; a missing name raises ``UnknownTaskError`` with a hint."""

    def __missing__(self, name: str) -> Task[..., Any]:
        raise UnknownTaskError(
            f"No task named {name!r} is registered; registered: {sorted(self) or 'none'}. "
            "Import the module that defines it before using it."
        )

    def register(self, task: Task[..., Any]) -> None:
        """Add a task; refuse a second, different function under a name already taken."""
        existing = self.get(task.name)
        if existing is not None and not _same_function(existing.fun, task.fun):
            raise TaskRegistrationError(
                f"Task name {task.name!r} is already used by {existing.fun.__module__}."
                f"{existing.fun.__qualname__}; give one of them another name= in @app.task."
            )
        self[task.name] = task


class SQLQueue:
    """A queue in a SQL database, and the tasks that run from it.

    Args:
        url: a SQLAlchemy URL; ``postgresql://`` uses psycopg 3. Default:
            ``$SQLQUEUE_DATABASE_URL``, else ``sqlite:///sqlqueue.db``.
        engine: an existing SQLAlchemy engine to share (and its pool), instead of a URL.
    """

    def __init__(self, url: str | None = None, *, engine: Engine | None = None) -> None:
        if url is not None and engine is not None:
            raise ConfigurationError("Give SQLQueue a url or an engine, not both.")
        if engine is not None:
            self._store = JobStore.for_engine(engine)
        else:
            self._store = JobStore(*create_engine_for_url(url or database_url_from_env()))
        self._start()

    Task: type[tasks.Task[..., Any]] = Task
    """The base class of this app's tasks when ``@app.task`` or ``@shared_task`` is given no
    ``base=``. Celery's ``app.Task``: subclass it (``class MyTask(app.Task)``), or replace it
    (``app.Task = ContextTask``, Flask's pattern) before the tasks are defined."""

    def _start(self, *, set_as_current: bool = True) -> None:
        # Everything but the database; a subclass that finds its database later starts here.
        self.conf = Settings()
        self.tasks = TaskRegistry()
        self._connection: ContextVar[CallerConnection | None] = ContextVar(
            "sqlqueue_connection", default=None
        )
        self.on_after_configure = Signal("on_after_configure")
        """Celery's signal, sent once, as the app's periodic tasks are first read: connect
        ``setup(sender, **kwargs)`` that calls ``sender.add_periodic_task``."""
        self.on_after_finalize = Signal("on_after_finalize")
        """Celery's signal, sent once, right after ``on_after_configure``."""
        self.periodic_signals_sent = False
        shared.adopt(self, current=set_as_current)  # with every shared task

    def set_current(self) -> None:
        """Make this the app that shared tasks use (by default, the last app made)."""
        shared.set_current_app(self)

    def __repr__(self) -> str:
        return f"<SQLQueue {self.engine.url.render_as_string(hide_password=True)}>"

    @property
    def store(self) -> JobStore:
        """Where the app's jobs are read and written."""
        return self._store

    @property
    def engine(self) -> Engine:
        return self.store.engine

    @property
    def dialect(self) -> Dialect:
        return self.store.dialect

    def default_connection(self) -> CallerConnection | None:
        """The connection a job joins when ``apply_async`` is given none: the one of an
        enclosing ``app.using(...)`` block, else None (the job commits on its own)."""
        return self._connection.get()

    def around_job(self) -> AbstractContextManager[None]:
        """Entered around every run of a task, in the thread or process that runs it."""
        return nullcontext()

    def import_default_modules(self) -> None:
        """Import what a worker needs before it takes jobs (and each process-pool child once
        it has loaded the app): nothing here; ``Celery`` imports its ``include`` modules."""

    @overload
    def task(self, fun: Callable[P, R], /) -> tasks.Task[P, R]: ...
    @overload
    def task(
        self, *, bind: Literal[True], **options: Unpack[TaskOptions]
    ) -> Callable[[Callable[Concatenate[Any, P], R]], tasks.Task[P, R]]: ...
    @overload
    def task(
        self, *, bind: Literal[False] = ..., **options: Unpack[TaskOptions]
    ) -> Callable[[Callable[P, R]], tasks.Task[P, R]]: ...

    def task(self, fun: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(name=..., ...)``.

        Options: ``name`` (default ``module.function``), ``queue``, ``priority``, ``bind``
        (pass the task as ``self``), ``base`` (a ``Task`` subclass whose attributes are the
        defaults of the others, and whose hooks are called; default: ``app.Task``), the retry
        policy (``max_retries``, ``default_retry_delay``, ``autoretry_for``, ``dont_autoretry_for``,
        ``retry_kwargs``, ``retry_backoff``, ``retry_backoff_max``, ``retry_jitter``), the
        time limits in seconds (``time_limit``, ``soft_time_limit``), ``ignore_result``,
        ``expires`` and ``unique``; see docs/tasks.md.
        """
        base = options.pop("base", self.Task)
        if not (isinstance(base, type) and issubclass(base, Task)):
            raise TaskRegistrationError(f"base= takes a subclass of sqlqueue.Task, not {base!r}.")

        def register(fun: Callable[..., Any]) -> Task[..., Any]:
            if not callable(fun):
                raise TaskRegistrationError(f"@app.task decorates a function, not {fun!r}.")
            task: Task[..., Any] = base(self, fun, **options)
            self.tasks.register(task)
            return task

        return register(fun) if fun is not None else register

    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Send a job by task name, from code that cannot import the task.

        A name registered here is checked like ``apply_async``; any other name is written
        as given, for a worker that knows it (a worker that does not fails the job with a
        message naming the task). Takes the same options as ``Task.apply_async``; any other
        is refused with ``InvalidOptionError``; ``link=``/``link_error=`` as there.
        """
        if options.get("link") is not None or options.get("link_error") is not None:
            connection = options.pop("connection", None)
            return self.signature(name, args, kwargs, **options).apply_async(connection=connection)
        check_name(name, "task name")
        task = self.tasks.get(name)
        if task is not None:
            args, kwargs = task.check_arguments(args, kwargs)
        elif self.conf.task_always_eager:
            raise UnknownTaskError(
                f"task_always_eager is on but no task named {name!r} is registered here to run."
            )
        else:
            args, kwargs = argument_lists(args, kwargs)
        return self.send_job(
            task,
            name,
            args,
            kwargs,
            SendOptions.build(self.conf, task, name=name, args=args, kwargs=kwargs, **options),
        )

    def send_job(
        self,
        task: tasks.Task[..., Any] | None,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any],
        options: SendOptions,
    ) -> AsyncResult:
        """Write one job (or run it inline when eager), its arguments encoded and checked first."""
        return self.send_jobs(task, name, [(args, kwargs)], options)[0]

    def send_jobs(
        self,
        task: tasks.Task[..., Any] | None,
        name: str,
        calls: Sequence[tuple[Sequence[Any], dict[str, Any]]],
        options: SendOptions,
    ) -> list[AsyncResult]:
        """``send_job`` for many calls of one task, all written in one statement, all or
        none: a call whose arguments the store refuses (not JSON, too large) writes none (or
        they run inline, in order, when eager, once all are checked)."""
        new_jobs = self._new_jobs(task, name, calls, options)
        if self.conf.task_always_eager and task is not None:
            new_jobs.arguments()  # refused as a worker's send would be, though none is written
            return run_all_eagerly(self, task, new_jobs.ids, calls, options)
        connection = options.connection
        if connection is None:
            connection = self.default_connection()
        keys = unique_keys(task, name, calls, options)
        if keys is not None:
            return self._send_unique_jobs(new_jobs, keys, connection)
        if new_jobs.ids:
            self.store.insert_jobs(new_jobs, connection)
        return [AsyncResult(job_id, self) for job_id in new_jobs.ids]

    def _send_unique_jobs(
        self, new_jobs: NewJobs, keys: list[str], connection: CallerConnection | None
    ) -> list[AsyncResult]:
        """Write the first call of each key, unless an unfinished job holds the key."""
        unique_jobs, first = _first_of_each_key(new_jobs, keys)
        holders = self.store.insert_unique_jobs(unique_jobs, connection)
        return self._unique_results(new_jobs, keys, first, holders)

    def _unique_results(
        self, new_jobs: NewJobs, keys: list[str], first: dict[str, int], holders: dict[str, str]
    ) -> list[AsyncResult]:
        """Each call's receipt: of the job holding its key, a duplicate unless the job is the
        call's own."""
        return [
            AsyncResult(
                holders[key], self, duplicate=first[key] != at or holders[key] != new_jobs.ids[at]
            )
            for at, key in enumerate(keys)
        ]

    async def asend_jobs(
        self,
        task: tasks.Task[..., Any] | None,
        name: str,
        calls: Sequence[tuple[Sequence[Any], dict[str, Any]]],
        options: SendOptions,
    ) -> list[AsyncResult]:
        """``send_jobs`` for async code: the same checks, written with an async driver."""
        new_jobs = self._new_jobs(task, name, calls, options)
        if self.conf.task_always_eager and task is not None:
            new_jobs.arguments()  # refused as a worker's send would be, though none is written
            # In a thread, where an async def task can have an event loop of its own.
            return await asyncio.to_thread(
                run_all_eagerly, self, task, new_jobs.ids, calls, options
            )
        keys = unique_keys(task, name, calls, options)
        if keys is not None:
            unique_jobs, first = _first_of_each_key(new_jobs, keys)
            holders = await self.store.ainsert_unique_jobs(unique_jobs, options.connection)
            return self._unique_results(new_jobs, keys, first, holders)
        if new_jobs.ids:
            await self.store.ainsert_jobs(new_jobs, options.connection)
        return [AsyncResult(job_id, self) for job_id in new_jobs.ids]

    def _new_jobs(
        self,
        task: tasks.Task[..., Any] | None,
        name: str,
        calls: Sequence[tuple[Sequence[Any], dict[str, Any]]],
        options: SendOptions,
    ) -> NewJobs:
        """The jobs to write: their calls fit the task (``Task`` checked them), and their
        options were checked when they were built; their JSON is checked as they are written
        (``NewJobs.arguments``)."""
        check_name(name, "task name")
        if options.task_id is not None and len(calls) != 1:
            raise InvalidOptionError(
                f"task_id= names one job, and this send has {len(calls)}; send each with its "
                "own apply_async(task_id=...), or leave the ids to sqlqueue."
            )
        return NewJobs(
            task_name=name,
            queue=options.queue,
            priority=options.priority,
            eta=options.eta,
            countdown=options.countdown or 0.0,
            expires_at=options.expires_at,
            expires_in=options.expires_in,
            ids=[options.task_id] if options.task_id is not None else new_job_ids(len(calls)),
            calls=calls,
            max_payload_bytes=self.conf.max_payload_bytes,
            limits=None
            if task is None
            else limits_of(
                name, task.concurrency_limit, task.concurrency_key, task.rate_interval, calls
            ),
        )

    def send_workflow(self, plan: WorkflowPlan) -> Mapping[str, AsyncResult]:
        """Write a workflow's jobs in one transaction (the caller's, when the plan has a
        connection or an ``app.using()`` block encloses the send), or run them inline when
        eager; the receipt of each of its jobs, by id."""
        if self.conf.task_always_eager:
            return run_workflow_eagerly(self, plan)
        for kind, refused in (
            ("unique tasks (unique=True)", _is_unique),
            ("tasks with a rate or concurrency limit", _is_limited),
        ):
            names = sorted(
                {job.task_name for job in plan.jobs if refused(self.tasks.get(job.task_name))}
            )
            if names:
                raise InvalidOptionError(
                    f"{', '.join(names)}: {kind} are not supported in workflows yet; send "
                    f"{'it' if len(names) == 1 else 'them'} alone with delay() or apply_async()."
                )
        if plan.jobs:  # an empty group has none
            connection = plan.connection
            self.store.insert_workflow(
                plan,
                self.conf.max_payload_bytes,
                connection if connection is not None else self.default_connection(),
            )
        return {job.id: AsyncResult(job.id, self) for job in plan.jobs}

    def add_periodic_task(
        self,
        schedule: Any,
        sig: Any,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | Sequence[Any] = (),
        name: str | None = None,
        **options: Any,
    ) -> str:
        """Send ``sig`` at each tick of ``schedule`` (seconds, a ``timedelta``, a ``crontab``
        or a ``schedule``), as Celery's: an entry in ``app.conf.beat_schedule`` named ``name``,
        else the signature's ``repr``; returns the name. Checked at once; ``options`` are
        send options (``queue``, ``priority``, ``expires``). See docs/scheduling.md."""
        return add_periodic_task(self, schedule, sig, args, kwargs, name, **options)

    def signature(self, *args: Any, **kwargs: Any) -> canvas.Signature:
        """Celery's ``app.signature``: ``sqlqueue.signature`` with this app's tasks, e.g.
        ``app.signature("tasks.add", args=(2, 2))``."""
        return canvas.signature(*args, **{"app": self, **kwargs})

    def AsyncResult(self, job_id: str) -> AsyncResult:
        """The receipt of an existing job, from its id alone."""
        return AsyncResult(check_job_id(job_id), self)

    @contextmanager
    def using(self, connection: CallerConnection) -> Iterator[CallerConnection]:
        """Make every ``delay()``/``apply_async()`` in this block join ``connection``'s transaction."""
        token = self._connection.set(connection)
        try:
            yield connection
        finally:
            self._connection.reset(token)


def new_job_ids(count: int) -> list[str]:
    """``count`` time-ordered (version 7) UUIDs in text form, ascending.

    Time-ordered, so that a new job's id enters the primary key's index at its right edge,
    with the other new ones, whatever the history the table holds: random ids land on a
    page of their own each, and with ten million finished jobs beside them those pages are
    cold, each first write after a checkpoint a full page in the WAL (docs/storage.md
    measures it). In ascending order, so that the jobs of one send, equal in priority and
    time, are taken in call order. The random bits come from one ``os.urandom`` read.
    """
    millis = f"{time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF:012x}"
    stamp = f"{millis[:8]}-{millis[8:]}-7"
    digits = os.urandom(10 * count).hex()
    return sorted(
        f"{stamp}{digits[at : at + 3]}-{_VARIANT[digits[at + 3]]}{digits[at + 4 : at + 7]}-"
        f"{digits[at + 7 : at + 19]}"
        for at in range(0, 20 * count, 20)
    )


_VARIANT = dict(zip("0123456789abcdef", "89ab89ab89ab89ab", strict=True))
"""A random hex digit, as the RFC 9562 variant's digit (binary 10xx) that replaces it."""


def _first_of_each_key(new_jobs: NewJobs, keys: list[str]) -> tuple[NewJobs, dict[str, int]]:
    """The jobs of the first call of each key, and where each key's first call is."""
    first = {key: at for at, key in reversed(list(enumerate(keys)))}
    kept = sorted(first.values())
    return new_jobs.only(kept, [keys[at] for at in kept]), first


def _is_unique(task: Task[..., Any] | None) -> bool:
    return task is not None and task.unique


def _is_limited(task: Task[..., Any] | None) -> bool:
    return task is not None and (
        task.concurrency_limit is not None or task.rate_interval is not None
    )


def _same_function(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    # A module imported twice (as __main__ and by name) defines the same task twice.
    code_a, code_b = getattr(a, "__code__", None), getattr(b, "__code__", None)
    if a is b:
        return True
    if code_a is None or code_b is None:
        return False
    return (code_a.co_filename, code_a.co_firstlineno) == (
        code_b.co_filename,
        code_b.co_firstlineno,
    )
