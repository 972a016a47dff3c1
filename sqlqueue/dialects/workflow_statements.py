"""The statements that release and stop a workflow's waiting steps, written once for every
database with SQLAlchemy Core (``settle`` runs them in the transaction that records the
outcome of the jobs they wait for)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.sql.dml import Delete, ReturningUpdate, Update

from sqlqueue.jobs import JobStatus
from sqlqueue.schema import WAITING_BY_ID, jobs


class WorkflowStatements:
    """Mixed into ``Dialect``: its clock (``now``, ``now_plus``) is the dialect's."""

    if TYPE_CHECKING:  # the dialect's own

        def now(self) -> sa.ColumnElement[datetime]: ...

        def now_plus(self, seconds: float) -> sa.ColumnElement[datetime]: ...

    def jobs_settled(self, job_ids: Sequence[str]) -> sa.Select[Any]:
        """What settling needs of jobs that have just finished: their outcome, and the jobs
        waiting for it."""
        return sa.select(
            jobs.c.id,
            jobs.c.status,
            jobs.c.error_type,
            jobs.c.error_message,
            jobs.c.traceback,
            jobs.c.dependents,
            jobs.c.errbacks,
        ).where(jobs.c.id.in_(list(job_ids)))

    def lock_waiting(self, job_ids: Sequence[str]) -> sa.Select[Any]:
        """The steps among these still WAITING, locked in id order, as ``settle`` counts them
        down: two transactions stopping or releasing the same steps take them in one order.
        (Two batches whose successes count down the same several steps in one statement, on
        PostgreSQL, may still deadlock; the server ends one, and its worker tries again.)"""
        return (
            sa.select(
                jobs.c.id,
                jobs.c.feed,
                jobs.c.parent_id,
                jobs.c.prerequisites,
                jobs.c.dependents,
                jobs.c.errbacks,
            )
            .where(jobs.c.id.in_(list(job_ids)))
            .where(WAITING_BY_ID)
            .order_by(jobs.c.id)
            .with_for_update()
        )

    def count_down(self, job_id: str, finished: int) -> ReturningUpdate[Any]:
        """``finished`` more prerequisites of a waiting step have succeeded; answers with
        how many it still waits for."""
        return (
            jobs.update()
            .where(jobs.c.id == job_id)
            .where(WAITING_BY_ID)
            .values(waiting_for=jobs.c.waiting_for - finished)
            .returning(jobs.c.waiting_for)
        )

    def released_jobs(self, job_ids: Sequence[str]) -> sa.Select[Any]:
        """What releasing needs of steps whose prerequisites are done: when they were sent
        to run, their countdown being counted from their release."""
        return sa.select(jobs.c.id, jobs.c.scheduled_at, jobs.c.created_at).where(
            jobs.c.id.in_(list(job_ids))
        )

    def release_waiting(self, job_id: str, delay: float) -> Update:
        """Make a waiting step ready ``delay`` seconds from now."""
        return (
            jobs.update()
            .where(jobs.c.id == job_id)
            .where(WAITING_BY_ID)
            .values(
                status=JobStatus.PENDING.value,
                waiting_for=None,
                scheduled_at=self.now_plus(delay) if delay else self.now(),
            )
        )

    def stop_waiting(self, job_id: str, status: JobStatus, error: dict[str, Any]) -> Update:
        """End a waiting step that will never run: its chain broke, or its chord failed."""
        return (
            jobs.update()
            .where(jobs.c.id == job_id)
            .where(WAITING_BY_ID)
            .values(status=status.value, finished_at=self.now(), waiting_for=None, **error)
        )

    def drop_waiting(self, job_ids: Sequence[str]) -> Delete:
        """Delete ``link_error`` callbacks no failure will release: nobody holds their ids."""
        return jobs.delete().where(jobs.c.id.in_(list(job_ids))).where(WAITING_BY_ID)
