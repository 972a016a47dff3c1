"""``sqlqueue purge``: take a queue's ready jobs out of it, in batches.

A ready job nothing waits for is deleted: nothing will ever ask for it again but its own
``AsyncResult``, which then raises ``JobNotFoundError``, as Celery's purge drops messages. A ready job that workflow
steps wait for (a chain's step, a chord's header job) is revoked instead: deleted, it would
leave its dependents waiting forever; revoked, it settles them as a revoke does (they stop),
and the workflow's handle reads REVOKED. Running and finished jobs are never touched, and a
job a worker takes while the purge runs is left to it.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from sqlqueue.schema import READY_PARTS, READY_WHERE, UNLIMITED_READY_WHERE, jobs
from sqlqueue.store import JobStore

PURGE_BATCH_SIZE = 1000
"""Jobs a purge deletes or revokes per transaction: no lock is held for long."""

NOTHING_WAITS = sa.and_(jobs.c.dependents.is_(None), jobs.c.errbacks.is_(None))


def ready_in_queue(store: JobStore, queue: str) -> int:
    """How many ready jobs the queue holds (``ix_sqlqueue_jobs_ready_in_queue``, and
    ``ix_sqlqueue_jobs_limited`` for jobs with limits)."""
    counts = store.read(
        [
            sa.select(sa.func.count().label("ready")).where(part, jobs.c.queue == queue)
            for part in READY_PARTS
        ]
    )
    return sum(int(row["ready"]) for (row,) in counts)


def purge_queue(
    store: JobStore, queue: str, progress: Callable[[int, int], None] | None = None
) -> tuple[int, int]:
    """Delete the queue's ready jobs nothing waits for, revoke those others wait for;
    (deleted, revoked). ``progress`` hears the running totals after each batch."""
    deleted = revoked = 0
    for part in READY_PARTS:
        while True:
            chosen = (
                sa.select(jobs.c.id)
                .where(part, jobs.c.queue == queue, NOTHING_WAITS)
                .limit(PURGE_BATCH_SIZE)
                .subquery("chosen")
            )
            # The status again on the deleted row: PostgreSQL checks it once more on a row a
            # worker took meanwhile, and skips it. The ids are read from a derived table:
            # MySQL takes neither a LIMIT in an IN subquery nor a subquery on the table a
            # DELETE changes, but reads a derived table in full first.
            (count,) = store.write(
                [sa.delete(jobs).where(jobs.c.id.in_(sa.select(chosen.c.id)), READY_WHERE)]
            )
            deleted += count
            if progress is not None:
                progress(deleted, revoked)
            if count < PURGE_BATCH_SIZE:
                break
    while True:
        (rows,) = store.read(
            [
                sa.select(jobs.c.id)  # (a workflow's steps have no limits)
                .where(UNLIMITED_READY_WHERE, jobs.c.queue == queue, sa.not_(NOTHING_WAITS))
                .limit(PURGE_BATCH_SIZE)
            ]
        )
        if not rows:
            return deleted, revoked
        count = store.revoke_jobs([row["id"] for row in rows])
        revoked += count
        if progress is not None:
            progress(deleted, revoked)
        if not count:  # every one was taken meanwhile
            return deleted, revoked
