"""Time limits on a running task, for each kind of pool.

In a thread, both limits are exceptions raised inside the task's thread
(``PyThreadState_SetAsyncExc``): Python delivers them between bytecodes, so a task blocked in
C code (a ``time.sleep``, a socket read without timeout) only sees them when that call
returns. A thread cannot be killed; the hard limit there is as strong as the soft one.

In a child process (``--pool process``) the soft limit is a ``SIGALRM`` whose handler raises
in the task, which interrupts sleeps and most blocking calls; the hard limit is enforced by
the worker, which kills the child and starts a new one.

Either way a limit is raised in the task or not at all: one that passes as the task returns
is dropped, never left to land in the worker's own code.
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Protocol, TypeVar

from sqlqueue.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

R = TypeVar("R")

LIMIT_ERRORS = (SoftTimeLimitExceeded, TimeLimitExceeded)
"""What a limit raises in a task."""

THREAD_START_WAIT = 0.001
"""Seconds a limit waits, before trying again, while a thread is being started (Python 3.11)."""


class Limited(Protocol):
    """What the limits read from a task: its own limits, and its app's defaults."""

    name: str
    soft_time_limit: float | None
    time_limit: float | None
    app: Any


def limits_of(task: Limited) -> tuple[float | None, float | None]:
    """The task's soft and hard limits in seconds: its own, else its app's
    ``task_soft_time_limit`` and ``task_time_limit`` (Celery's defaults for every task)."""
    conf = task.app.conf
    return (
        task.soft_time_limit or conf.task_soft_time_limit,
        task.time_limit or conf.task_time_limit,
    )


def no_limits(_task: Limited, call: Callable[[], R]) -> R:
    """Run ``call`` with no time limit: eager runs, which happen inline in the caller."""
    return call()


def thread_time_limits(task: Limited, call: Callable[[], R]) -> R:
    """Run ``call`` in this thread, raising ``SoftTimeLimitExceeded`` then
    ``TimeLimitExceeded`` in it when the task's limits pass."""
    soft, hard = limits_of(task)
    if not soft and not hard:
        # Most tasks have no limit: no lock, no thread and no ctypes call for them.
        return call()
    watch = _Watch(task.name, soft, hard)
    returned = False
    try:
        try:
            watch.arm()
            result = call()
            returned = True
        finally:
            watch.lift()
    except LIMIT_ERRORS:
        # Python may raise a limit that fired as the task returned only on the way out, in
        # the first lift(); the limits are lifted for sure here, and the task's return stands.
        watch.lift()
        if not returned:
            raise
    return result


class _Watch:
    """A thread that raises a task's limits in the thread running it, until lifted."""

    def __init__(self, name: str, soft: float | None, hard: float | None) -> None:
        self._target = ctypes.c_ulong(threading.get_ident())
        self._lock = threading.Lock()
        self._lifted = threading.Event()
        limits = ((soft, SoftTimeLimitExceeded), (hard, TimeLimitExceeded))
        self._limits = [(seconds, error) for seconds, error in limits if seconds]
        self._started = time.monotonic()
        # Held until armed: a limit raised before the caller is inside its try (here, while
        # Thread.start() waits for the new thread) would leave the limits never lifted.
        self._lock.acquire()
        threading.Thread(target=self._watch, name=f"sqlqueue-limits-{name}", daemon=True).start()

    def arm(self) -> None:
        """Let limits be raised from now on (until lifted)."""
        self._lock.release()

    def lift(self) -> None:
        """No limit is raised in the task after this, not even one that fired just before."""
        with self._lock:
            self._lifted.set()
            # One fired but not yet raised: Python would raise it in whatever runs next.
            ctypes.pythonapi.PyThreadState_SetAsyncExc(self._target, None)

    def _watch(self) -> None:
        for seconds, error in self._limits:
            if self._lifted.wait(self._started + seconds - time.monotonic()):
                return
            while not self._raise(error):
                if self._lifted.wait(THREAD_START_WAIT):
                    return

    def _raise(self, error: type[BaseException]) -> bool:
        """Raise ``error`` in the task's thread, unless lifted; False means "not now"."""
        with self._lock, no_thread_starting() as clear:
            if not clear:
                return False
            if not self._lifted.is_set():
                ctypes.pythonapi.PyThreadState_SetAsyncExc(self._target, ctypes.py_object(error))
            return True


@contextmanager
def no_thread_starting() -> Iterator[bool]:
    """While held, no ``threading.Thread`` starts; yields whether none was starting.

    Before Python 3.12 a thread being started carries the id of the thread that starts it
    until it runs, and ``PyThreadState_SetAsyncExc`` picks the newest thread with an id: a
    limit raised while the task starts a thread (a thread pool, a client library) would kill
    that new thread before it runs, and the task would wait for it forever in
    ``Thread.start()``. ``threading`` keeps a thread in ``_limbo``, under
    ``_active_limbo_lock``, from before it is created until after it has its own id.
    """
    if sys.version_info >= (3, 12):
        yield True
        return
    with threading._active_limbo_lock:  # type: ignore[attr-defined]
        yield not threading._limbo  # type: ignore[attr-defined]


def alarm_soft_limit(task: Limited, call: Callable[[], R]) -> R:
    """In a child process: run ``call``, raising ``SoftTimeLimitExceeded`` in it when the
    task's soft limit passes."""
    seconds, _ = limits_of(task)
    if not seconds:
        return call()

    def raise_soft_limit(_signum: int, _frame: FrameType | None) -> Any:
        raise SoftTimeLimitExceeded(f"soft time limit ({seconds:g}s) exceeded")

    previous = signal.signal(signal.SIGALRM, raise_soft_limit)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    return run_then_clear(call, lambda: _disarm(previous), SoftTimeLimitExceeded)


def run_then_clear(
    call: Callable[[], R], clear: Callable[[], None], late: type[BaseException]
) -> R:
    """Run ``call``, then ``clear`` what would raise ``late`` in it (an alarm, another
    thread's raise). One that lands as ``call`` returns, or inside the first ``clear``, is
    not the call's outcome: ``clear`` runs again and the call's result stands."""
    returned = False
    try:
        try:
            result = call()
            returned = True
        finally:
            clear()
    except late:
        clear()
        if not returned:
            raise
    return result


def _disarm(previous: Any) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)
