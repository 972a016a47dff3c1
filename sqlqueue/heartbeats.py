"""A worker's row in ``sqlqueue_workers``: what ``sqlqueue workers`` and ``status`` show.

Written when the worker starts, renewed every ``HEARTBEAT_INTERVAL`` seconds by the thread
that renews its jobs' leases (never by the loop that claims), deleted when it stops cleanly.
Every time in it is the database's clock, so the hosts' clocks need not agree. A worker
killed, or cut off from the database, stops renewing its row: after ``WORKER_GONE_AFTER``
seconds it is shown as gone, and after ``WORKER_FORGET_AFTER`` the other workers' chores
delete it (``forget_gone_workers``). Its jobs come back through their leases either way.

A heartbeat that fails is not retried, the next one writes the row (an outage is logged when
it starts and when it ends, ``sqlqueue.outages``): the row only informs people, the worker's
jobs never depend on it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from sqlqueue.conf import WORKER_FORGET_AFTER
from sqlqueue.exceptions import DatabaseError
from sqlqueue.outages import Outage
from sqlqueue.schema import workers
from sqlqueue.store import JobStore

logger = logging.getLogger("sqlqueue.worker")


class Heartbeat:
    """One worker's row: ``beat`` writes it (first) and renews it, ``stop`` deletes it."""

    def __init__(
        self,
        store: JobStore,
        worker_id: str,
        queues: Sequence[str] | None,
        concurrency: int,
        pool: str,
    ) -> None:
        from sqlqueue import __version__  # (the package imports the worker, which imports this)

        self._store = store
        self._id = worker_id
        self._outage = Outage(logger, "heartbeat")
        self._row: dict[str, Any] = {
            "id": worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": list(queues) if queues else None,
            "concurrency": concurrency,
            "pool": pool,
            "version": __version__,
        }

    def beat(self, jobs_running: int) -> None:
        """Say that the worker lives and runs this many jobs; its row is written when it has
        none (the first beat, or after an outage long enough for it to be forgotten)."""
        now = self._store.dialect.now()
        try:
            (renewed,) = self._store.write(
                [
                    sa.update(workers)
                    .where(workers.c.id == self._id)
                    .values(last_seen_at=now, jobs_running=jobs_running)
                ]
            )
            if not renewed:
                self._store.write(
                    [
                        sa.insert(workers).values(
                            **self._row,
                            started_at=now,
                            last_seen_at=now,
                            jobs_running=jobs_running,
                        )
                    ]
                )
        except DatabaseError as exc:
            if exc.transient:
                self._outage.failed(exc)
            else:  # not an outage: a role not granted the table (as before migration 0011)
                logger.warning("heartbeat: could not write this worker's row: %s", exc)
        else:
            self._outage.answered()

    def stop(self) -> None:
        """Delete the row: the worker stopped cleanly, and is no longer shown."""
        try:
            self._store.write([sa.delete(workers).where(workers.c.id == self._id)])
        except DatabaseError as exc:
            logger.warning("could not delete this worker's row; it shows as gone: %s", exc)


def forget_gone_workers(store: JobStore) -> int:
    """Delete the rows of workers gone for ``WORKER_FORGET_AFTER`` seconds; how many."""
    cutoff = store.dialect.now_plus(-WORKER_FORGET_AFTER)
    (deleted,) = store.write([sa.delete(workers).where(workers.c.last_seen_at < cutoff)])
    return deleted
