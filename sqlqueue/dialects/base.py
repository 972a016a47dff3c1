"""What a dialect is: the statements every database provides under the same names.

A new database is one module holding a ``Dialect`` subclass, plus its migrations and its
driver in ``dialects/__init__.py``. Each method returns a statement for ``JobStore`` to run;
the subclass must provide, for its database:

- ``now`` and ``now_plus``: its clock, as SQL expressions the other statements use;
- ``insert_jobs``: the jobs of one send, one or many, in one ``DriverStatement``;
- ``insert_unique_jobs``: the same with unique keys, answering with the job holding each key;
- ``insert_workflow``: the jobs of a workflow (``plans``), in one ``DriverStatement``;
- ``results_in_order`` and ``chord_results``: the results a workflow's step receives, as one
  JSON array, or as ``read_results`` reads them where the subclass overrides it;
- ``claim_jobs``: take ready jobs in priority order and lease them;
- ``record_outcomes``: write a batch of outcomes, each fenced by its take.

The rest are written once here with SQLAlchemy Core, and a dialect overrides one only where
its database needs another form: ``extend_leases``, ``retry_job``, ``next_due_time``,
``release_jobs``, ``release_unknown_takes``, ``rescue_expired_jobs``, ``expire_jobs``,
``delete_finished_jobs``, ``requeue_candidates``, ``requeue_jobs``, ``revoke_jobs``, ``revoked_takes``,
``group_member_ids``, ``unique_holders`` (a read of the holders before a unique send's insert),
``update_progress``, ``delete_finished_job``, ``get_job``, and the periodic tasks' statements
(``get_schedules``, ``insert_schedule``, ``take_tick``, ``set_tick_job``, on the
``upsert`` the subclass names); ``copy_jobs`` (a
large send by the database's bulk path, where it has one); the engine set-up
(``create_engine``, ``create_async_engine``, ``configure_engine``, ``begin_write``); and the
capabilities, off by default (``driver_autocommit``; ``supports_listen_notify`` with
``listen``, ``wake_workers`` and ``announce_revoke``; ``lost_lock_conflict``, which lets the
store run its own transaction again). The updates that answer with rows say so through
``returning``: ``UPDATE … RETURNING`` by default, a ``Procedure`` of several statements where
the database lacks it (MySQL).

A job's ``progress`` (``update_state``) belongs to the take that wrote it: every statement by
which a job leaves STARTED clears it.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, CursorResult, Engine, RowMapping
from sqlalchemy.sql import Executable
from sqlalchemy.sql.dml import Delete, Update

from sqlqueue.dialects.workflow_statements import WorkflowStatements
from sqlqueue.engines import ping_when_idle, unpooled_async_engine
from sqlqueue.jobs import READY_STATUSES, Job, JobStatus, NewJobs
from sqlqueue.outcomes import Outcome
from sqlqueue.plans import WorkflowPlan
from sqlqueue.schema import (
    DEFERRED_WHERE,
    FINISHED_WHERE,
    GROUP_WHERE,
    LEASED_WHERE,
    READY_WHERE,
    STARTED_BY_ID,
    UNFINISHED_WHERE,
    UNSTARTED_WORKFLOW_WHERE,
    job_columns,
    jobs,
    rate_limits,
    schedules,
)

if TYPE_CHECKING:  # the async extra's; see engines.require_async_extra
    from sqlalchemy.ext.asyncio import AsyncEngine

AGAIN_STATUSES = (JobStatus.FAILURE.value, JobStatus.REVOKED.value)
"""What ``sqlqueue retry`` puts back in the queue."""

Take = tuple[str, int]
"""A job id and the attempt number of the take that holds it: the fence on every write."""


def take_of(job: Job) -> Take:
    """The take by which a worker holds a job, and which fences every write about it."""
    return (job.id, job.attempts)


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """SQL in the driver's own parameter style, sent as it is.

    Sends are the hottest path a queue has, and SQLAlchemy's statement construction cost
    more than the database's work there; fixed text skips it, and it is the same text for
    every kind of connection a caller may pass (SQLAlchemy, psycopg, sqlite3, async).
    """

    sql: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CopyStatement:
    """Many rows streamed with ``COPY … FROM STDIN`` in the text format: the fastest way a
    database that has it takes a large send (PostgreSQL). Three steps in one transaction:
    ``before`` returns one row, the values only the database knows that every row shares
    (its clock); ``rows`` turns that row into the COPY's data, in chunks; ``after`` runs
    once the rows are in (the wake-up). Only psycopg connections send it.
    """

    before: DriverStatement
    copy: str
    rows: Callable[[Sequence[Any]], Iterator[str]]
    after: DriverStatement


@dataclass(frozen=True, slots=True)
class Procedure:
    """Statements run in order on the transaction's connection, where one statement with
    ``RETURNING`` cannot do the work (MySQL and MariaDB have no ``UPDATE … RETURNING``):
    ``run`` answers with the rows the single statement would have returned."""

    run: Callable[[Connection], CursorResult[Any]]


Statement = Executable | DriverStatement | Procedure
"""What a dialect hands the store to run: SQLAlchemy Core, fixed driver SQL on hot paths, or
a ``Procedure`` where the database lacks the statement's form."""


class Dialect(WorkflowStatements, ABC):
    """The statements of one database; see the module's docstring for what a subclass
    provides."""

    name: str
    """The SQLAlchemy dialect name, as ``engine.dialect.name`` spells it."""

    driver_autocommit = False
    """Whether a statement atomic on its own (a send outside any transaction of the caller,
    a claim, a batch of outcomes) goes straight to the driver in autocommit: where such
    statements are ``DriverStatement``s and the driver is psycopg (``sqlqueue.autocommit``)."""

    releases_in_finish = False
    """Whether ``record_outcomes(..., releasing=True)`` itself releases the steps waiting for
    the successes it records (PostgreSQL, in one statement; MySQL, in its ``Procedure``);
    otherwise ``settle`` does, in the same transaction. Failures are always ``settle``'s."""

    upsert: Callable[[sa.Table], Any]
    """The database's ``INSERT ... ON CONFLICT`` (SQLAlchemy's dialect ``insert``)."""

    supports_listen_notify = False
    """Whether workers can be woken by the database when jobs arrive (``listen``)."""

    def create_engine(self, url: URL) -> Engine:
        """An engine for a URL the app was given (not for an engine the user built)."""
        engine = sa.create_engine(url)
        ping_when_idle(engine)
        return engine

    def create_async_engine(self, url: URL) -> AsyncEngine:
        """An engine with the database's async driver, for ``adelay()`` and ``aget()``.

        Unpooled: a pooled async connection belongs to the event loop that opened it, and
        code that calls ``asyncio.run()`` more than once would leave it behind, broken. An
        application that wants pooling passes its own ``AsyncConnection`` or ``AsyncSession``.
        """
        return unpooled_async_engine(url)

    def configure_engine(self, engine: Engine) -> None:
        """Adjust an engine the user built and shares with sqlqueue; by default nothing."""
        return

    def listen(
        self,
        engine: Engine,
        wake: Callable[[], None],
        stop: threading.Event,
        listening: threading.Event,
        revoked: Callable[[], None],
        listen_engine: Engine | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        """Call ``wake`` whenever new jobs are committed, and ``revoked`` whenever a running
        job is revoked (``announce_revoke``), until ``stop`` is set; keep ``listening`` set
        while a send is sure to call it (and call it when that changes). Listen through
        ``listen_engine`` when given (a direct connection where ``engine`` goes through a
        pooler), else ``engine``; ``poll_interval`` is the worker's, for what it logs. Only
        where ``supports_listen_notify``; elsewhere workers poll."""
        raise NotImplementedError(f"{type(self).__name__} has no listen(); its workers poll.")

    def vacuum_status(self, long_transaction: float) -> Executable | None:
        """One row: whether the server vacuums on its own (``autovacuum``), and the oldest
        transaction open longer than ``long_transaction`` seconds that keeps vacuum from
        removing dead row versions (``pid``, ``username``, ``application``, ``state``,
        ``held_for``; nulls when none). None where vacuum is not a concern (SQLite)."""
        return None

    def wake_workers(self) -> Statement | None:
        """A statement that wakes listening workers when the transaction commits, for jobs
        made ready by anything but a send (a send's insert wakes them itself); None where
        workers poll."""
        return None

    def announce_revoke(self, job_id: str) -> Statement | None:
        """A statement that tells listening workers, when the transaction commits, that this
        job was revoked while it may be running; None where workers poll for revokes."""
        return None

    def begin_write(self, connection: Connection) -> None:
        """Start a transaction that will write; by default the driver's implicit BEGIN."""
        connection.begin()

    def lost_lock_conflict(self, error: BaseException | None) -> bool:
        """Whether ``error`` says the database rolled the transaction back to end a lock
        conflict, so that running it again is safe and likely to succeed; False by default
        (PostgreSQL's claims never wait, SQLite's writers take turns)."""
        return False

    def duplicate_id(self, error: BaseException) -> bool:
        """Whether ``error`` is a send refused because a job with its id exists already
        (``task_id=``): each database names the broken key its own way."""
        raise NotImplementedError

    def lost_unique_race(self, error: BaseException | None) -> bool:
        """Whether ``error`` refused a statement of ``insert_unique_jobs`` because a
        transaction that committed while it ran took one of its keys, so that sending the
        jobs again finds that job; False by default (the other databases' inserts do
        nothing for a key taken meanwhile, and answer without it)."""
        return False

    def returning(self, update: Update, *columns: sa.ColumnElement[Any]) -> Statement:
        """``update`` answering with ``columns`` of the rows it changed: ``UPDATE …
        RETURNING`` where the database has it (the default); a dialect without it
        overrides this with a ``Procedure``."""
        return update.returning(*columns)

    @abstractmethod
    def now(self) -> sa.ColumnElement[datetime]:
        """The current time as a SQL expression."""

    @abstractmethod
    def now_plus(self, seconds: float) -> sa.ColumnElement[datetime]:
        """``now()`` plus a number of seconds, as a SQL expression."""

    @abstractmethod
    def insert_jobs(self, new_jobs: NewJobs) -> DriverStatement:
        """Insert the jobs of one send, one or many, in one statement, so that a send is
        atomic even on a caller's connection in autocommit. Driver SQL, because a caller's
        connection may be a bare DB-API one (see ``DriverStatement``)."""

    @abstractmethod
    def insert_unique_jobs(self, new_jobs: NewJobs) -> list[DriverStatement]:
        """The jobs of a send with unique keys (``new_jobs.unique_keys``, distinct), each
        inserted unless an unfinished job holds its key. Run in order in one transaction,
        the statements answer with rows (key, id): the job inserted for a key first, else
        the unfinished job that held it. A key in no row was held by a job the statements
        could not see (committed while they ran): sent again, it will be."""

    def unique_holders(self, keys: Sequence[str]) -> DriverStatement | None:
        """A plain read (no locks) of the unfinished jobs holding these keys, answering rows
        (key as sent, id), which the store runs before ``insert_unique_jobs`` and then gives
        that only the jobs of the keys it did not answer: for a database whose insert cannot
        pass over a held key without locking the holder (MySQL). None (the default): the
        insert passes over held keys itself."""
        return None

    def copy_jobs(self, new_jobs: NewJobs) -> CopyStatement | None:
        """The jobs of a large send as a ``CopyStatement``, when the database takes them
        faster that way than as ``insert_jobs``; None (the default) where it does not, and
        for sends too small to gain from it."""
        return None

    @abstractmethod
    def claim_jobs(
        self, limit: int, queues: Sequence[str] | None, worker_id: str, lease: float
    ) -> Statement:
        """Take up to ``limit`` ready and due jobs of these queues (None: all), highest
        priority first (jobs with limits only where the claim holds them: see
        ``claim_limited_jobs``), and lease them to ``worker_id`` for ``lease`` seconds, in one
        statement; it returns the taken rows. Two workers claiming at once must never take
        the same job: each dialect module says how its database makes that so."""

    def taken(self, worker_id: str, lease: float) -> dict[str, Any]:
        """What a claim writes on each job it takes: STARTED by ``worker_id``, one more
        attempt (the take's fence), leased for ``lease`` seconds from the database's now."""
        return {
            "status": JobStatus.STARTED.value,
            "attempts": jobs.c.attempts + 1,
            "started_at": self.now(),
            "lease_expires_at": self.now_plus(lease),
            "worker_id": worker_id,
        }

    def claim_limited_jobs(
        self,
        connection: Connection,
        limit: int,
        queues: Sequence[str] | None,
        worker_id: str,
        lease: float,
    ) -> list[RowMapping]:
        """Take up to ``limit`` ready jobs with limits that their limits let start, in the
        claim's transaction, before ``claim_jobs`` takes jobs without limits (its index holds
        no others); the taken rows. None here: a database whose ``claim_jobs`` holds the
        limits itself (PostgreSQL's claim function) takes them there."""
        return []

    def extend_leases(self, takes: Sequence[Take], lease: float) -> Statement:
        """Renew the leases of jobs still held by these takes; returns the renewed takes."""
        return self.returning(
            self._fenced_update(takes).values(lease_expires_at=self.now_plus(lease)),
            jobs.c.id,
            jobs.c.attempts,
        )

    def retry_job(self, take: Take, outcome: Outcome) -> Statement:
        """Put a job back for another try after the retry's countdown (with the new
        arguments the retry gave, if any), unless its take has been replaced; returns the
        take when it was written. A requeue (status PENDING) is not counted as a retry."""
        new_arguments: dict[str, Any] = {
            name: value
            for name, value in (("args", outcome.new_args), ("kwargs", outcome.new_kwargs))
            if value is not None
        }
        if outcome.new_args is not None:
            new_arguments["feed"] = None  # the new args hold all the task receives
        return self.returning(
            self._fenced_update([take]).values(
                status=outcome.status.value,
                retries=jobs.c.retries + int(outcome.status is JobStatus.RETRY),
                scheduled_at=self.now_plus(outcome.countdown),
                lease_expires_at=None,
                worker_id=None,
                progress=None,
                **new_arguments,
                **outcome.error_values(),
            ),
            jobs.c.id,
            jobs.c.attempts,
        )

    @abstractmethod
    def insert_workflow(self, plan: WorkflowPlan, max_payload_bytes: int) -> DriverStatement:
        """Every job of a workflow in one statement, those with prerequisites WAITING; waking
        workers, where the database can, when a job is ready at once."""

    @abstractmethod
    def results_in_order(self, job_ids: Sequence[str]) -> DriverStatement:
        """The results of these jobs in their order (null for a job with none), for the
        steps that receive one result each, as ``read_results`` reads them."""

    @abstractmethod
    def chord_results(self, job_id: str) -> DriverStatement:
        """The results a chord's body receives, those of its prerequisites in their order,
        as ``read_results`` reads them (read where they are stored: the list of a chord's
        header may hold thousands of ids)."""

    def read_results(self, answer: CursorResult[Any]) -> list[Any]:
        """The results ``results_in_order`` or ``chord_results`` answered: one row, one
        value, a JSON array (SQLite gives its text)."""
        results = answer.scalar_one()
        return cast(list[Any], json.loads(results) if isinstance(results, str) else results)

    @abstractmethod
    def record_outcomes(
        self, outcomes: Sequence[tuple[Take, Outcome]], releasing: bool = False, wake: bool = False
    ) -> list[Statement]:
        """Statements that write these outcomes, each of the take beside it, to run in one
        transaction; each returns the ids it changed, so a take that was fenced off is the
        one missing. ``releasing``: workflow steps wait for some of these jobs; where
        ``releases_in_finish``, the statements settle their successes too. ``wake``: where
        ``supports_listen_notify``, they wake the listening workers when they commit (jobs
        with a concurrency limit free their slots)."""

    def next_due_time(self, queues: Sequence[str] | None, since: float = 0.0) -> Executable:
        """When the next job that is ready but not yet due becomes due, with the database's
        "now" beside it: one row, (None, now) when no job waits for its time. A job that
        became due in the last ``since`` seconds counts too (its time is past "now").

        Only deferred jobs can wait (``DEFERRED_WHERE``), and their indexes answer with one
        probe, or one per queue: none of the other queues' jobs is read.
        """
        if not queues:
            return self._earliest_deferred(None, since).add_columns(self.now().label("now"))
        per_queue = sa.union_all(
            *(self._earliest_deferred(queue, since) for queue in dict.fromkeys(queues))
        ).subquery()
        return sa.select(sa.func.min(per_queue.c.due).label("due"), self.now().label("now"))

    def next_refill_time(self, since: float = 0.0) -> sa.Select[Any, datetime]:
        """When the next rate limit's bucket that is empty now holds a job again, with the
        database's "now" beside it: one row, (None, now) when none is empty. A bucket that
        refilled in the last ``since`` seconds counts too."""
        return sa.select(sa.func.min(rate_limits.c.next_at), self.now()).where(
            rate_limits.c.next_at > self._since(since)
        )

    def _earliest_deferred(self, queue: str | None, since: float) -> sa.Select[Any]:
        due = (
            sa.select(sa.func.min(jobs.c.scheduled_at).label("due"))
            .where(DEFERRED_WHERE)
            .where(jobs.c.scheduled_at > self._since(since))
        )
        return due if queue is None else due.where(jobs.c.queue == queue)

    def _since(self, seconds: float) -> sa.ColumnElement[datetime]:
        return self.now_plus(-seconds) if seconds else self.now()

    def release_jobs(self, takes: Sequence[Take]) -> Update:
        """Give back jobs that were taken but never started."""
        return self._fenced_update(takes).values(
            status=JobStatus.PENDING.value,
            started_at=None,
            lease_expires_at=None,
            worker_id=None,
            progress=None,
        )

    def release_unknown_takes(self, worker_id: str, known: Sequence[Take]) -> Update:
        """Give back the jobs leased to this worker id that it does not know it holds: taken
        by a claim whose commit reached the database while its answer did not."""
        statement = (
            jobs.update()
            .where(jobs.c.worker_id == worker_id)
            .where(jobs.c.status == JobStatus.STARTED.value)
        )
        if known:
            statement = statement.where(sa.tuple_(jobs.c.id, jobs.c.attempts).not_in(list(known)))
        return statement.values(
            status=JobStatus.PENDING.value,
            started_at=None,
            lease_expires_at=None,
            worker_id=None,
            progress=None,
        )

    def rescue_expired_jobs(self, max_lease_expiries: int) -> Statement:
        """Re-queue jobs whose worker stopped renewing their lease, or fail them when they
        have lost their worker too often (a job that kills its worker must not loop)."""
        out_of_attempts = jobs.c.expired_leases + 1 >= max_lease_expiries
        return self.returning(
            jobs.update()
            .where(LEASED_WHERE)
            .where(jobs.c.lease_expires_at < self.now())
            .values(
                expired_leases=jobs.c.expired_leases + 1,
                status=sa.case(
                    (out_of_attempts, JobStatus.FAILURE.value), else_=JobStatus.PENDING.value
                ),
                finished_at=sa.case((out_of_attempts, self.now()), else_=None),
                error_type=sa.case((out_of_attempts, "WorkerLost"), else_=jobs.c.error_type),
                error_message=sa.case(
                    (
                        out_of_attempts,
                        "The worker running this job stopped renewing its lease "
                        f"{max_lease_expiries} times (killed or frozen); the job was given up.",
                    ),
                    else_=jobs.c.error_message,
                ),
                lease_expires_at=None,
                worker_id=None,
                progress=None,
            ),
            *_settled_columns(jobs.c.status == JobStatus.FAILURE.value),
        )

    def expire_jobs(self) -> Statement:
        """Revoke ready jobs whose ``expires_at`` passed before any worker took them."""
        return self.returning(
            jobs.update()
            .where(READY_WHERE)
            .where(jobs.c.expires_at <= self.now())
            .values(
                status=JobStatus.REVOKED.value,
                finished_at=self.now(),
                error_type="Expired",
                error_message="The job expired before a worker started it.",
            ),
            *_settled_columns(sa.true()),
        )

    def delete_finished_jobs(self, older_than: float, limit: int) -> Delete:
        """Delete up to ``limit`` jobs finished more than ``older_than`` seconds ago."""
        oldest = self._oldest_finished(older_than, limit).with_for_update(skip_locked=True)
        return jobs.delete().where(jobs.c.id.in_(oldest.scalar_subquery()))

    def _oldest_finished(self, older_than: float, limit: int) -> sa.Select[Any]:
        """The ids of up to ``limit`` jobs finished more than ``older_than`` seconds ago whose
        workflow will not read their results again, oldest first."""
        unstarted, running = jobs.alias("unstarted"), jobs.alias("running")
        return (
            sa.select(jobs.c.id)
            .where(FINISHED_WHERE)
            .where(jobs.c.finished_at < self.now_plus(-older_than))
            .where(
                # A workflow's results stay until all of it has finished: a step receives
                # the results of those before it when it is taken (again, if its worker is
                # lost). The running jobs of all workflows are few, and read once.
                sa.or_(
                    jobs.c.workflow_id.is_(None),
                    sa.and_(
                        ~sa.exists()
                        .where(unstarted.c.workflow_id == jobs.c.workflow_id)
                        .where(UNSTARTED_WORKFLOW_WHERE),  # its words, for SQLite's index
                        jobs.c.workflow_id.not_in(
                            sa.select(running.c.workflow_id)
                            .where(LEASED_WHERE)
                            .where(running.c.workflow_id.is_not(None))
                        ),
                    ),
                )
            )
            .order_by(jobs.c.finished_at)
            .limit(limit)
        )

    def requeue_candidates(
        self,
        job_ids: Sequence[str],
        task_name: str | None,
        queue: str | None,
        after: str,
        limit: int,
    ) -> sa.Select[Any]:
        """The next ``limit`` ids, in order after ``after``, of failed or revoked jobs with
        these ids, of this task, in this queue (the filters given, together): one batch of
        ``sqlqueue retry``, which goes through them once, whatever each batch revives."""
        statement = (
            sa.select(jobs.c.id)
            .where(jobs.c.status.in_(AGAIN_STATUSES), jobs.c.id > after)
            .order_by(jobs.c.id)
            .limit(limit)
        )
        if job_ids:
            statement = statement.where(jobs.c.id.in_(list(job_ids)))
        if task_name is not None:
            statement = statement.where(jobs.c.task_name == task_name)
        if queue is not None:
            statement = statement.where(jobs.c.queue == queue)
        return statement

    def requeue_jobs(self, job_ids: Sequence[str]) -> Statement:
        """Put these failed or revoked jobs back in the queue as new (``requeuable``)."""
        return jobs.update().where(self.requeuable(job_ids)).values(self.requeued())

    def requeuable(self, job_ids: Sequence[str]) -> sa.ColumnElement[bool]:
        """Which of these jobs ``requeue_jobs`` puts back: the failed or revoked. A job with a
        unique key comes back only if no unfinished job holds its key, and of several with
        one key, only the first by id: the key's index holds one unfinished job."""
        live, other = jobs.alias("live"), jobs.alias("other")
        return sa.and_(
            jobs.c.id.in_(list(job_ids)),
            jobs.c.status.in_(AGAIN_STATUSES),
            sa.or_(
                jobs.c.unique_key.is_(None),
                sa.and_(
                    ~sa.exists().where(live.c.unique_key == jobs.c.unique_key, UNFINISHED_WHERE),
                    jobs.c.id
                    == sa.select(sa.func.min(other.c.id))
                    .where(
                        other.c.unique_key == jobs.c.unique_key,
                        other.c.status.in_(AGAIN_STATUSES),
                    )
                    .scalar_subquery(),
                ),
            ),
        )

    def requeued(self) -> dict[str, Any]:
        """What ``requeue_jobs`` writes on each job it puts back: a new job's state."""
        return {
            "status": JobStatus.PENDING.value,
            "scheduled_at": self.now(),
            "expires_at": None,
            "retries": 0,
            "expired_leases": 0,
            "started_at": None,
            "finished_at": None,
        }

    def revoke_jobs(self, job_ids: Sequence[str], terminate: bool) -> Statement:
        """Mark jobs that have not started, and the steps not started of the workflows
        whose handles these ids are, as never to run; with ``terminate``, running ones too
        (a worker, told by ``announce_revoke`` or its next look, stops its job). A running
        take's own writes are fenced off from then on: they ask for STARTED. Answers with
        each job revoked, whether others wait for it, and whether it was running."""
        statuses = [status.value for status in (*READY_STATUSES, JobStatus.WAITING)]
        ids = list(job_ids)
        workflows = [sa.and_(jobs.c.workflow_id.in_(ids), UNSTARTED_WORKFLOW_WHERE)]
        if terminate:
            statuses.append(JobStatus.STARTED.value)
            workflows.append(sa.and_(jobs.c.workflow_id.in_(ids), LEASED_WHERE))
        return self.returning(
            jobs.update()
            .where(sa.or_(jobs.c.id.in_(ids), *workflows))
            .where(jobs.c.status.in_(statuses))
            .values(
                status=JobStatus.REVOKED.value,
                finished_at=self.now(),
                lease_expires_at=None,
                progress=None,
                waiting_for=None,
            ),
            # A claim sets worker_id and every way back to the queue clears it.
            *_settled_columns(sa.true()),
            jobs.c.worker_id.is_not(None).label("running"),
        )

    def group_member_ids(self, group_id: str) -> sa.Select[Any]:
        """The ids of a group's jobs, in the group's order, as its first job lists them
        (no row for an empty group, which has no jobs)."""
        return sa.select(jobs.c.group_members).where(jobs.c.group_id == group_id).where(GROUP_WHERE)

    def revoked_takes(self, takes: Sequence[Take]) -> sa.Select[Any]:
        """Which of these takes have had their job revoked while they held it."""
        return (
            sa.select(jobs.c.id, jobs.c.attempts)
            .where(jobs.c.id.in_([job_id for job_id, _ in takes]))  # see _fenced_update
            .where(sa.tuple_(jobs.c.id, jobs.c.attempts).in_(list(takes)))
            .where(jobs.c.status == JobStatus.REVOKED.value)
        )

    def update_progress(self, take: Take, progress: dict[str, Any]) -> Update:
        """Write what a running task says of itself, while its take still holds the job."""
        return self._fenced_update([take]).values(progress=progress)

    def delete_finished_job(self, job_id: str) -> Delete:
        """Delete one job, if it has finished (``AsyncResult.forget()``)."""
        return jobs.delete().where(jobs.c.id == job_id).where(FINISHED_WHERE)

    def get_job(self, job_id: str) -> sa.Select[Any]:
        """Read one job."""
        return sa.select(*job_columns()).where(jobs.c.id == job_id)

    def database_now(self) -> sa.Select[Any]:
        """The database's clock: the periodic tasks' ticks are read from it."""
        return sa.select(self.now())

    def get_schedules(self, names: Sequence[str]) -> sa.Select[Any]:
        """The rows of these periodic tasks."""
        return sa.select(schedules).where(schedules.c.name.in_(names))

    def insert_schedule(self, name: str, task_name: str, tick: datetime) -> Executable:
        """A periodic task's first row: its latest tick taken without a job (a task seen first
        starts at its next tick); nothing if another scheduler wrote the row first."""
        statement: Executable = (
            self.upsert(schedules)
            .values(name=name, task_name=task_name, last_tick=tick)
            .on_conflict_do_nothing(index_elements=[schedules.c.name])
        )
        return statement

    def take_tick(self, name: str, task_name: str, tick: datetime) -> Update:
        """Move a periodic task's latest tick forward to ``tick``: one row when this
        transaction takes the tick, none when a scheduler took it (or a later one) first. On
        PostgreSQL a second scheduler waits for the first's row lock, then reads the row it
        committed and matches nothing; on SQLite writers take turns."""
        return (
            sa.update(schedules)
            .where(schedules.c.name == name, schedules.c.last_tick < tick)
            .values(last_tick=tick, task_name=task_name, job_id=None, sent_at=self.now())
        )

    def set_tick_job(self, name: str, job_id: str) -> Update:
        """Name the job sent for the tick just taken."""
        return sa.update(schedules).where(schedules.c.name == name).values(job_id=job_id)

    def _fenced_update(self, takes: Sequence[Take]) -> Update:
        # The attempt number in the WHERE is the fence: once a job's lease has expired and
        # another worker has taken it, the old take matches no row and writes nothing. The
        # ids alone too: SQLite reads a list of (id, attempts) pairs by scanning the table.
        return (
            jobs.update()
            .where(jobs.c.id.in_([job_id for job_id, _ in takes]))
            .where(sa.tuple_(jobs.c.id, jobs.c.attempts).in_(list(takes)))
            .where(STARTED_BY_ID)
        )


def _settled_columns(finished: sa.ColumnElement[bool]) -> tuple[sa.ColumnElement[Any], ...]:
    """What a statement that may finish jobs answers with: each job's id, whether workflow
    steps wait for it (``releases``), and whether it finished (``finished``)."""
    return (
        jobs.c.id,
        sa.or_(jobs.c.dependents.is_not(None), jobs.c.errbacks.is_not(None)).label("releases"),
        finished.label("finished"),
    )
