"""The queue's chores: re-queue expired leases, revoke expired jobs, prune old results,
forget workers long gone.

Every worker process does them, without a cron, on one thread of their own beside the claim:
in the loop that claims, a prune of a large backlog of old results would stop every worker
from starting jobs until it was done. Rescue and expiry are one statement each; a prune pass
deletes a bounded number of batches. A database that is down delays the chores alone; they
back off and try again until the worker stops. Any other error stops the worker, as it would
in the claim loop: ``Worker.run()`` raises it once the running jobs are recorded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlqueue.app import SQLQueue
from sqlqueue.conf import (
    MAX_DATABASE_BACKOFF,
    PRUNE_BATCH_SIZE,
    PRUNE_INTERVAL,
    WORKER_FORGET_AFTER,
)
from sqlqueue.exceptions import DatabaseError
from sqlqueue.heartbeats import forget_gone_workers
from sqlqueue.outages import Outage

logger = logging.getLogger("sqlqueue.worker")  # the chores' lines are the worker's log

PRUNE_BATCHES_PER_PASS = 10
"""Most batches of ``PRUNE_BATCH_SIZE`` finished jobs one prune deletes. While more are left,
the next prune follows after a pause as long as this one took: a backlog is pruned half the
time, leaving the other half to claims (SQLite's single write lock is not handed out fairly)."""


class Chores:
    """Runs the chores every so often on a thread of their own, until ``stopping`` is set."""

    def __init__(
        self,
        app: SQLQueue,
        lease: float,
        first_backoff: float,
        stopping: threading.Event,
        requeued: Callable[[], None],
        failed: Callable[[BaseException], None],
    ) -> None:
        self._app = app
        self._lease = lease
        self._first_backoff = first_backoff
        self._stopping = stopping
        self._requeued = requeued
        """Called when jobs went back to the queue, and after the first pass."""
        self._failed = failed
        """Called with an error that waiting cannot mend; the chores then stop."""
        self.done = threading.Event()
        """Set once every chore has run: a burst worker leaves only after that, so that jobs
        whose lease ran out are re-queued before it decides that none is left."""
        self._thread = threading.Thread(target=self._run, name="sqlqueue-chores")

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        """Wait for the thread, once ``stopping`` is set; a pass under way finishes first."""
        self._thread.join()

    def _run(self) -> None:
        next_rescue = next_prune = 0.0
        backoff = self._first_backoff
        outage = Outage(logger, "chores")
        while not self._stopping.is_set():
            try:
                if time.monotonic() >= next_rescue:
                    self._rescue()
                    next_rescue = time.monotonic() + self._lease / 2
                if (started := time.monotonic()) >= next_prune:
                    more = self._prune()
                    took = time.monotonic() - started
                    next_prune = time.monotonic() + (took if more else PRUNE_INTERVAL)
            except DatabaseError as exc:
                if not exc.transient:
                    # No table, a schema older than this code, a statement refused: as in the
                    # claim loop, waiting cannot help, and a burst worker would wait forever
                    # for a first pass that never ends well. The worker stops and says why.
                    logger.error("chores: stopping the worker: %s", exc)
                    self._failed(exc)
                    return
                outage.failed(exc)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_DATABASE_BACKOFF)
                continue
            except Exception as exc:  # a defect: nothing may die silently on a side thread
                logger.exception("chores: stopping the worker")
                self._failed(exc)
                return
            outage.answered()
            backoff = self._first_backoff
            if not self.done.is_set():
                self.done.set()
                self._requeued()
            self._stopping.wait(max(0.0, min(next_rescue, next_prune) - time.monotonic()))

    def _rescue(self) -> None:
        store = self._app.store
        rescued = store.rescue_expired_jobs(self._app.conf.max_lease_expiries)
        if rescued:
            logger.warning("re-queued %d job(s) whose worker stopped renewing their lease", rescued)
            self._requeued()
        expired = store.expire_jobs()
        if expired:
            logger.info("revoked %d job(s) that expired before they started", expired)

    def _prune(self) -> bool:
        """Delete the rows of workers long gone, and a bounded number of batches of old
        results; whether more results may be left."""
        try:
            forgotten = forget_gone_workers(self._app.store)
        except DatabaseError as exc:
            # The workers' rows only inform people: a role not granted their table (as before
            # migration 0011) runs jobs all the same.
            logger.warning("could not forget the workers long gone: %s", exc)
        else:
            if forgotten:
                logger.info("forgot %d worker(s) gone for %gs", forgotten, WORKER_FORGET_AFTER)
        # Batches skip rows another worker is deleting.
        older_than = self._app.conf.result_expires
        if older_than is None:
            return False
        pruned = self._app.store.delete_finished_jobs(
            older_than, PRUNE_BATCH_SIZE, PRUNE_BATCHES_PER_PASS
        )
        if pruned:
            logger.info("pruned %d finished job(s) older than %gs", pruned, older_than)
        return pruned == PRUNE_BATCH_SIZE * PRUNE_BATCHES_PER_PASS
