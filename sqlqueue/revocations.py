"""Stopping running jobs that were revoked with ``terminate=True``.

``AsyncResult.revoke(terminate=True)`` only writes the row (REVOKED, fenced: the running take's
outcome, lease renewals and progress are refused from then on). The worker holding the job
learns of it here, on a thread of its own: it asks which of its takes have been revoked,
when PostgreSQL announces a revoke (``Dialect.announce_revoke``, heard on the worker's
LISTEN connection), and every ``REVOKE_POLL`` seconds (SQLite, the LISTEN connection lost,
or a revoked take still held: it had not started when the revoke came). With LISTEN up and
nothing pending it looks only every third of a lease, a safety net.

A job running in a thread gets ``Terminated`` raised in it, as a time limit is
(``timelimits``): delivered between bytecodes, so a task blocked in C sees it when that call
returns. A job in a process-pool child has its child killed, and replaced.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from sqlqueue.dialects.base import Take
from sqlqueue.exceptions import DatabaseError, Terminated
from sqlqueue.outages import Outage
from sqlqueue.timelimits import (
    THREAD_START_WAIT,
    Limited,
    no_thread_starting,
    run_then_clear,
    thread_time_limits,
)

if TYPE_CHECKING:
    from sqlqueue.processes import ProcessPool
    from sqlqueue.store import JobStore

logger = logging.getLogger("sqlqueue.worker")  # the revokes' lines are the worker's log

R = TypeVar("R")


REVOKE_POLL = 1.0
"""Seconds between a worker's looks for revoked jobs while it runs jobs and hears no
announcements (SQLite, or PostgreSQL's LISTEN connection down)."""


class Revocations:
    """Finds the revoked takes among those a worker holds, and stops their jobs."""

    def __init__(
        self,
        store: JobStore,
        held: Callable[[], list[Take]],
        pool: ProcessPool | None,
        quiet_wait: float,
        listening: threading.Event,
    ) -> None:
        self._store = store
        self._held = held
        """The takes the worker holds now."""
        self._pool = pool
        self._quiet_wait = quiet_wait
        """Seconds between looks while LISTEN is up and no revoked take waits to start."""
        self._listening = listening
        self._poked = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[Take, _JobThread] = {}
        """Jobs running in this worker's threads (not a process pool's), by take."""
        self._threads = threading.local()
        self._stopped: set[Take] = set()
        """Revoked takes whose job was stopped: once is enough."""

    def poke(self) -> None:
        """Look now: a revoke was announced."""
        self._poked.set()

    def limits_for(self, take: Take) -> Callable[[Limited, Callable[[], Any]], Any]:
        """The limits to run this take's task under in a thread: its time limits, and a stop
        should its job be revoked while it runs."""
        return partial(self._run_stoppable, take)

    def _run_stoppable(self, take: Take, task: Limited, call: Callable[[], R]) -> R:
        thread = getattr(self._threads, "thread", None)
        if thread is None:
            thread = self._threads.thread = _JobThread()
        # No lock: a dict's item set and delete are atomic, and this runs for every job.
        self._running[take] = thread
        try:
            return thread.run(take, partial(thread_time_limits, task, call))
        finally:
            del self._running[take]

    def watch(self, finished: threading.Event) -> None:
        """Look for revoked takes until ``finished`` is set (the thread's body)."""
        pending = False
        outage = Outage(logger, "revocations")
        while not finished.is_set():
            quiet = self._listening.is_set() and not pending
            self._poked.wait(self._quiet_wait if quiet else REVOKE_POLL)
            self._poked.clear()
            takes = self._held()
            if not takes or finished.is_set():
                pending = False
                continue
            try:
                revoked = self._store.revoked_takes(takes)
            except DatabaseError as exc:
                outage.failed(exc)
                continue
            except Exception:  # a bug here must not end the thread: revokes would stop arriving
                logger.exception("could not look for revoked jobs")
                continue
            outage.answered()
            with self._lock:
                self._stopped &= revoked
                for take in revoked - self._stopped:
                    if self._stop(take):
                        self._stopped.add(take)
                pending = bool(revoked - self._stopped)

    def _stop(self, take: Take) -> bool:
        """Stop the job of this take if it runs; whether it did."""
        thread = self._running.get(take)
        if thread is not None:
            stopped = thread.stop(take)
        else:
            stopped = self._pool is not None and self._pool.terminate(take)
        if stopped:
            logger.info("job id=%s attempt=%d revoked while it ran: stopping it", *take)
        return stopped


class _JobThread:
    """One of the worker's job threads, and the take it runs: ``Terminated`` is raised in it
    only while that take's task runs. Made once per thread and kept, since every job needs
    one: an ``Interrupt`` per job (a time limit's) would cost a short job a few percent."""

    def __init__(self) -> None:
        self._target = ctypes.c_ulong(threading.get_ident())
        self._lock = threading.Lock()
        self._take: Take | None = None

    def run(self, take: Take, call: Callable[[], R]) -> R:
        """Run ``call``, the task of ``take``, in this thread (the one that made this)."""
        with self._lock:
            self._take = take
        # Raised before the call, Terminated is still the task's outcome: run_task takes
        # whatever the limits raise.
        return run_then_clear(call, self._clear, Terminated)

    def stop(self, take: Take) -> bool:
        """Raise ``Terminated`` in the thread if it still runs ``take``'s task; whether it did."""
        while True:
            with self._lock, no_thread_starting() as clear:
                if self._take != take:
                    return False
                if clear:
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        self._target, ctypes.py_object(Terminated)
                    )
                    self._take = None  # once: the task may be cleaning up
                    return True
            time.sleep(THREAD_START_WAIT)

    def _clear(self) -> None:
        with self._lock:
            self._take = None
            ctypes.pythonapi.PyThreadState_SetAsyncExc(self._target, None)
