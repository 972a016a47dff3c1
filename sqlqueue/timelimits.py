"""Time limits on a running task, for each kind of pool.

In a thread, both limits are exceptions raised inside the task's thread
(``PyThreadState_SetAsyncExc``): Python delivers them between bytecodes, so a task blocked in
C code (a ``time.sleep``, a socket read without timeout) only sees them when that call
returns. A thread cannot be killed; the hard limit there is as strong as the soft one.

In a child process (``--pool process``) the soft limit is a ``SIGALRM`` whose handler raises
in the task, which interrupts sleeps and most blocking calls; the hard limit is enforced by
the worker, which kills the child and starts a new one.
"""

from __future__ import annotations

import ctypes
import signal
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import FrameType
from typing import Any, Protocol

from sqlqueue.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded


class Limited(Protocol):
    """What the limits read from a task."""

    name: str
    soft_time_limit: float | None
    time_limit: float | None


def thread_time_limits(task: Limited) -> AbstractContextManager[None]:
    """Raise ``SoftTimeLimitExceeded``, then ``TimeLimitExceeded``, in this thread when the
    task's limits pass; nothing is raised once the block has been left."""
    if not task.soft_time_limit and not task.time_limit:
        # Most tasks have no limit: no lock, no timer and no ctypes call for them.
        return nullcontext()
    return _thread_time_limits(task)


@contextmanager
def _thread_time_limits(task: Limited) -> Iterator[None]:
    thread_id = threading.get_ident()
    lock = threading.Lock()
    finished = False

    def fire(exc_type: type[BaseException]) -> None:
        with lock:
            if not finished:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(thread_id), ctypes.py_object(exc_type)
                )

    timers = [
        threading.Timer(seconds, fire, (exc_type,))
        for seconds, exc_type in (
            (task.soft_time_limit, SoftTimeLimitExceeded),
            (task.time_limit, TimeLimitExceeded),
        )
        if seconds
    ]
    for timer in timers:
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        with lock:
            finished = True
            # An exception fired but not yet raised must not hit the worker's own code.
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)
        for timer in timers:
            timer.cancel()


def alarm_soft_limit(task: Limited) -> AbstractContextManager[None]:
    """In a child process: ``SoftTimeLimitExceeded`` in the task when its soft limit passes."""
    if not task.soft_time_limit:
        return nullcontext()
    return _alarm(task.soft_time_limit)


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def raise_soft_limit(_signum: int, _frame: FrameType | None) -> Any:
        raise SoftTimeLimitExceeded(f"soft time limit ({seconds:g}s) exceeded")

    previous = signal.signal(signal.SIGALRM, raise_soft_limit)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
