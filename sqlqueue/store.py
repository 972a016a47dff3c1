"""JobStore: the verbs on jobs, the only place sqlqueue runs its statements.

Everything above it deals in ``Job`` values and takes; everything below it is a statement
built by the dialect. It owns the transactions and turns driver errors into
``sqlqueue.DatabaseError``. Two ways of sending live in modules of their own: through a
caller's connection, in its transaction (``caller_connections``), and a statement that
stands alone, in autocommit (``autocommit``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

import psycopg
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, CursorResult, Engine, RowMapping
from sqlalchemy.sql import Executable

from sqlqueue.autocommit import (
    copy_alone,
    execute_alone,
    fetch_jobs_alone,
    fetch_rows_alone,
    fetch_takes_alone,
    goes_alone,
)
from sqlqueue.caller_connections import (
    AsyncCallerConnection,
    CallerConnection,
    CallerConnections,
)
from sqlqueue.conf import RETRY_BATCH_SIZE
from sqlqueue.dialects import check_driver, get_dialect
from sqlqueue.dialects.base import Dialect, DriverStatement, Procedure, Statement, Take
from sqlqueue.dialects.mysql import driver_errors
from sqlqueue.exceptions import (
    DatabaseError,
    DuplicateJobIdError,
    InvalidOptionError,
    SQLQueueError,
)
from sqlqueue.jobs import Job, JobStatus, NewJobs, as_utc
from sqlqueue.outcomes import Outcome
from sqlqueue.periodic import ScheduleState
from sqlqueue.plans import Feed, WorkflowPlan, fed
from sqlqueue.settle import chunks, settle

if (
    TYPE_CHECKING
):  # the async extra's, imported where async is used (see engines.require_async_extra)
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

UNIQUE_SEND_ATTEMPTS = 3
"""How many statements a send of unique jobs tries before giving up on a key taken and
freed again by other transactions each time (``insert_unique_jobs``)."""

DRIVER_ERRORS = (sqlite3.Error, psycopg.Error)
"""What the drivers raise when a DB-API connection passed as ``connection=`` fails; and
the MySQL drivers' ``Error``, where imported (``driver_errors``)."""


class JobStore:
    """Verbs on jobs, each one statement in one short transaction."""

    def __init__(self, engine: Engine, dialect: Dialect) -> None:
        self.engine = engine
        self.dialect = dialect
        self._async_engine: AsyncEngine | None = None
        self._callers = CallerConnections(engine, dialect.name)

    @classmethod
    def for_engine(cls, engine: Engine) -> JobStore:
        """A store on an engine the user built (and shares with sqlqueue)."""
        dialect = get_dialect(engine.dialect.name)
        check_driver(engine.dialect)
        dialect.configure_engine(engine)
        return cls(engine, dialect)

    def insert_jobs(self, new_jobs: NewJobs, connection: CallerConnection | None = None) -> None:
        """Write new jobs: in their own committed transaction, or in the caller's."""
        copy = self.dialect.copy_jobs(new_jobs)
        if copy is not None and (connection is not None or self.dialect.driver_autocommit):
            with self._translate_errors():
                if connection is not None:
                    self._callers.copy(connection, copy)
                else:
                    copy_alone(self.engine, copy)
            return
        self._insert(self.dialect.insert_jobs(new_jobs), connection)

    def insert_unique_jobs(
        self, new_jobs: NewJobs, connection: CallerConnection | None = None
    ) -> dict[str, str]:
        """Write new jobs with unique keys, each unless an unfinished job holds its key; the
        id of the job holding each key afterwards, by key (the new job's when it was written).

        A key held by a job another transaction committed while the insert waited for it is
        sent again in a new statement, which sees that job (or, if it has finished since,
        inserts). On PostgreSQL, in a caller's transaction that is REPEATABLE READ or
        SERIALIZABLE, the database refuses such a send instead (a serialization failure).
        """
        holders: dict[str, str] = {}
        if not new_jobs.ids:  # an empty delay_many
            return holders
        lost_race = False
        for _ in range(UNIQUE_SEND_ATTEMPTS):
            try:
                rows = self._unique_rows(new_jobs, connection, lost_race)
            except DatabaseError as exc:
                if not self.dialect.lost_unique_race(_driver_error(exc)):
                    raise
                rows = []  # (MySQL undid the statement alone: a caller's transaction goes on)
                lost_race = True
            pending = _unheld(new_jobs, rows, holders)
            if pending is None:
                return holders
            new_jobs = pending
        raise _contended(new_jobs)

    async def ainsert_unique_jobs(
        self, new_jobs: NewJobs, connection: AsyncCallerConnection | None = None
    ) -> dict[str, str]:
        """``insert_unique_jobs`` with an async driver: the same statements, awaited."""
        holders: dict[str, str] = {}
        if not new_jobs.ids:  # an empty delay_many
            return holders
        lost_race = False
        for _ in range(UNIQUE_SEND_ATTEMPTS):
            try:
                rows = await self._aunique_rows(new_jobs, connection, lost_race)
            except DatabaseError as exc:
                if not self.dialect.lost_unique_race(_driver_error(exc)):
                    raise
                rows = []  # (MySQL undid the statement alone: a caller's transaction goes on)
                lost_race = True
            pending = _unheld(new_jobs, rows, holders)
            if pending is None:
                return holders
            new_jobs = pending
        raise _contended(new_jobs)

    def _unique_rows(
        self, new_jobs: NewJobs, connection: CallerConnection | None, lost_race: bool
    ) -> list[tuple[Any, ...]]:
        """One try at a send of unique jobs: its rows (key, id). After a lost race, in a
        caller's transaction, the keys its holders' read did not answer are read again
        outside it (``_unique_try``)."""
        with self._translate_errors():
            if connection is not None:
                caller = connection

                def fetch(statement: DriverStatement) -> list[tuple[Any, ...]]:
                    return self._callers.fetch(caller, statement)

                return self._unique_try(new_jobs, fetch, self._read_alone if lost_race else None)
            if self.dialect.driver_autocommit:  # PostgreSQL's: one statement, in autocommit
                statements = self.dialect.insert_unique_jobs(new_jobs)
                if len(statements) == 1 and goes_alone(statements[0], self.dialect):
                    return fetch_rows_alone(self.engine, statements[0])

        def send(conn: Connection) -> list[tuple[Any, ...]]:
            def fetch(statement: DriverStatement) -> list[tuple[Any, ...]]:
                return _rows(conn.exec_driver_sql(statement.sql, statement.params))

            return self._unique_try(new_jobs, fetch, None)

        return self._write_again(send)

    def _unique_try(
        self,
        new_jobs: NewJobs,
        fetch: Callable[[DriverStatement], list[tuple[Any, ...]]],
        fresh: Callable[[DriverStatement], list[tuple[Any, ...]]] | None,
    ) -> list[tuple[Any, ...]]:
        """The statements of a send of unique jobs through ``fetch`` (in the sender's
        transaction), their rows. Where the dialect reads the holders first, that read, then
        through ``fresh`` (the latest committed rows) the keys it did not answer, and the
        insert of the jobs of the keys still free. ``fresh`` is for a caller's REPEATABLE
        READ transaction after a lost race: its snapshot does not show the job that won."""
        rows: list[tuple[Any, ...]] = []
        read = self.dialect.unique_holders(_keys(new_jobs))
        if read is not None:
            rows = fetch(read)
            left = _unheld(new_jobs, rows, {})
            if left is not None and fresh is not None:
                rows += fresh(cast(DriverStatement, self.dialect.unique_holders(_keys(left))))
                left = _unheld(new_jobs, rows, {})
            if left is None:
                return rows
            new_jobs = left
        for statement in self.dialect.insert_unique_jobs(new_jobs):
            rows += fetch(statement)
        return rows

    def _read_alone(self, statement: DriverStatement) -> list[tuple[Any, ...]]:
        """A read in a transaction of its own: the latest committed rows, in any isolation."""
        with self.engine.connect() as conn:
            return _rows(conn.exec_driver_sql(statement.sql, statement.params))

    async def _aunique_rows(
        self, new_jobs: NewJobs, connection: AsyncCallerConnection | None, lost_race: bool
    ) -> list[tuple[Any, ...]]:
        """``_unique_rows`` with an async driver: the same statements, awaited."""
        with self._translate_errors():
            if connection is not None:
                caller = connection

                async def fetch(statement: DriverStatement) -> list[tuple[Any, ...]]:
                    return await self._callers.afetch(caller, statement)

                fresh = self._aread_alone if lost_race else None
                return await self._aunique_try(new_jobs, fetch, fresh)

        async def send(conn: AsyncConnection) -> list[tuple[Any, ...]]:
            async def fetch(statement: DriverStatement) -> list[tuple[Any, ...]]:
                return _rows(await conn.exec_driver_sql(statement.sql, statement.params))

            return await self._aunique_try(new_jobs, fetch, None)

        return await self._awrite_again(send)

    async def _aunique_try(
        self,
        new_jobs: NewJobs,
        fetch: Callable[[DriverStatement], Awaitable[list[tuple[Any, ...]]]],
        fresh: Callable[[DriverStatement], Awaitable[list[tuple[Any, ...]]]] | None,
    ) -> list[tuple[Any, ...]]:
        """``_unique_try`` with an async driver."""
        rows: list[tuple[Any, ...]] = []
        read = self.dialect.unique_holders(_keys(new_jobs))
        if read is not None:
            rows = await fetch(read)
            left = _unheld(new_jobs, rows, {})
            if left is not None and fresh is not None:
                again = cast(DriverStatement, self.dialect.unique_holders(_keys(left)))
                rows += await fresh(again)
                left = _unheld(new_jobs, rows, {})
            if left is None:
                return rows
            new_jobs = left
        for statement in self.dialect.insert_unique_jobs(new_jobs):
            rows += await fetch(statement)
        return rows

    async def _aread_alone(self, statement: DriverStatement) -> list[tuple[Any, ...]]:
        """``_read_alone`` with an async driver."""
        async with self.async_engine.connect() as conn:
            return _rows(await conn.exec_driver_sql(statement.sql, statement.params))

    def insert_workflow(
        self, plan: WorkflowPlan, max_payload_bytes: int, connection: CallerConnection | None
    ) -> None:
        """Write every job of a workflow at once: in its own committed transaction, or in
        the caller's; nothing of it exists if that rolls back."""
        self._insert(self.dialect.insert_workflow(plan, max_payload_bytes), connection)

    def _insert(self, statement: DriverStatement, connection: CallerConnection | None) -> None:
        if connection is not None:
            with self._translate_errors():
                self._callers.execute(connection, statement)
        elif goes_alone(statement, self.dialect):
            with self._translate_errors():
                execute_alone(self.engine, statement)
        else:
            with self._write() as conn:
                conn.exec_driver_sql(statement.sql, statement.params)

    async def ainsert_jobs(
        self, new_jobs: NewJobs, connection: AsyncCallerConnection | None = None
    ) -> None:
        """``insert_jobs`` with an async driver: the same statement, awaited."""
        statement = self.dialect.insert_jobs(new_jobs)
        with self._translate_errors():
            if connection is not None:
                await self._callers.aexecute(connection, statement)
                return
            async with self.async_engine.begin() as conn:
                await conn.exec_driver_sql(statement.sql, statement.params)

    async def aget_job(self, job_id: str) -> Job | None:
        """``get_job`` with an async driver."""
        with self._translate_errors():
            async with self.async_engine.connect() as conn:
                row = (await conn.execute(self.dialect.get_job(job_id))).mappings().first()
        return Job.from_row(row) if row is not None else None

    @property
    def async_engine(self) -> AsyncEngine:
        """The async twin of ``engine``, made on first use."""
        if self._async_engine is None:
            self._async_engine = self.dialect.create_async_engine(self.engine.url)
        return self._async_engine

    def claim_jobs(
        self, limit: int, queues: Sequence[str] | None, worker_id: str, lease: float
    ) -> list[Job]:
        """Take up to ``limit`` ready jobs, highest priority first, each with a fresh lease;
        a workflow's step with what it receives from the steps before it put first in its
        arguments. Jobs their limits hold back stay ready (docs/limits.md)."""
        statement = self.dialect.claim_jobs(limit, queues, worker_id, lease)
        if goes_alone(statement, self.dialect):
            with self._translate_errors():
                claimed = fetch_jobs_alone(self.engine, statement)
        else:

            def claim(conn: Connection) -> list[Job]:
                rows = self.dialect.claim_limited_jobs(conn, limit, queues, worker_id, lease)
                unlimited = statement
                if rows and len(rows) < limit:
                    unlimited = self.dialect.claim_jobs(limit - len(rows), queues, worker_id, lease)
                if len(rows) < limit:
                    rows.extend(_execute(conn, unlimited).mappings())
                return [Job.from_row(row) for row in rows]

            claimed = self._write_again(claim)
        if any(job.feed is not None for job in claimed):
            claimed = self._fed(claimed)
        claimed.sort(key=lambda job: (-job.priority, job.scheduled_at, job.id))
        return claimed

    def _fed(self, claimed: list[Job]) -> list[Job]:
        # Read after the claim, outside its transaction: a finished job's result never
        # changes, and pruning keeps a workflow's results until all of it has finished.
        # The steps that receive one result are served by one read; a chord's body, by its own.
        singles = [cast(str, job.parent_id) for job in claimed if job.feed == Feed.RESULT]
        received = dict(zip(singles, self._results_in_order(singles), strict=True))
        fed_jobs = []
        for job in claimed:
            if job.feed == Feed.RESULTS:
                received = {
                    **received,
                    job.id: self._read_results(self.dialect.chord_results(job.id)),
                }
            fed_jobs.append(fed(job, received))
        return fed_jobs

    def _results_in_order(self, job_ids: Sequence[str]) -> list[Any]:
        return self._read_results(self.dialect.results_in_order(job_ids)) if job_ids else []

    def _read_results(self, statement: DriverStatement) -> list[Any]:
        with self._translate_errors(), self.engine.connect() as conn:
            return self.dialect.read_results(conn.exec_driver_sql(statement.sql, statement.params))

    def extend_leases(self, takes: Sequence[Take], lease: float) -> set[Take]:
        """Renew the leases of these takes; a take missing from the answer has lost its job."""
        if not takes:
            return set()
        statement = self.dialect.extend_leases(takes, lease)

        def renew(conn: Connection) -> set[Take]:
            rows = cast(Iterable[tuple[Any, int]], _execute(conn, statement))
            return {(str(job_id), attempts) for job_id, attempts in rows}

        return self._write_again(renew)

    def record_outcomes(
        self,
        outcomes: Sequence[tuple[Take, Outcome]],
        releasing: Collection[str] = (),
        frees_slots: bool = False,
    ) -> set[Take]:
        """Write many jobs' outcomes, each of the take beside it, in one transaction; returns
        the takes that still held their job. The others' jobs were taken again meanwhile, and
        nothing about them changed. ``releasing``: the ids of the jobs that workflow steps
        wait for, settled (``settle``) in the same transaction when they finish.
        ``frees_slots``: some of these jobs have a concurrency limit, and workers held back
        by it are woken when the outcomes commit."""
        if not outcomes:
            return set()
        # In take order, so that a job's newest take, the only one its row can match (attempts
        # only grow), is the one kept where a batch also holds a stale take of the job.
        finishing = {
            take[0]: outcome
            for take, outcome in sorted(outcomes, key=lambda pair: pair[0])
            if not outcome.again
        }
        settling = finishing.keys() & set(releasing)
        if self.dialect.releases_in_finish:  # the finish releases what waits for a success
            settling = {
                job_id for job_id in settling if finishing[job_id].status is not JobStatus.SUCCESS
            }
        statements = self.dialect.record_outcomes(
            outcomes, releasing=bool(releasing), wake=frees_slots
        )
        # A finish that releases steps wakes the workers for those steps only.
        wake = any(outcome.again for _, outcome in outcomes) or (frees_slots and bool(releasing))
        if (
            not settling
            and not wake
            and len(statements) == 1
            and goes_alone(only := statements[0], self.dialect)
        ):
            with self._translate_errors():
                return fetch_takes_alone(self.engine, only)

        def write(conn: Connection) -> set[Take]:
            kept: set[Take] = set()
            for statement in statements:
                rows = cast(Iterable[tuple[Any, int]], _execute(conn, statement))
                kept.update((str(job_id), attempt) for job_id, attempt in rows)
            settled = [job_id for job_id, _ in kept if job_id in settling]
            if (settled and settle(conn, self.dialect, settled)) or wake:
                self._wake_workers(conn)
            return kept

        return self._write_again(write)

    def next_due_in(
        self, queues: Sequence[str] | None, refills: bool = False, since: float = 0.0
    ) -> float | None:
        """Seconds until the next ready job of these queues (None: all) that waits for its
        time (a countdown, an eta, a retry's delay) becomes due, or, with ``refills``, until
        the next rate limit's bucket that is empty holds a job again; None when there is
        none. 0 when one became due in the last ``since`` seconds: after a claim, those are
        the jobs it did not see."""
        with self._translate_errors(), self.engine.connect() as conn:
            due, now = conn.execute(self.dialect.next_due_time(queues, since)).one()
            if refills:
                refill, _ = conn.execute(self.dialect.next_refill_time(since)).one()
                due = min((time for time in (due, refill) if time is not None), default=None)
        if due is None:
            return None
        return max(0.0, (as_utc(due) - as_utc(now)).total_seconds())  # type: ignore[operator]

    def release_jobs(self, takes: Sequence[Take]) -> int:
        """Give back jobs taken but never started; returns how many went back."""
        if not takes:
            return 0
        return self._make_ready(self.dialect.release_jobs(takes))

    def release_unknown_takes(self, worker_id: str, known: Sequence[Take]) -> int:
        """Give back the jobs leased to ``worker_id`` other than ``known`` (the takes it holds),
        after a claim whose outcome it could not learn; returns how many went back."""
        return self._make_ready(self.dialect.release_unknown_takes(worker_id, known))

    def rescue_expired_jobs(self, max_lease_expiries: int) -> int:
        """Re-queue (or fail) every job whose lease ran out; returns how many."""
        return self._finish(self.dialect.rescue_expired_jobs(max_lease_expiries), ready=True)

    def expire_jobs(self) -> int:
        """Revoke ready jobs that passed their ``expires_at`` unstarted; returns how many."""
        return self._finish(self.dialect.expire_jobs())

    def delete_finished_jobs(
        self, older_than: float, batch_size: int, max_batches: int | None = None
    ) -> int:
        """Delete jobs finished more than ``older_than`` seconds ago, a batch per short
        transaction so that no lock is held for long, and at most ``max_batches`` batches
        (None: until none is left); returns how many."""
        deleted = batches = 0
        while True:
            with self._write() as conn:
                count = conn.execute(
                    self.dialect.delete_finished_jobs(older_than, batch_size)
                ).rowcount
            deleted += count
            batches += 1
            if count < batch_size or batches == max_batches:
                return deleted

    def requeue_jobs(
        self,
        *,
        job_ids: Sequence[str] = (),
        task_name: str | None = None,
        queue: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Queue failed or revoked jobs again, chosen by id, task or queue; returns how many.
        A batch of ``RETRY_BATCH_SIZE`` per transaction, in order of id, so that no lock is
        held for long; ``progress`` hears the running count after each."""
        if not (job_ids or task_name or queue):
            raise InvalidOptionError("Say which jobs to retry: by id, by task or by queue.")
        requeued, after = 0, ""
        while True:
            (rows,) = self.read(
                [
                    self.dialect.requeue_candidates(
                        job_ids, task_name, queue, after, RETRY_BATCH_SIZE
                    )
                ]
            )
            if not rows:
                return requeued
            ids = [row["id"] for row in rows]
            requeued += self._make_ready(self.dialect.requeue_jobs(ids))
            if progress is not None:
                progress(requeued)
            after = ids[-1]

    def revoke_jobs(self, job_ids: Sequence[str], terminate: bool = False) -> int:
        """Revoke jobs that have not started, or with ``terminate`` running ones too, and
        every step not yet started of the workflows these ids are the handles of; the
        steps that wait for them stop. Returns how many jobs were revoked."""

        # Run again when it loses a lock conflict: a workflow's revoke locks its steps in id
        # order, and a finisher holding one of its jobs may want a step it already holds.
        def write(conn: Connection) -> int:
            rows = [
                row
                for chunk in chunks(job_ids)
                for row in _execute(conn, self.dialect.revoke_jobs(chunk, terminate))
            ]
            settled = [row.id for row in rows if row.releases]
            if settled and settle(conn, self.dialect, settled):
                self._wake_workers(conn)
            running = [row.id for row in rows if row.running]
            for job_id in running if terminate else ():
                announce = self.dialect.announce_revoke(job_id)
                if announce is not None:
                    _execute(conn, announce)
            return len(rows)

        return self._write_again(write)

    def revoked_takes(self, takes: Sequence[Take]) -> set[Take]:
        """The takes among these whose job has been revoked while they held it."""
        if not takes:
            return set()
        with self._translate_errors(), self.engine.connect() as conn:
            rows = conn.execute(self.dialect.revoked_takes(takes))
            return {(str(job_id), attempts) for job_id, attempts in rows}

    def update_progress(self, take: Take, progress: dict[str, Any]) -> bool:
        """Write a running job's progress; False when the take no longer holds the job."""
        return self._update_one(self.dialect.update_progress(take, progress))

    def delete_finished_job(self, job_id: str) -> bool:
        """Delete a finished job; False when there is no such finished job."""
        return self._update_one(self.dialect.delete_finished_job(job_id))

    def get_job(self, job_id: str) -> Job | None:
        """The job's current row, or None when there is no such job."""
        with self._translate_errors(), self.engine.connect() as conn:
            row = conn.execute(self.dialect.get_job(job_id)).mappings().first()
        return Job.from_row(row) if row is not None else None

    def database_now(self) -> datetime:
        """The database's clock, in UTC."""
        with self._translate_errors(), self.engine.connect() as conn:
            now = conn.execute(self.dialect.database_now()).scalar_one()
        return cast(datetime, as_utc(now))

    def get_schedules(self, names: Sequence[str]) -> dict[str, ScheduleState]:
        """What the database knows of these periodic tasks, by name (none: never seen)."""
        with self._translate_errors(), self.engine.connect() as conn:
            rows = conn.execute(self.dialect.get_schedules(names)).all()
        return {
            row.name: ScheduleState(
                name=row.name,
                task_name=row.task_name,
                last_tick=cast(datetime, as_utc(row.last_tick)),
                job_id=row.job_id,
                sent_at=as_utc(row.sent_at),
            )
            for row in rows
        }

    def insert_schedule(self, name: str, task_name: str, tick: datetime) -> None:
        """Write the row of a periodic task seen first, its latest tick taken without a job."""
        with self._write() as conn:
            conn.execute(self.dialect.insert_schedule(name, task_name, tick))

    def send_tick(
        self, name: str, task_name: str, tick: datetime, send: Callable[[Connection], str]
    ) -> str | None:
        """Take a periodic task's tick and send its job (``send`` writes it through the
        connection it is given, and answers with its id), in one transaction: the job exists
        if and only if this transaction moved the task's latest tick forward to ``tick``.
        The job's id, or None when another scheduler took the tick first."""
        with self._write() as conn:
            if conn.execute(self.dialect.take_tick(name, task_name, tick)).rowcount != 1:
                return None
            job_id = send(conn)
            conn.execute(self.dialect.set_tick_job(name, job_id))
        return job_id

    def group_member_ids(self, group_id: str) -> list[str]:
        """The ids of a group's jobs, in the group's order."""
        with self._translate_errors(), self.engine.connect() as conn:
            members = conn.execute(self.dialect.group_member_ids(group_id)).scalar()
        return list(members or ())

    def read(self, statements: Sequence[Executable]) -> list[list[RowMapping]]:
        """The rows of each of these read-only statements, read on one connection: the
        queries of ``status`` and ``heartbeats``, which build their own statements."""
        with self._translate_errors(), self.engine.connect() as conn:
            return [list(conn.execute(statement).mappings()) for statement in statements]

    def write(self, statements: Sequence[Executable]) -> list[int]:
        """Run these statements in one transaction; how many rows each changed."""
        with self._write() as conn:
            return [conn.execute(statement).rowcount for statement in statements]

    def _finish(self, statement: Statement, ready: bool = False) -> int:
        # Jobs moved by a chore: those that finished settle the steps waiting for them, and
        # those made ready (and the released steps) must wake the workers that listen.

        def write(conn: Connection) -> int:
            rows = _execute(conn, statement).all()
            settled = [row.id for row in rows if row.releases and row.finished]
            released = bool(settled) and settle(conn, self.dialect, settled)
            if released or (ready and any(not row.finished for row in rows)):
                self._wake_workers(conn)
            return len(rows)

        return self._write_again(write)

    def _make_ready(self, statement: Statement) -> int:
        # Jobs put back in the queue by anything but a send: workers that listen must hear
        # of them too, or they would wait for their fallback poll.

        def write(conn: Connection) -> int:
            count = _execute(conn, statement).rowcount
            if count:
                self._wake_workers(conn)
            return count

        return self._write_again(write)

    def _wake_workers(self, conn: Connection) -> None:
        statement = self.dialect.wake_workers()
        if statement is not None:
            _execute(conn, statement)

    def _update_one(self, statement: Executable) -> bool:
        with self._write() as conn:
            return conn.execute(statement).rowcount == 1

    def _write_again(self, work: Callable[[Connection], T]) -> T:
        """``work`` in a transaction of sqlqueue's own, run again when the database rolled
        it back to end a lock conflict (``Dialect.lost_lock_conflict``: a deadlock, a lock
        wait timed out), up to ``LOCK_CONFLICT_ATTEMPTS`` times in all. Nothing of a
        rolled-back try was written; a caller's transaction is never tried again."""
        for attempt in range(1, LOCK_CONFLICT_ATTEMPTS + 1):
            try:
                with self._write() as conn:
                    return work(conn)
            except DatabaseError as exc:
                self._raise_unless_lost_lock_conflict(exc, attempt)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    async def _awrite_again(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``_write_again`` with an async driver (its engine is in READ COMMITTED)."""
        for attempt in range(1, LOCK_CONFLICT_ATTEMPTS + 1):
            try:
                with self._translate_errors():
                    async with self.async_engine.begin() as conn:
                        return await work(conn)
            except DatabaseError as exc:
                self._raise_unless_lost_lock_conflict(exc, attempt)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _raise_unless_lost_lock_conflict(self, exc: DatabaseError, attempt: int) -> None:
        orig = _driver_error(exc)
        if attempt == LOCK_CONFLICT_ATTEMPTS or not self.dialect.lost_lock_conflict(orig):
            raise exc
        # Logged: the design keeps these rare (docs/databases.md); a log that shows many
        # says where it does not.
        logger.info("lock conflict, transaction run again attempt=%d error=%s", attempt, orig)

    @contextmanager
    def _write(self, begin: Callable[[Connection], None] | None = None) -> Iterator[Connection]:
        with self._translate_errors(), self.engine.connect() as conn:
            (begin or self.dialect.begin_write)(conn)
            yield conn
            conn.commit()

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except sa_exc.DBAPIError as exc:
            # SQLAlchemy files each driver's error under the DB-API class it is (PyMySQL's
            # lost connection is an OperationalError), so the wrapper says whether it is
            # transient for drivers this module does not import.
            raise _database_error(exc.orig or exc, self.dialect, exc) from exc
        except sa_exc.SQLAlchemyError as exc:  # e.g. no pooled connection came free in time
            raise _database_error(exc, self.dialect) from exc
        except _dbapi_errors() as exc:
            raise _database_error(exc, self.dialect) from exc


def _dbapi_errors() -> tuple[type[Exception], ...]:
    return (*DRIVER_ERRORS, *driver_errors("Error"))


def _driver_error(exc: DatabaseError) -> BaseException | None:
    """The driver's error under a ``DatabaseError`` of the store's."""
    cause = exc.__cause__
    return cause.orig if isinstance(cause, sa_exc.DBAPIError) else cause


def _unheld(
    new_jobs: NewJobs, rows: Iterable[Sequence[Any]], holders: dict[str, str]
) -> NewJobs | None:
    """Add the (key, id) rows of a send of unique jobs to ``holders``, first row of a key
    first; the jobs whose keys no row answered for, to send again, or None."""
    for key, job_id in rows:
        holders.setdefault(key, str(job_id))
    keys = cast(list[str], new_jobs.unique_keys)
    left = [at for at, key in enumerate(keys) if key not in holders]
    return new_jobs.only(left, [keys[at] for at in left]) if left else None


def _keys(new_jobs: NewJobs) -> list[str]:
    return cast(list[str], new_jobs.unique_keys)


def _rows(result: CursorResult[Any]) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in result] if result.returns_rows else []


def _contended(new_jobs: NewJobs) -> DatabaseError:
    return DatabaseError(
        f"The unique keys {new_jobs.unique_keys} were taken and freed again "
        f"{UNIQUE_SEND_ATTEMPTS} times while this send ran; send again."
    )


def _execute(connection: Connection, statement: Statement) -> CursorResult[Any]:
    if isinstance(statement, Procedure):
        return statement.run(connection)
    if isinstance(statement, DriverStatement):
        return connection.exec_driver_sql(statement.sql, statement.params)
    return connection.execute(statement)


T = TypeVar("T")

logger = logging.getLogger(__name__)

LOCK_CONFLICT_ATTEMPTS = 5
"""How many times a transaction of sqlqueue's own is tried when lock conflicts roll it back."""

TRANSIENT_ERRORS = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sqlite3.OperationalError,
    sqlite3.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
"""Errors of the connection or the moment, not of the statement: worth trying again; and
the MySQL drivers' ``OperationalError`` and ``InterfaceError``, where imported
(``driver_errors``)."""


def _database_error(
    exc: BaseException, dialect: Dialect, wrapper: BaseException | None = None
) -> SQLQueueError:
    message = str(exc).strip()
    if dialect.duplicate_id(exc):
        return DuplicateJobIdError(
            "A job with this id exists already, and job ids are unique: nothing was written. "
            "Choose another task_id=, or send without one for a new UUID."
        )
    if isinstance(
        exc, psycopg.errors.DuplicatePreparedStatement | psycopg.errors.InvalidSqlStatementName
    ):
        return DatabaseError(
            f"{message.rstrip('.')}. The connection's prepared statements were lost between "
            "two transactions, as behind a pooler in transaction mode (PgBouncer): add "
            "?prepare_threshold=none to the database URL (docs/databases.md).",
            transient=False,
        )
    if "does not exist" in message or "no such table" in message or "no such column" in message:
        if "sqlqueue_claim" in message:
            return DatabaseError(
                f"{message.rstrip('.')}. This database's sqlqueue schema is older than this "
                "code (it lacks migration 0004): run `sqlqueue migrate` against it.",
                transient=False,
            )
        if "sqlqueue_" in message or "column" in message:
            return DatabaseError(
                f"{message.rstrip('.')}. The queue's tables are missing: run `sqlqueue migrate` "
                "(or `alembic upgrade head` in the sqlqueue repository) against this database.",
                transient=False,
            )
    return DatabaseError(
        f"The database refused a sqlqueue statement: {message}",
        transient=isinstance(
            exc,
            (
                *TRANSIENT_ERRORS,
                *driver_errors("OperationalError"),
                *driver_errors("InterfaceError"),
            ),
        )
        or isinstance(wrapper, TRANSIENT_ERRORS),
    )
