"""``shared_task``: tasks defined without an app, and the current app they use, as in Celery.

A reusable module (a Django app, a library) cannot import the project's app; it defines its
tasks with ``@shared_task``, and each app gets its own copy of each: every app already made
registers it at once, and every app made later registers it when it is made. Using the task
(``delay``, ``apply_async``, a direct call, any attribute) uses the copy of the *current*
app, looked up at each use, as Celery's proxy does.

The current app is the last one made (Celery's ``set_as_current=True``), or the one given
to ``app.set_current()``; ``current_app`` stands for it, as Celery's does. It is one per process, not per thread as in Celery: a worker runs
tasks in threads of its own, and a shared task sent from one must find the worker's app.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Concatenate, Literal, Unpack, cast, overload

from sqlqueue.exceptions import ConfigurationError
from sqlqueue.tasks import task_name_for

if TYPE_CHECKING:
    from sqlqueue.app import SQLQueue
    from sqlqueue.task_options import TaskOptions
    from sqlqueue.tasks import P, R, Task

_lock = threading.Lock()
_current: SQLQueue | None = None
_apps: weakref.WeakSet[SQLQueue] = weakref.WeakSet()
_shared: list[Callable[[SQLQueue], Task[..., Any]]] = []
"""How each shared task registers itself in an app."""
_apart = threading.local()
"""Set while ``apart()`` makes apps that are not apps of their own."""


def get_current_app() -> SQLQueue:
    """The app shared tasks use: the last one made, or the last ``set_current()``."""
    app = _current
    if app is None:
        raise ConfigurationError(
            "A shared task was used but no sqlqueue app exists in this process: make one "
            "(app = SQLQueue(url), or Celery(...)) in a module imported before the task is "
            "used, e.g. your project's celery.py, imported by its __init__.py."
        )
    return app


def set_current_app(app: SQLQueue) -> None:
    """Make ``app`` the one shared tasks use (``app.set_current()``)."""
    global _current
    _current = app


@contextmanager
def apart() -> Iterator[None]:
    """Apps made in this block, in this thread, hold a database for another app (a
    ``Celery`` app's, made on first use): they are not apps of their own for shared tasks."""
    _apart.on = True
    try:
        yield
    finally:
        _apart.on = False


def adopt(app: SQLQueue, *, current: bool = True) -> None:
    """A new app: it becomes current (unless told not to: Celery's ``set_as_current=False``),
    and registers every shared task defined so far."""
    if getattr(_apart, "on", False):
        return
    with _lock:
        if current:
            set_current_app(app)
        _apps.add(app)
        registers = list(_shared)
    for register in registers:
        register(app)


@overload
def shared_task(fun: Callable[P, R], /) -> Task[P, R]: ...
@overload
def shared_task(
    *, bind: Literal[True], **options: Unpack[TaskOptions]
) -> Callable[[Callable[Concatenate[Any, P], R]], Task[P, R]]: ...
@overload
def shared_task(
    *, bind: Literal[False] = ..., **options: Unpack[TaskOptions]
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def shared_task(fun: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Define a task for every app, as Celery's ``@shared_task``: it takes the options of
    ``@app.task``, and each use goes to the current app's copy."""

    def share(fun: Callable[..., Any]) -> Task[..., Any]:
        def register(app: SQLQueue) -> Task[..., Any]:
            decorate: Callable[[Callable[..., Any]], Task[..., Any]] = app.task(**options)
            return decorate(fun)

        name = options.get("name") or task_name_for(fun)
        with _lock:
            _shared.append(register)
            apps = list(_apps)
        for app in apps:
            register(app)
        return SharedTask(fun, name, register)  # type: ignore[return-value]

    return share(fun) if fun is not None else share


class SharedTask:
    """What ``@shared_task`` returns: the current app's copy of the task, at each use.

    Typed as the ``Task`` it stands for; ``isinstance(shared, Task)`` holds too."""

    def __init__(
        self, fun: Callable[..., Any], name: str, register: Callable[[SQLQueue], Task[..., Any]]
    ) -> None:
        self._name = name
        self._register = register
        self.__doc__ = fun.__doc__
        self.__wrapped__ = fun

    def _task(self) -> Task[..., Any]:
        app = get_current_app()
        task = app.tasks.get(self._name)
        # Missing only from an app whose constructor was bypassed: register it there now.
        return task if task is not None else self._register(app)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        # The task's class, so that isinstance() sees a Task, as with Celery's proxy.
        return type(self._task()) if _current is not None else SharedTask

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._task(), attribute)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._task()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<shared task {self._name}>"


class _CurrentApp:
    """Celery's ``current_app``: each attribute is the current app's, at each use."""

    def __getattr__(self, attribute: str) -> Any:
        return getattr(get_current_app(), attribute)

    def __repr__(self) -> str:
        return f"<current app: {get_current_app()!r}>"


current_app = cast("SQLQueue", _CurrentApp())
"""The current app (``from sqlqueue import current_app``), typed as the app it stands for."""
