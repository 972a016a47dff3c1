"""Task: a registered function, and the ways to ask for it to run."""

from __future__ import annotations

import inspect
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    Literal,
    NoReturn,
    Unpack,
    overload,
)

from typing_extensions import ParamSpec, TypeVar

from sqlqueue.conf import DEFAULT_MAX_RETRIES, DEFAULT_RETRY_BACKOFF_MAX, DEFAULT_RETRY_DELAY
from sqlqueue.exceptions import (
    InvalidOptionError,
    MaxRetriesExceededError,
    Retry,
    TaskArgumentsError,
    TaskRegistrationError,
)
from sqlqueue.limits import check_concurrency, rate_interval
from sqlqueue.options import (
    check_aware,
    check_countdown,
    check_job_id,
    check_limit,
    check_name,
    check_priority,
)
from sqlqueue.progress import update_state
from sqlqueue.request import Request, current_request
from sqlqueue.retry import RetryPolicy
from sqlqueue.send_options import CelerySendOptions, SendOptions
from sqlqueue.serialization import encode_json
from sqlqueue.task_options import set_options

if TYPE_CHECKING:
    from sqlqueue.app import SQLQueue
    from sqlqueue.caller_connections import AsyncCallerConnection, CallerConnection
    from sqlqueue.hooks import ExceptionInfo
    from sqlqueue.result import AsyncResult, EagerResult
    from sqlqueue.signatures import Signature

# With defaults, a bare ``class Base(Task)`` (as Celery projects write it) is Task[..., Any]
# to a type checker, even under --strict.
P = ParamSpec("P", default=...)
R = TypeVar("R", default=Any)


class Task(Generic[P, R]):
    """A function registered with ``@app.task``. Calling it runs it here and now; ``delay``
    and ``apply_async`` write a job for a worker instead.

    A subclass given as ``base=`` sets defaults for its tasks' options as class attributes,
    and may define Celery's hooks (``before_start``, ``on_success``, ``on_failure``,
    ``on_retry``, ``after_return``), which the worker calls with Celery's arguments.
    """

    # The options' defaults: a base class's attributes override them, and the decorator's
    # options override those, as in Celery.
    name: str = ""
    queue: str | None = None
    priority: int | None = None
    max_retries: int | None = DEFAULT_MAX_RETRIES
    default_retry_delay: float = DEFAULT_RETRY_DELAY
    autoretry_for: tuple[type[BaseException], ...] = ()
    dont_autoretry_for: tuple[type[BaseException], ...] = ()
    retry_kwargs: Mapping[str, Any] = MappingProxyType({})
    retry_backoff: bool | float = False
    retry_backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX
    retry_jitter: bool = True
    time_limit: float | None = None
    """Seconds after which a run is stopped and fails with ``TimeLimitExceeded``."""
    soft_time_limit: float | None = None
    """Seconds after which the run gets ``SoftTimeLimitExceeded`` and may clean up."""
    ignore_result: bool | None = None
    """Keep no return value (the job still ends SUCCESS); None: ``app.conf.task_ignore_result``."""
    expires: float | datetime | None = None
    """The default ``expires=`` of ``apply_async``."""
    unique: bool = False
    """At most one unfinished job per call: a send whose call (the task's name, its
    arguments and keyword arguments) is that of an unfinished job writes nothing and answers
    with that job (``unique``; docs/tasks.md, "Unique jobs"). ``unique_key=`` overrides."""
    rate_limit: str | float | None = None
    """At most this many jobs start, across all workers ("10/s", "100/m", "5/h"; docs/limits.md)."""
    concurrency_limit: int | None = None
    """At most this many jobs run at once across all workers, per ``concurrency_key``."""
    concurrency_key: Callable[..., str] | None = None
    """Called with a call's arguments when it is sent: the group its limit counts in."""

    def __init__(
        self, app: SQLQueue, fun: Callable[..., R], *, bind: bool = False, **options: Any
    ) -> None:
        self.app = app
        self.fun = fun
        self.bind = bind
        set_options(self, options)
        self.name = check_name(self.name or task_name_for(fun), "task name")
        if self.queue is not None:
            check_name(self.queue, "queue name")
        if self.priority is not None:
            check_priority(self.priority)
        self.retry_policy = RetryPolicy(
            max_retries=self.max_retries,
            default_retry_delay=self.default_retry_delay,
            retry_backoff=self.retry_backoff,
            retry_backoff_max=self.retry_backoff_max,
            retry_jitter=self.retry_jitter,
            autoretry_for=self.autoretry_for,
            dont_autoretry_for=self.dont_autoretry_for,
            retry_kwargs=self.retry_kwargs,
        )
        self.time_limit = check_limit(self.time_limit, "time_limit")
        self.soft_time_limit = check_limit(self.soft_time_limit, "soft_time_limit")
        self.rate_interval = rate_interval(self.rate_limit)
        """Seconds between two starts of its jobs (``rate_limit``), or None."""
        self.concurrency_limit = check_concurrency(self.concurrency_limit, self.concurrency_key)
        self.hooks = frozenset(
            hook for hook in HOOKS if getattr(type(self), hook) is not getattr(Task, hook)
        )
        """The hooks this task's class defines: only those are called."""
        self.run: Callable[..., R] = partial(fun, self) if bind else fun
        """The function itself (with the task as ``self`` when bound), as Celery's ``run``:
        a base class's ``__call__`` calls it."""
        self.__doc__ = fun.__doc__
        self.__wrapped__ = fun
        try:
            self._signature: inspect.Signature | None = inspect.signature(fun)
        except ValueError:  # some builtins have none; calls to them go unchecked
            self._signature = None
        self._positional_range = _positional_range(self._signature)

    if not TYPE_CHECKING:  # a type checker keeps reporting unknown attributes

        def __getattr__(self, name):
            # Only names no attribute has: Celery's that sqlqueue lacks say what to do instead.
            from sqlqueue.celery_compat import TASK_GAPS, refuse

            refuse(self, "task", name, TASK_GAPS)

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.run(*args, **kwargs)

    @property
    def request(self) -> Request:
        """The job this task is running for; outside a run, one with ``called_directly``."""
        request = current_request.get()
        if request is None or request.task != self.name:
            return Request(id="", task=self.name, args=(), kwargs={}, called_directly=True)
        return request

    def update_state(
        self,
        task_id: str | None = None,
        state: str | None = None,
        meta: Any = None,
        **kwargs: Any,
    ) -> None:
        """Report the running job's progress (Celery's ``update_state``): ``r.state`` is
        ``state`` and ``r.info`` is ``meta`` (JSON) until the job leaves STARTED.

        Raises:
            NotRunningError: no job is running here.
            InvalidOptionError: a state the worker records (SUCCESS, …), or another job's id.
            SerializationError: ``meta`` is not JSON-serialisable.
        """
        update_state(self.app, current_request.get(), task_id, state, meta, kwargs)

    @property
    def ignores_result(self) -> bool:
        """Whether a run keeps no return value: ``ignore_result``, else the app's setting."""
        if self.ignore_result is None:
            return self.app.conf.task_ignore_result
        return self.ignore_result

    # Celery's hooks: called by the worker (and by eager runs) in the process that ran the
    # task, after the run and before its outcome is written. See docs/celery.md.

    def before_start(self, task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Called before each run; an exception here fails the run as the task's would."""

    def on_success(
        self, retval: Any, task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> None:
        """Called after a run that returned ``retval``."""

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: ExceptionInfo,
    ) -> None:
        """Called after a run that failed the job with ``exc``."""

    def on_retry(
        self,
        exc: BaseException | None,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: ExceptionInfo,
    ) -> None:
        """Called after a run that asked for a retry; ``exc`` is the error given to it."""

    def after_return(
        self,
        status: str,
        retval: Any,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: ExceptionInfo | None,
    ) -> None:
        """Called after ``on_success`` or ``on_failure``: ``status`` is SUCCESS or FAILURE,
        ``retval`` the return value or the exception."""

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult:
        """Ask for ``task(*args, **kwargs)`` to run on a worker; shortcut for ``apply_async``."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: datetime | None = None,
        expires: float | datetime | None = None,
        queue: str | None = None,
        priority: int | None = None,
        task_id: str | None = None,
        unique_key: str | None = None,
        connection: CallerConnection | None = None,
        **celery_options: Unpack[CelerySendOptions],
    ) -> AsyncResult:
        """Write a job for this task and return its receipt.

        Args:
            args: positional arguments, JSON-serialisable.
            kwargs: keyword arguments, JSON-serialisable.
            countdown: seconds from now before the job may run.
            eta: an aware datetime before which the job may not run.
            expires: seconds from now, or an aware datetime, after which a job not yet
                started is never run (it ends REVOKED).
            queue: the queue to write to; default: the task's, else ``task_default_queue``.
            priority: higher runs first; default: the task's, else 0.
            task_id: the job's id, of your choosing (a string of up to 255 characters);
                default: a new UUID.
            unique_key: at most one unfinished job per key (a string of up to 255
                characters): while one holds it, the send writes nothing and returns that
                job's receipt, with ``duplicate`` True; default: the task's own key when it
                is ``unique=True``, else none.
            connection: a connection whose open transaction the job joins (see the docs).
            celery_options: Celery's other options: ``link=`` (a signature, or a list of
                them, sent with this job's result first once it succeeds) and
                ``link_error=`` (sent with this job's id first if it fails), written with
                the job in one transaction; ``retry``, ``retry_policy``,
                ``serializer="json"``, ``compression`` and ``add_to_parent`` change nothing
                here and warn; the others are refused, naming the sqlqueue way.

        Raises:
            TaskArgumentsError: the arguments do not fit the function's signature.
            SerializationError: an argument is not JSON-serialisable.
            InvalidOptionError: an option is out of range.
            DuplicateJobIdError: a job with ``task_id`` exists already.
        """
        link, link_error = celery_options.pop("link", None), celery_options.pop("link_error", None)
        if link is not None or link_error is not None:
            # Callbacks make a workflow; without them, the send stays the plain one below.
            callbacks = {"link": link, "link_error": link_error}
            return self.signature(
                args,
                kwargs,
                countdown=countdown,
                eta=eta,
                expires=expires,
                queue=queue,
                priority=priority,
                task_id=task_id,
                unique_key=unique_key,
                **callbacks,
                **celery_options,
            ).apply_async(connection=connection)
        args, kwargs = self.check_arguments(args, kwargs)
        options = SendOptions.build(
            self.app.conf,
            self,
            args=args,
            kwargs=kwargs,
            countdown=countdown,
            eta=eta,
            expires=expires,
            queue=queue,
            priority=priority,
            task_id=task_id,
            unique_key=unique_key,
            connection=connection,
            **celery_options,
        )
        return self.app.send_job(self, self.name, args, kwargs, options)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult:
        """``delay`` for async code: the job is written with the database's async driver."""
        return await self.aapply_async(args, kwargs)

    async def aapply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: datetime | None = None,
        expires: float | datetime | None = None,
        queue: str | None = None,
        priority: int | None = None,
        task_id: str | None = None,
        unique_key: str | None = None,
        connection: AsyncCallerConnection | None = None,
        **celery_options: Unpack[CelerySendOptions],
    ) -> AsyncResult:
        """``apply_async`` for async code. ``connection=`` takes an ``AsyncConnection`` or
        ``AsyncSession`` (SQLAlchemy), a ``psycopg.AsyncConnection`` or an
        ``aiosqlite.Connection``, whose open transaction the job joins."""
        args, kwargs = self.check_arguments(args, kwargs)
        options = SendOptions.build(
            self.app.conf,
            self,
            args=args,
            kwargs=kwargs,
            countdown=countdown,
            eta=eta,
            expires=expires,
            queue=queue,
            priority=priority,
            task_id=task_id,
            unique_key=unique_key,
            connection=connection,
            **celery_options,
        )
        results = await self.app.asend_jobs(self, self.name, [(args, kwargs)], options)
        return results[0]

    def delay_many(
        self,
        calls: Iterable[Sequence[Any] | Mapping[str, Any]],
        *,
        countdown: float | None = None,
        eta: datetime | None = None,
        expires: float | datetime | None = None,
        queue: str | None = None,
        priority: int | None = None,
        unique_key: str | None = None,
        connection: CallerConnection | None = None,
    ) -> list[AsyncResult]:
        """Write one job per call, all in one statement, and return their receipts in order.

        Each call is a tuple of positional arguments (``add.delay_many([(1, 2), (3, 4)])``)
        or a dict of keyword arguments (``welcome.delay_many([{"user_id": 7}])``). Every
        call is checked as ``delay`` checks it, and one bad call writes none. The options
        (those of ``apply_async``) apply to all. With ``connection=`` (or inside
        ``app.using``) the jobs join that transaction: all of them commit, or none.
        """
        checked = self._checked_calls(calls)
        # One route for the whole send, asked with its first call's arguments.
        first_args, first_kwargs = checked[0] if checked else ([], {})
        options = SendOptions.build(
            self.app.conf,
            self,
            args=first_args,
            kwargs=first_kwargs,
            countdown=countdown,
            eta=eta,
            expires=expires,
            queue=queue,
            priority=priority,
            unique_key=unique_key,
            connection=connection,
        )
        return self.app.send_jobs(self, self.name, checked, options)

    async def adelay_many(
        self,
        calls: Iterable[Sequence[Any] | Mapping[str, Any]],
        *,
        countdown: float | None = None,
        eta: datetime | None = None,
        expires: float | datetime | None = None,
        queue: str | None = None,
        priority: int | None = None,
        unique_key: str | None = None,
        connection: AsyncCallerConnection | None = None,
    ) -> list[AsyncResult]:
        """``delay_many`` for async code; ``connection=`` as in ``aapply_async``."""
        checked = self._checked_calls(calls)
        # One route for the whole send, asked with its first call's arguments.
        first_args, first_kwargs = checked[0] if checked else ([], {})
        options = SendOptions.build(
            self.app.conf,
            self,
            args=first_args,
            kwargs=first_kwargs,
            countdown=countdown,
            eta=eta,
            expires=expires,
            queue=queue,
            priority=priority,
            unique_key=unique_key,
            connection=connection,
        )
        return await self.app.asend_jobs(self, self.name, checked, options)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature of a call of this task (Celery's ``task.s``), with partial arguments:
        ``add.s(2).delay(4)`` sends ``add(4, 2)``; in a chain, the previous step's result
        comes first."""
        return self.signature(args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature (Celery's ``task.si``): in a chain it waits for the step
        before it but ignores its result, and arguments given when sending are ignored."""
        return self.signature(args, kwargs, immutable=True)

    def signature(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        **more_options: Any,
    ) -> Signature:
        """Celery's ``task.signature(args, kwargs, **options)``: a signature of a call of
        this task with these send options (``immutable=True`` for ``si``)."""
        from sqlqueue.signatures import Signature  # which imports this module

        return Signature(self, args, kwargs, options, **more_options)

    subtask = signature
    """Celery's older name for ``signature``."""

    def _checked_calls(
        self, calls: Iterable[Sequence[Any] | Mapping[str, Any]]
    ) -> list[tuple[Sequence[Any], dict[str, Any]]]:
        if isinstance(calls, str | bytes | Mapping) or not isinstance(calls, Iterable):
            raise TaskArgumentsError(
                f"delay_many takes a list of calls, not {type(calls).__name__}: "
                "e.g. [(1, 2), (3, 4)] or [{'user_id': 7}]."
            )
        checked: list[tuple[Sequence[Any], dict[str, Any]]] = []
        # The usual call, a tuple whose length the signature takes, is checked here, without
        # a call of _fit each: the same test as its first, per job of a large send. It is
        # kept as it is (a tuple's JSON is a list's), not copied: a large send's time goes
        # largely to the garbage collector walking its objects, so it makes fewer.
        fewest, most = self._positional_range or (1, 0)
        fewest, most = fewest - self.bind, most - self.bind
        for call in calls:
            if isinstance(call, tuple):  # the usual shape, and the cheapest test
                fits = fewest <= len(call) <= most
                checked.append((call, {}) if fits else self._fit(list(call), {}))
            elif isinstance(call, list):
                checked.append(self._fit(list(call), {}))
            elif isinstance(call, Mapping):
                checked.append(self._fit([], dict(call)))
            elif isinstance(call, Sequence) and not isinstance(call, str | bytes):
                checked.append(self._fit(list(call), {}))
            else:
                raise TaskArgumentsError(
                    f"Each call in delay_many is a tuple of positional arguments or a dict of "
                    f"keyword arguments, not {call!r}; for a one-argument task write "
                    f"[({call!r},), ...]."
                )
        return checked

    def check_arguments(
        self, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None
    ) -> tuple[list[Any], dict[str, Any]]:
        """Refuse arguments the function could not be called with, as Celery does at send time."""
        return self._fit(*argument_lists(args, kwargs))

    def _fit(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        if not kwargs and self._positional_range is not None:
            fewest, most = self._positional_range
            if fewest <= len(args) + self.bind <= most:
                return args, kwargs  # what bind() would accept, at a fraction of its cost
        bound_args = [self, *args] if self.bind else args
        try:
            if self._signature is not None:
                self._signature.bind(*bound_args, **kwargs)
        except TypeError as exc:
            raise TaskArgumentsError(
                f"Task {self.name!r} cannot take these arguments: {exc}."
            ) from exc
        return args, kwargs

    @overload
    def retry(
        self,
        args: Sequence[Any] | None = ...,
        kwargs: Mapping[str, Any] | None = ...,
        exc: BaseException | None = ...,
        throw: Literal[True] = ...,
        eta: datetime | None = ...,
        countdown: float | None = ...,
        max_retries: int | None = ...,
        **options: Any,
    ) -> NoReturn: ...
    @overload
    def retry(
        self,
        args: Sequence[Any] | None = ...,
        kwargs: Mapping[str, Any] | None = ...,
        exc: BaseException | None = ...,
        *,
        throw: Literal[False],
        eta: datetime | None = ...,
        countdown: float | None = ...,
        max_retries: int | None = ...,
        **options: Any,
    ) -> Retry: ...

    def retry(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Retry:
        """Have the job run again later (Celery's ``self.retry``), after ``countdown``
        seconds, at ``eta``, or after ``default_retry_delay``; with ``args``/``kwargs``
        the next run gets those arguments instead.

        Raises ``Retry``, which ends the run (``raise self.retry(...)`` reads as in Celery);
        with ``throw=False`` returns it instead, and the job is retried once the run ends,
        whatever it returns or raises. Once the job has used its ``max_retries`` (the task's,
        or the one given here), raises ``exc`` when given and ``MaxRetriesExceededError``
        otherwise. Outside a run (a direct call) raises ``exc``, or ``Retry``. Celery's
        other options (``queue``, ``priority``, …) are refused: the job keeps its own.
        """
        if options:
            raise InvalidOptionError(
                f"retry() takes args, kwargs, exc, throw, eta, countdown and max_retries, not "
                f"{', '.join(sorted(options))}: a retried job keeps its queue, priority and "
                "limits."
            )
        request = self.request
        if request.called_directly:
            raise exc or Retry(0.0)
        if self.retry_policy.exhausted(request.retries, max_retries):
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"Task {self.name!r} job {request.id} has been retried {request.retries} "
                "times, its limit; raise max_retries on the task to allow more."
            )
        if eta is not None:
            if countdown is not None:
                raise InvalidOptionError("Give retry() countdown= or eta=, not both.")
            countdown = max(0.0, (check_aware(eta, "eta") - datetime.now(UTC)).total_seconds())
        new_args = new_kwargs = None
        if args is not None or kwargs is not None:
            new_args, new_kwargs = self.check_arguments(
                request.args if args is None else args,
                request.kwargs if kwargs is None else kwargs,
            )
            encode_json(new_args, f"The arguments of task {self.name!r}'s retry")
            encode_json(new_kwargs, f"The keyword arguments of task {self.name!r}'s retry")
        retry = Retry(
            self.default_retry_delay if countdown is None else check_countdown(countdown),
            exc,
            args=new_args,
            kwargs=new_kwargs,
        )
        if throw:
            raise retry
        request.retry_later[:] = [retry]
        return retry

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        task_id: str | None = None,
        throw: bool | None = None,
        **options: Any,
    ) -> EagerResult:
        """Run the task here and now, as a worker would (hooks, retries at once), and return
        an ``EagerResult``; nothing is written. ``throw`` (default:
        ``app.conf.task_eager_propagates``) raises a failure instead of returning it;
        ``options`` are those of ``apply_async``, checked, of which only ``queue`` shows
        (in ``self.request.queue``)."""
        from sqlqueue.eager import run_eagerly  # eager runs tasks: it imports this module

        args, kwargs = self.check_arguments(args, kwargs)
        encode_json(args, f"The arguments of task {self.name!r}")
        encode_json(kwargs, f"The keyword arguments of task {self.name!r}")
        queue = SendOptions.build(self.app.conf, self, **options).queue
        job_id = str(uuid.uuid4()) if task_id is None else check_job_id(task_id)
        propagate = self.app.conf.task_eager_propagates if throw is None else throw
        return run_eagerly(self.app, self, job_id, args, kwargs, queue, propagate=propagate)

    # Last in the class: mypy reads a later annotation "AsyncResult" as this method.
    def AsyncResult(self, task_id: str) -> AsyncResult:
        """The receipt of an existing job of this task, from its id (``app.AsyncResult``);
        ``task_id`` is Celery's name for it."""
        return self.app.AsyncResult(task_id)


HOOKS = ("before_start", "on_success", "on_failure", "on_retry", "after_return")
"""Celery's hooks, the methods of ``Task`` a base class may define."""


def argument_lists(
    args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None
) -> tuple[list[Any], dict[str, Any]]:
    """``args`` and ``kwargs`` as the list and dict a job stores, refusing other shapes."""
    if args is not None and (isinstance(args, str | bytes) or not isinstance(args, Sequence)):
        raise TaskArgumentsError(f"args must be a list or tuple, not {type(args).__name__}.")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise TaskArgumentsError(f"kwargs must be a dict, not {type(kwargs).__name__}.")
    return list(args or ()), dict(kwargs or {})


def _positional_range(signature: inspect.Signature | None) -> tuple[int, int] | None:
    """How many positional arguments a function with only plain parameters takes (fewest,
    most); None for any other signature, whose calls ``Signature.bind`` checks."""
    if signature is None:
        return None
    parameters = signature.parameters.values()
    plain = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(parameter.kind not in plain for parameter in parameters):
        return None
    required = sum(parameter.default is inspect.Parameter.empty for parameter in parameters)
    return required, len(parameters)


def task_name_for(fun: Callable[..., Any]) -> str:
    """``module.function``, like Celery. Code run as ``__main__`` is named by the module a
    worker would import: ``python -m pkg.mod`` gives ``pkg.mod``, ``python tasks.py`` gives
    ``tasks``."""
    module = fun.__module__
    if module == "__main__":
        main = sys.modules["__main__"]
        spec = getattr(main, "__spec__", None)
        main_file = getattr(main, "__file__", None)
        if spec is not None and spec.name:
            module = spec.name
        elif main_file is not None:
            module = Path(main_file).stem
        else:
            raise TaskRegistrationError(
                f"Cannot name task {fun.__qualname__!r} defined interactively; "
                "pass name= to @app.task."
            )
    return f"{module}.{fun.__qualname__}"
