"""Stopping running jobs that were revoked with ``terminate=True``.

``AsyncResult.revoke(terminate=True)`` only writes the row (REVOKED, fenced: the running take's
outcome, lease renewals and progress are refused from then on). The worker holding the job
learns of it here, on a thread of its own: it asks which of its takes have been revoked,
when PostgreSQL announces a revoke (``Dialect.announce_revoke``, heard on the worker's
LISTEN connection) and otherwise every poll interval (SQLite, or the LISTEN connection lost),
and while a revoked take is still held (it had not started when the revoke came). With
LISTEN up and nothing pending it looks only every third of a lease, a safety net.

A job running in a thread gets ``Terminated`` raised in it (the mechanism of the time
limits: delivered between bytecodes, so a task blocked in C sees it when that call returns);
a job in a process-pool child has its child killed, and replaced.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from sqlqueue.dialects.base import Take
from sqlqueue.exceptions import DatabaseError, Terminated
from sqlqueue.timelimits import Interrupt, Limited, run_interruptible, thread_time_limits

if TYPE_CHECKING:
    from sqlqueue.processes import ProcessPool
    from sqlqueue.store import JobStore

logger = logging.getLogger("sqlqueue.worker")  # the revokes' lines are the worker's log

R = TypeVar("R")


class Revocations:
    """Finds the revoked takes among those a worker holds, and stops their jobs."""

    def __init__(
        self,
        store: JobStore,
        held: Callable[[], list[Take]],
        pool: ProcessPool | None,
        quiet_wait: float,
        poll_interval: float,
        listening: threading.Event,
    ) -> None:
        self._store = store
        self._held = held
        """The takes the worker holds now."""
        self._pool = pool
        self._quiet_wait = quiet_wait
        """Seconds between looks while LISTEN is up and no revoked take waits to start."""
        self._poll_interval = poll_interval
        self._listening = listening
        self._poked = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[Take, Interrupt] = {}
        """Jobs running in this worker's threads (not a process pool's), by take."""
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
        interrupt = Interrupt()
        with self._lock:
            self._running[take] = interrupt
        try:
            limited = partial(thread_time_limits, task, call)
            return run_interruptible(interrupt, limited, (Terminated,))
        finally:
            with self._lock:
                del self._running[take]

    def watch(self, finished: threading.Event) -> None:
        """Look for revoked takes until ``finished`` is set (the thread's body)."""
        pending = False
        while not finished.is_set():
            quiet = self._listening.is_set() and not pending
            self._poked.wait(self._quiet_wait if quiet else self._poll_interval)
            self._poked.clear()
            takes = self._held()
            if not takes or finished.is_set():
                pending = False
                continue
            try:
                revoked = self._store.revoked_takes(takes)
            except DatabaseError as exc:
                logger.warning("could not look for revoked jobs: %s", exc)
                continue
            with self._lock:
                self._stopped &= revoked
                for take in revoked - self._stopped:
                    if self._stop(take):
                        self._stopped.add(take)
                pending = bool(revoked - self._stopped)

    def _stop(self, take: Take) -> bool:
        """Stop the job of this take if it runs; whether it did."""
        interrupt = self._running.get(take)
        if interrupt is not None:
            # Another thread: raise_soon may wait for the job's thread to start one of its own.
            threading.Thread(target=interrupt.raise_soon, args=(Terminated,), daemon=True).start()
        elif self._pool is None or not self._pool.terminate(take):
            return False
        logger.info("job id=%s attempt=%d revoked while it ran: stopping it", *take)
        return True
