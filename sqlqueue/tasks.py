"""Task: a registered function, and the ways to ask for it to run."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NoReturn, ParamSpec, TypeVar

from sqlqueue.conf import DEFAULT_MAX_RETRIES, DEFAULT_RETRY_BACKOFF_MAX, DEFAULT_RETRY_DELAY
from sqlqueue.exceptions import (
    MaxRetriesExceededError,
    Retry,
    TaskArgumentsError,
    TaskRegistrationError,
)
from sqlqueue.options import check_countdown, check_limit, check_name, check_priority
from sqlqueue.retry import backoff_delay
from sqlqueue.send_options import SendOptions

if TYPE_CHECKING:
    from sqlqueue.app import SQLQueue
    from sqlqueue.caller_connections import AsyncCallerConnection, CallerConnection
    from sqlqueue.result import AsyncResult

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """What a running task can know about its own job, as ``self.request`` with ``bind=True``."""

    id: str
    task: str
    args: Sequence[Any]
    kwargs: Mapping[str, Any]
    retries: int = 0
    """How many times this job has been retried before this run."""
    attempts: int = 1
    """How many times a worker has taken this job, this run included."""
    queue: str | None = None
    is_eager: bool = False


current_request: ContextVar[Request | None] = ContextVar("sqlqueue_request", default=None)
"""The request of the job running in this thread (each worker thread has its own)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When and how often a failed run is tried again."""

    max_retries: int | None = DEFAULT_MAX_RETRIES
    default_retry_delay: float = DEFAULT_RETRY_DELAY
    retry_backoff: bool | float = False
    retry_backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX
    autoretry_for: tuple[type[BaseException], ...] = ()

    def delay(self, retries: int) -> float:
        """Seconds before the next try when the task did not name a countdown."""
        if self.retry_backoff:
            factor = 1.0 if self.retry_backoff is True else float(self.retry_backoff)
            return backoff_delay(retries, factor=factor, maximum=self.retry_backoff_max)
        return self.default_retry_delay

    def exhausted(self, retries: int) -> bool:
        """Whether a job that has been retried ``retries`` times may not be retried again."""
        return self.max_retries is not None and retries >= self.max_retries


class Task(Generic[P, R]):
    """A function registered with ``@app.task``. Calling it runs it here and now; ``delay``
    and ``apply_async`` write a job for a worker instead."""

    def __init__(
        self,
        app: SQLQueue,
        fun: Callable[..., R],
        *,
        name: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        bind: bool = False,
        retry_policy: RetryPolicy | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
    ) -> None:
        self.app = app
        self.fun = fun
        self.name = check_name(name or task_name_for(fun), "task name")
        self.queue = check_name(queue, "queue name") if queue is not None else None
        self.priority = check_priority(priority) if priority is not None else None
        self.bind = bind
        self.retry_policy = retry_policy or RetryPolicy()
        self.time_limit = check_limit(time_limit, "time_limit")
        """Seconds after which a run is stopped and fails with ``TimeLimitExceeded``."""
        self.soft_time_limit = check_limit(soft_time_limit, "soft_time_limit")
        """Seconds after which the run gets ``SoftTimeLimitExceeded`` and may clean up."""
        self.__doc__ = fun.__doc__
        self.__wrapped__ = fun
        try:
            self._signature: inspect.Signature | None = inspect.signature(fun)
        except ValueError:  # some builtins have none; calls to them go unchecked
            self._signature = None
        self._positional_range = _positional_range(self._signature)

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if self.bind:
            return self.fun(self, *args, **kwargs)
        return self.fun(*args, **kwargs)

    @property
    def request(self) -> Request:
        """The job this task is running for; only meaningful inside a run."""
        request = current_request.get()
        if request is None or request.task != self.name:
            return Request(id="", task=self.name, args=(), kwargs={})
        return request

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
        connection: CallerConnection | None = None,
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
            connection: a connection whose open transaction the job joins (see the docs).

        Raises:
            TaskArgumentsError: the arguments do not fit the function's signature.
            SerializationError: an argument is not JSON-serialisable.
            InvalidOptionError: an option is out of range.
        """
        args, kwargs = self.check_arguments(args, kwargs)
        options = SendOptions.build(
            self.app.conf,
            self,
            countdown=countdown,
            eta=eta,
            expires=expires,
            queue=queue,
            priority=priority,
            connection=connection,
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
        connection: AsyncCallerConnection | None = None,
    ) -> AsyncResult:
        """``apply_async`` for async code. ``connection=`` takes an ``AsyncConnection`` or
        ``AsyncSession`` (SQLAlchemy), a ``psycopg.AsyncConnection`` or an
        ``aiosqlite.Connection``, whose open transaction the job joins."""
        args, kwargs = self.check_arguments(args, kwargs)
        options = SendOptions.build(
            self.app.conf,
            self,
            countdown=countdown,
            eta=eta,
            expires=expires,
            queue=queue,
            priority=priority,
            connection=connection,
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
        options = SendOptions.build(
            self.app.conf,
            self,
            countdown=countdown,
            eta=eta,
            expires=expires,
            queue=queue,
            priority=priority,
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
        connection: AsyncCallerConnection | None = None,
    ) -> list[AsyncResult]:
        """``delay_many`` for async code; ``connection=`` as in ``aapply_async``."""
        checked = self._checked_calls(calls)
        options = SendOptions.build(
            self.app.conf,
            self,
            countdown=countdown,
            eta=eta,
            expires=expires,
            queue=queue,
            priority=priority,
            connection=connection,
        )
        return await self.app.asend_jobs(self, self.name, checked, options)

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

    def retry(
        self,
        *,
        countdown: float | None = None,
        exc: BaseException | None = None,
        max_retries: int | None = None,
    ) -> NoReturn:
        """Stop this run and have the job tried again later (Celery's ``self.retry``).

        Raises ``Retry`` (so ``raise self.retry(...)`` reads as it does in Celery), or, once
        the job has used its ``max_retries``, ``exc`` when given and
        ``MaxRetriesExceededError`` otherwise.
        """
        retries = self.request.retries
        policy = self.retry_policy
        limit = max_retries if max_retries is not None else policy.max_retries
        if limit is not None and retries >= limit:
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"Task {self.name!r} job {self.request.id} has been retried {retries} times, "
                f"its limit; raise max_retries on the task to allow more."
            )
        delay = check_countdown(countdown) if countdown is not None else policy.delay(retries)
        raise Retry(delay, exc)


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
