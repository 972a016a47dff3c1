"""MySQL 8 and MariaDB ≥ 10.6: row locks, as on PostgreSQL, without partial indexes or
``UPDATE … RETURNING``.

The claim locks the next ready rows with ``SELECT id … FOR UPDATE SKIP LOCKED``, then
marks them taken with an ``UPDATE`` by primary key, in one transaction: two workers never
lock the same row, and neither waits for the other.

InnoDB locks every index record a locking read scans, not only the rows it returns, so the
ready jobs must sit at the front of the index the claim reads. MySQL has no partial indexes:
migration 0013 gives the table a stored generated column, ``claim_ready``, which is 1 for a
ready job without limits and NULL for every other, and indexes ``(claim_ready, priority
DESC, scheduled_at, id)`` (and the same with ``queue`` second). ``claim_ready = 1`` is an
equality on the index's first column, so the claim reads the ready jobs in the order it
takes them and stops after ``limit`` of them; running and finished jobs are never scanned,
so never locked. Jobs not yet due are read past, as PostgreSQL's partial index reads them.

MySQL has no ``UPDATE … RETURNING`` (MariaDB only for INSERT and DELETE), so every update
that must answer with rows is a ``Procedure`` (``returning``): a plain read finds the
candidate ids, a locking read by primary key in id order takes those still matching, the
update changes them by primary key, and a read of those ids answers. Finishes, renewals,
retries and rescues all lock in id order, and claims never wait (``SKIP LOCKED``), so a
claimer, a finisher and a rescue cannot deadlock over jobs.

sqlqueue's own transactions run in READ COMMITTED: a locking read then locks no gaps, so
senders never wait for a claim, and the rows a scan reads past but does not match are
unlocked at once. Times are DATETIME(6), UTC, from the database's clock
(``UTC_TIMESTAMP(6)``), so machines with skewed clocks agree on due times and leases.

Workflows (``mysql_workflows``): the successes a worker records release the steps waiting
for them in the same transaction, under those steps' row locks (``releases_in_finish``).

Unique jobs: 0013's unique index holds ``unique_unfinished``, a generated column that is the
key of an unfinished job and NULL otherwise (NULLs never conflict). A send first reads the
holders of its keys (a plain read: it locks nothing, so a worker never waits for a sender to
finish a holder), then inserts the jobs of the other keys, in key order, with an insert that
reads no job (an ``INSERT … SELECT`` reading jobs would lock them, and the gaps beside them,
in REPEATABLE READ). A sender racing another for a key waits at the index for the other's
commit, and is then refused a duplicate entry for the unique index (``lost_unique_race``):
MySQL undoes only that statement, and the store sends those jobs again, which now find the
holder; in a caller's transaction, by a read outside it too, since a REPEATABLE READ
snapshot may not show the holder. A duplicate ``task_id=`` is refused by the primary key, as
on the other databases.

Limits: ``mysql_limits`` (migration 0014) takes the limited jobs before the claim takes the
others, in the claim's transaction.

Workers poll: there is no LISTEN/NOTIFY.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.engine import URL, Connection, CursorResult, Engine, RowMapping
from sqlalchemy.sql import Executable
from sqlalchemy.sql.dml import Delete, Update

from sqlqueue.dialects.base import (
    AGAIN_STATUSES,
    Dialect,
    DriverStatement,
    Procedure,
    Statement,
    Take,
)
from sqlqueue.dialects.mysql_limits import claim_limited
from sqlqueue.dialects.mysql_sql import KEY_TYPE, UTC_NOW, with_index
from sqlqueue.dialects.mysql_workflows import (
    CHORD_RESULTS,
    INSERT_WORKFLOW,
    RESULTS_IN_ORDER,
    count_down_and_release,
    read_results,
    workflow_row,
)
from sqlqueue.engines import ping_when_idle, unpooled_async_engine
from sqlqueue.exceptions import ConfigurationError, UnsupportedDatabaseError
from sqlqueue.jobs import JobStatus, NewJobs
from sqlqueue.outcomes import Outcome
from sqlqueue.plans import WorkflowPlan, planned_rows
from sqlqueue.schema import Timestamp, job_columns, jobs, schedules

if TYPE_CHECKING:  # the async extra's; see engines.require_async_extra
    from sqlalchemy.ext.asyncio import AsyncEngine

MYSQL_EXTRA_MISSING = (
    "sqlqueue speaks to MySQL and MariaDB through PyMySQL, which this install lacks: "
    'pip install "sqlqueue[mysql]".'
)

DRIVER_MODULES = {"pymysql": "pymysql", "mysqldb": "MySQLdb"}
"""The drivers sqlqueue's SQL is written for (pyformat parameters), and their modules."""

ASYNC_DRIVER_MISSING = (
    "adelay(), aapply_async() and aget() on MySQL and MariaDB need SQLAlchemy's asyncio "
    'support and aiomysql: pip install "sqlqueue[async,mysql]".'
)

WHERE_CONNECTED = "SELECT DATABASE(), @@hostname, @@port"
"""The database, the server's host name and its port, as the server sees a connection:
what tells a DB-API connection passed as ``connection=`` reaches the app's own database."""

MINIMUM_MYSQL = (8, 0, 4)
"""The first MySQL with ``JSON_TABLE``, which every send reads its jobs from (``SKIP LOCKED``
and descending indexes came in 8.0.1)."""

MINIMUM_MARIADB = (10, 6)
"""The first MariaDB with ``SKIP LOCKED`` and ``JSON_TABLE``."""

READ_COMMITTED = "READ COMMITTED"

DUPLICATE_ENTRY = 1062
"""ER_DUP_ENTRY: an insert found the key it writes in a unique index."""

UNIQUE_INDEX = "ix_sqlqueue_jobs_unique"

LOCK_CONFLICTS = (1213, 1205)
"""ER_LOCK_DEADLOCK and ER_LOCK_WAIT_TIMEOUT: a transaction of sqlqueue's own that ends with
one is run again (``lost_lock_conflict``)."""

CLAIM_READY: sa.ColumnElement[int] = sa.literal_column("claim_ready", sa.Integer)
"""Migration 0013's generated column: 1 for a ready job without limits, else NULL."""

CLAIM_INDEX = "ix_sqlqueue_jobs_claim"
CLAIM_IN_QUEUE_INDEX = "ix_sqlqueue_jobs_claim_in_queue"


class MySQLDialect(Dialect):
    name = "mysql"
    upsert = staticmethod(mysql_dialect.insert)
    releases_in_finish = True

    read_committed = False
    """Whether every connection of the engine is in READ COMMITTED already: when sqlqueue
    built it from a URL, never on an engine the application built."""

    def create_engine(self, url: URL) -> Engine:
        if "+" not in url.drivername:  # SQLAlchemy's default is mysqlclient; ours is PyMySQL
            url = url.set(drivername=f"{url.get_backend_name()}+pymysql")
        require_driver(url.get_driver_name())
        engine = sa.create_engine(url, isolation_level=READ_COMMITTED)
        self.read_committed = True
        ping_when_idle(engine)
        self.configure_engine(engine)
        return engine

    def create_async_engine(self, url: URL) -> AsyncEngine:
        # aiomysql is PyMySQL under asyncio: the same parameter style and type conversions
        # as the sync engine's default driver, and pure Python as PyMySQL is.
        try:
            importlib.import_module("aiomysql")
        except ImportError:
            raise ConfigurationError(ASYNC_DRIVER_MISSING) from None
        url = url.set(drivername=f"{url.get_backend_name()}+aiomysql")
        engine = unpooled_async_engine(url, isolation_level=READ_COMMITTED)
        self.configure_engine(engine.sync_engine)
        return engine

    def configure_engine(self, engine: Engine) -> None:
        event.listen(engine, "first_connect", _check_server)

    def begin_write(self, connection: Connection) -> None:
        # READ COMMITTED for sqlqueue's own transactions, also on an engine the application
        # built with REPEATABLE READ (MySQL's default): there a locking read takes gap locks
        # that make senders wait for claims. On such an engine it costs a statement at the
        # start and one when the pool resets the connection; an engine sqlqueue built sets
        # it once per connection.
        if not self.read_committed:
            connection.execution_options(isolation_level=READ_COMMITTED)
        connection.begin()

    def lost_lock_conflict(self, error: BaseException | None) -> bool:
        # 1213: InnoDB chose this transaction as a deadlock's victim and rolled it back.
        # 1205: a lock wait timed out; the store's transaction is then rolled back whole.
        args: tuple[Any, ...] = getattr(error, "args", ())
        return bool(args) and args[0] in LOCK_CONFLICTS

    def duplicate_id(self, error: BaseException) -> bool:
        # MariaDB names the primary key 'PRIMARY', MySQL 8 'sqlqueue_jobs.PRIMARY'.
        args: tuple[Any, ...] = getattr(error, "args", ())
        return len(args) > 1 and args[0] == DUPLICATE_ENTRY and str(args[1]).endswith("PRIMARY'")

    def now(self) -> sa.ColumnElement[datetime]:
        return UTC_NOW

    def now_plus(self, seconds: float) -> sa.ColumnElement[datetime]:
        micro = round(seconds * 1_000_000)
        return sa.literal_column(f"(UTC_TIMESTAMP(6) + INTERVAL {micro} MICROSECOND)", Timestamp)

    def insert_jobs(self, new_jobs: NewJobs) -> DriverStatement:
        limited = new_jobs.limits is not None
        return DriverStatement(INSERT_LIMITED_JOBS if limited else INSERT_JOBS, _sent(new_jobs))

    def unique_holders(self, keys: Sequence[str]) -> DriverStatement:
        return _unique_holders(keys)

    def insert_unique_jobs(self, new_jobs: NewJobs) -> list[DriverStatement]:
        # The keys no holder answered for (``unique_holders``): each inserted, but for keys
        # the index holds as one (``utf8mb4_bin`` pads: "k" and "k " are one key), of which
        # the first; in key order, so that two senders of the same keys wait for each other
        # in one order. Then the holders' read answers for every key: the insert's own
        # transaction sees its jobs.
        keys = cast(list[str], new_jobs.unique_keys)
        first: dict[str, int] = {}
        for at, key in enumerate(keys):
            first.setdefault(key.rstrip(" "), at)
        order = [first[key] for key in sorted(first)]
        inserted = new_jobs.only(order, [keys[at] for at in order])
        limited = new_jobs.limits is not None
        return [
            DriverStatement(
                INSERT_LIMITED_UNIQUE_JOBS if limited else INSERT_UNIQUE_JOBS, _sent(inserted)
            ),
            _unique_holders(keys),
        ]

    def lost_unique_race(self, error: BaseException | None) -> bool:
        # A duplicate entry in the unique index: the key was free when the holders' read
        # ran, and held when the insert wrote it: by a transaction that committed while the
        # insert waited at the index, or before it, after the snapshot of the sender's
        # REPEATABLE READ transaction.
        args: tuple[Any, ...] = getattr(error, "args", ())
        return len(args) > 1 and args[0] == DUPLICATE_ENTRY and UNIQUE_INDEX in str(args[1])

    def claim_limited_jobs(
        self,
        connection: Connection,
        limit: int,
        queues: Sequence[str] | None,
        worker_id: str,
        lease: float,
    ) -> list[RowMapping]:
        return claim_limited(connection, limit, queues, self.taken(worker_id, lease))

    def insert_workflow(self, plan: WorkflowPlan, max_payload_bytes: int) -> DriverStatement:
        rows = [
            workflow_row(row, _stored_text(row.eta), _stored_text(row.expires_at))
            for row in planned_rows(plan, max_payload_bytes)
        ]
        return DriverStatement(INSERT_WORKFLOW, {"jobs": json.dumps(rows), "workflow_id": plan.id})

    def results_in_order(self, job_ids: Sequence[str]) -> DriverStatement:
        return DriverStatement(RESULTS_IN_ORDER, {"ids": json.dumps(list(job_ids))})

    def chord_results(self, job_id: str) -> DriverStatement:
        return DriverStatement(CHORD_RESULTS, {"id": job_id})

    def read_results(self, answer: CursorResult[Any]) -> list[Any]:
        return read_results(answer)

    def claim_jobs(
        self, limit: int, queues: Sequence[str] | None, worker_id: str, lease: float
    ) -> Procedure:
        wanted: list[str | None] = list(dict.fromkeys(queues)) if queues else [None]
        probes = [self.ready_jobs(limit, queue) for queue in wanted]

        def run(connection: Connection) -> CursorResult[Any]:
            # One probe per queue, each its index's first ready jobs; the best ``limit`` of
            # them are taken. The rows of other queues' probes that are not taken stay
            # locked (and skipped by other claims) until this transaction commits.
            found: list[RowMapping] = []
            for probe in probes:
                found.extend(connection.execute(probe).mappings())
            found.sort(key=lambda row: (-row["priority"], row["scheduled_at"], row["id"]))
            ids = sorted(row["id"] for row in found[:limit])
            if ids:
                connection.execute(
                    jobs.update().where(jobs.c.id.in_(ids)).values(self.taken(worker_id, lease))
                )
            return connection.execute(sa.select(*job_columns()).where(jobs.c.id.in_(ids)))

        return Procedure(run)

    def ready_jobs(self, limit: int, queue: str | None) -> sa.Select[Any]:
        """The claim's locking read: the first ``limit`` ready and due jobs without limits
        (of ``queue``, or of all), in claim order, from the claim index (see the module's
        docstring), skipping those another claim holds."""
        statement: sa.Select[Any] = (
            sa.select(jobs.c.id, jobs.c.priority, jobs.c.scheduled_at)
            .where(CLAIM_READY == 1)
            .where(jobs.c.scheduled_at <= self.now())
            .where(sa.or_(jobs.c.expires_at.is_(None), jobs.c.expires_at > self.now()))
            .order_by(jobs.c.priority.desc(), jobs.c.scheduled_at, jobs.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        index = CLAIM_INDEX if queue is None else CLAIM_IN_QUEUE_INDEX
        statement = with_index(statement, index)
        return statement if queue is None else statement.where(jobs.c.queue == queue)

    def record_outcomes(
        self, outcomes: Sequence[tuple[Take, Outcome]], releasing: bool = False, wake: bool = False
    ) -> list[Statement]:
        # Each job's row is locked in id order: the retries one by one, then the finishes,
        # then (``releasing``) the steps their successes release (``mysql_workflows``).
        in_order = sorted(outcomes, key=lambda pair: pair[0])
        retries = [self.retry_job(take, outcome) for take, outcome in in_order if outcome.again]
        finishes = [(take, outcome) for take, outcome in in_order if not outcome.again]
        if not finishes:
            return retries

        def run(connection: Connection) -> CursorResult[Any]:
            takes = [take for take, _ in finishes]
            held = set(_lock_in_id_order(connection, _fenced(takes)))
            # A batch may hold a job's stale take beside its newest (a worker that took the
            # job again): the row, locked, matches the newest (attempts only grow), which
            # comes last in take order, and one UPDATE writes one outcome per row.
            newest = {take[0]: outcome for take, outcome in finishes}
            rows = [
                {"id": job_id, "status": outcome.status.value, **outcome.finish_values()}
                for job_id, outcome in newest.items()
                if job_id in held
            ]
            for written in _json_arrays(rows, FINISH_CHUNK_BYTES):
                connection.exec_driver_sql(FINISH_JOBS, {"finished": written})
            successes = [row["id"] for row in rows if row["status"] == JobStatus.SUCCESS.value]
            if releasing and successes:
                finished = connection.execute(
                    sa.select(jobs.c.dependents, jobs.c.errbacks).where(jobs.c.id.in_(successes))
                ).mappings()
                count_down_and_release(connection, finished, self.drop_waiting)
            return connection.execute(
                sa.select(jobs.c.id, jobs.c.attempts).where(jobs.c.id.in_(sorted(held)))
            )

        return [*retries, Procedure(run)]

    def returning(self, update: Update, *columns: sa.ColumnElement[Any]) -> Statement:
        where = update.whereclause
        if where is None:  # sqlqueue updates jobs by a condition, never the whole table
            raise ValueError("returning() needs an UPDATE with a WHERE clause")

        def run(connection: Connection) -> CursorResult[Any]:
            held = _lock_in_id_order(connection, where)
            if held:
                connection.execute(update.where(jobs.c.id.in_(held)))
            return connection.execute(sa.select(*columns).where(jobs.c.id.in_(held)))

        return Procedure(run)

    def requeue_jobs(self, job_ids: Sequence[str]) -> Procedure:
        # MySQL refuses an UPDATE whose subqueries read the table it changes (error 1093;
        # MariaDB allows it), and ``requeuable`` asks about the other jobs with each job's
        # unique key. A SELECT may ask it: a plain read chooses the jobs, then the update
        # puts them back by primary key, if still failed or revoked.
        requeuable = self.requeuable(job_ids)

        def run(connection: Connection) -> CursorResult[Any]:
            chosen = connection.execute(sa.select(jobs.c.id).where(requeuable)).scalars().all()
            return connection.execute(
                jobs.update()
                .where(jobs.c.id.in_(chosen), jobs.c.status.in_(AGAIN_STATUSES))
                .values(self.requeued())
            )

        return Procedure(run)

    def insert_schedule(self, name: str, task_name: str, tick: datetime) -> Executable:
        # MySQL's "do nothing" on a duplicate key: an update that sets the key to itself.
        return (
            mysql_dialect.insert(schedules)
            .values(name=name, task_name=task_name, last_tick=_stored_time(tick))
            .on_duplicate_key_update(name=schedules.c.name)
        )

    def delete_finished_jobs(self, older_than: float, limit: int) -> Delete:
        # MySQL takes neither a LIMIT in an IN subquery nor a subquery on the table a DELETE
        # changes; a derived table is read in full first, which allows both. Finished jobs
        # are written by nothing but this and forget(), so the read needs no row locks.
        oldest = self._oldest_finished(older_than, limit).subquery("oldest")
        return jobs.delete().where(jobs.c.id.in_(sa.select(oldest.c.id)))


def require_driver(driver: str) -> None:
    """Refuse a MySQL URL whose driver is not installed, naming the extra that brings it."""
    try:
        importlib.import_module(DRIVER_MODULES.get(driver, driver))
    except ImportError:
        raise ConfigurationError(MYSQL_EXTRA_MISSING) from None


def driver_errors(name: str) -> tuple[type[Exception], ...]:
    """The DB-API exception class ``name`` (``Error``, ``OperationalError``, …) of each sync
    MySQL driver imported so far (PyMySQL, mysqlclient): the errors of a DB-API connection
    passed as ``connection=`` are theirs, and a driver nobody imported has raised none, so
    an application on another database never imports one."""
    modules = (sys.modules.get(module) for module in DRIVER_MODULES.values())
    return tuple(getattr(module, name) for module in modules if module is not None)


def _check_server(dbapi_connection: Any, _record: Any) -> None:
    """Refuse a server older than sqlqueue needs, and queue tables that are not InnoDB, on
    the engine's first connection."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SELECT VERSION()")
        (version,) = cursor.fetchone()
        cursor.execute(NOT_INNODB)
        not_innodb = cursor.fetchall()
    finally:
        cursor.close()
    check_version(str(version))
    check_engines([(str(table), str(engine)) for table, engine in not_innodb])


def check_engines(not_innodb: Sequence[tuple[str, str]]) -> None:
    """Raise ``UnsupportedDatabaseError`` for queue tables of another engine than InnoDB:
    without its row locks ``SKIP LOCKED`` locks nothing, and two workers would run one job.
    Tables take the server's ``default_storage_engine`` when migrated."""
    if not_innodb:
        tables = ", ".join(f"{table} ({engine})" for table, engine in not_innodb)
        fixes = "; ".join(f"ALTER TABLE {table} ENGINE=InnoDB" for table, _ in not_innodb)
        raise UnsupportedDatabaseError(
            f"sqlqueue's tables must be InnoDB, for its row locks; these are not: {tables}. "
            f"Convert them ({fixes}), or set default_storage_engine=InnoDB before "
            "`sqlqueue migrate`."
        )


def check_version(version: str) -> None:
    """Raise ``UnsupportedDatabaseError`` for MySQL < 8.0.4 or MariaDB < 10.6."""
    numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:3])
    if "mariadb" in version.lower():
        if numbers < MINIMUM_MARIADB:
            raise UnsupportedDatabaseError(
                f"sqlqueue needs MariaDB 10.6 or later (SKIP LOCKED, JSON_TABLE); "
                f"this server is {version}."
            )
    elif numbers < MINIMUM_MYSQL:
        raise UnsupportedDatabaseError(
            f"sqlqueue needs MySQL 8.0.4 or later (SKIP LOCKED, JSON_TABLE); "
            f"this server is {version}."
        )


def _fenced(takes: Sequence[Take]) -> sa.ColumnElement[bool]:
    return sa.and_(
        jobs.c.id.in_([job_id for job_id, _ in takes]),
        sa.tuple_(jobs.c.id, jobs.c.attempts).in_(list(takes)),
        jobs.c.status == JobStatus.STARTED.value,
    )


def _lock_in_id_order(connection: Connection, where: sa.ColumnElement[bool]) -> list[str]:
    """Lock the rows matching ``where`` by primary key, in id order, and return their ids.

    A plain read finds the candidates (through whatever index serves ``where``, locking
    nothing); the locking read then takes them through the primary key in id order, and
    keeps those that still match. Every writer that locks jobs it does not claim goes
    this way, so two of them wait for each other in one order and never deadlock.
    """
    candidates = connection.execute(sa.select(jobs.c.id).where(where)).scalars().all()
    if not candidates:
        return []
    locking = (
        sa.select(jobs.c.id)
        .where(jobs.c.id.in_(sorted(candidates)))
        .where(where)
        .order_by(jobs.c.id)
        .with_for_update()
    )
    return list(connection.execute(with_index(locking, "PRIMARY")).scalars())


def _json_arrays(rows: Sequence[dict[str, Any]], most_bytes: int) -> Iterator[str]:
    """``rows`` as JSON arrays of at most ``most_bytes`` each (a row longer than that alone),
    their None values left out."""
    chunk: list[str] = []
    size = 2
    for row in rows:
        text = json.dumps(
            {name: value for name, value in row.items() if value is not None},
            separators=(",", ":"),
        )
        if chunk and size + len(text) > most_bytes:
            yield f"[{','.join(chunk)}]"
            chunk, size = [], 2
        chunk.append(text)
        size += len(text) + 1
    if chunk:
        yield f"[{','.join(chunk)}]"


def _sent(new_jobs: NewJobs) -> dict[str, Any]:
    """The parameters of a send's INSERT (``_insert_sent``): each job's id, arguments, unique
    key and ``limit_key`` as one JSON array, and what the jobs share."""
    args, kwargs = new_jobs.arguments()
    columns: list[Sequence[Any]] = [new_jobs.ids, args, kwargs]
    if new_jobs.unique_keys is not None:
        columns.append(new_jobs.unique_keys)
    limits = new_jobs.limits
    if limits is not None:
        columns.append(limits.keys)
    countdown = 0 if new_jobs.eta is not None else round(new_jobs.countdown * 1_000_000)
    expires_in = None
    if new_jobs.expires_at is None and new_jobs.expires_in is not None:
        expires_in = round(new_jobs.expires_in * 1_000_000)
    return {
        "jobs": json.dumps(list(zip(*columns, strict=True))),
        "task_name": new_jobs.task_name,
        "queue": new_jobs.queue,
        "priority": new_jobs.priority,
        "eta": _stored_time(new_jobs.eta),
        "countdown": countdown,
        "expires_at": _stored_time(new_jobs.expires_at),
        "expires_in": expires_in,
        **(
            {}
            if limits is None
            else {
                "concurrency_limit": limits.concurrency_limit,
                "rate_interval": limits.rate_interval,
            }
        ),
    }


def _stored_time(when: datetime | None) -> datetime | None:
    """A time as DATETIME(6) takes it: UTC, without a zone."""
    if when is None:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.replace(tzinfo=None)


def _stored_text(when: datetime | None) -> str | None:
    """A time as DATETIME(6) reads it from text (inside JSON): UTC, without a zone."""
    stored = _stored_time(when)
    return None if stored is None else stored.isoformat(sep=" ", timespec="microseconds")


NOT_INNODB = """
SELECT table_name, engine FROM information_schema.tables
WHERE table_schema = DATABASE() AND table_name LIKE 'sqlqueue\\_%' AND engine <> 'InnoDB'
"""
"""sqlqueue's tables in the connection's database that are not InnoDB (none before a
``sqlqueue migrate``)."""


def _insert_sent(unique: bool, limited: bool) -> str:
    """The INSERT of a send's jobs, with their unique keys and their limits when asked.

    It reads no job: in REPEATABLE READ, InnoDB reads an ``INSERT … SELECT``'s tables with
    shared next-key locks, which would keep held keys' jobs from finishing, and lock the
    neighbouring keys out, until the sender's transaction ends. Unique jobs come here only
    for keys no holder answered for (``unique_holders``); one taken meanwhile is refused by
    the unique index (``lost_unique_race``)."""
    columns, values, sent = "", "", ""
    if unique:
        columns += ", unique_key"
        values += ", sent.unique_key"
        sent += f",\n    unique_key {KEY_TYPE} PATH '$[3]'"
    if limited:
        columns += ", limit_key, concurrency_limit, rate_interval"
        values += ", sent.limit_key, %(concurrency_limit)s, %(rate_interval)s"
        sent += f",\n    limit_key {KEY_TYPE} PATH '$[{3 + unique}]'"
    return f"""
INSERT INTO {jobs.name} (id, args, kwargs, task_name, queue, priority, status,
                         scheduled_at, expires_at, created_at{columns})
SELECT sent.id, sent.args, sent.kwargs, %(task_name)s, %(queue)s, %(priority)s, 'PENDING',
       COALESCE(%(eta)s, UTC_TIMESTAMP(6) + INTERVAL %(countdown)s MICROSECOND),
       COALESCE(%(expires_at)s, UTC_TIMESTAMP(6) + INTERVAL %(expires_in)s MICROSECOND),
       UTC_TIMESTAMP(6){values}
FROM JSON_TABLE(%(jobs)s, '$[*]' COLUMNS (
    id {KEY_TYPE} PATH '$[0]',
    args LONGTEXT CHARACTER SET utf8mb4 PATH '$[1]',
    kwargs LONGTEXT CHARACTER SET utf8mb4 PATH '$[2]'{sent})) AS sent
"""  # noqa: S608 (constants, no input)


INSERT_JOBS = _insert_sent(unique=False, limited=False)
"""Each element of ``%(jobs)s`` is [id, arguments' JSON text, keyword arguments' JSON text],
the texts JSON strings there, which JSON_TABLE gives back as the text to store; then the
job's unique key and its ``limit_key``, where the send has them. Times from the database's
clock, one reading for the whole statement (so a job sent to run at once has
``scheduled_at = created_at``, which ``DEFERRED_WHERE`` relies on)."""

INSERT_LIMITED_JOBS = _insert_sent(unique=False, limited=True)
INSERT_UNIQUE_JOBS = _insert_sent(unique=True, limited=False)
INSERT_LIMITED_UNIQUE_JOBS = _insert_sent(unique=True, limited=True)


def _unique_holders(keys: Sequence[str]) -> DriverStatement:
    """The unfinished job holding each of these keys, answering with the key as sent: the
    index compares keys padded with spaces, so "k " finds the holder of "k". A plain read,
    locking nothing: a sender never keeps a worker from finishing the holder. In a
    REPEATABLE READ transaction it reads the snapshot, which may predate a holder: the
    insert then meets that holder at the index (``lost_unique_race``), and the store reads
    its key again outside the transaction. The keys as one JSON array, one parameter
    (aiomysql, unlike PyMySQL, refuses a tuple as one)."""
    return DriverStatement(UNIQUE_HOLDERS, {"keys": json.dumps(list(keys))})


UNIQUE_HOLDERS = f"""
SELECT sent.unique_key, held.id
FROM JSON_TABLE(%(keys)s, '$[*]' COLUMNS (unique_key {KEY_TYPE} PATH '$')) AS sent
JOIN {jobs.name} AS held ON held.unique_unfinished = sent.unique_key
"""  # noqa: S608 (constants, no input)


FINISH_JOBS = f"""
UPDATE JSON_TABLE(%(finished)s, '$[*]' COLUMNS (
    id {KEY_TYPE} PATH '$.id',
    status VARCHAR(16) CHARACTER SET utf8mb4 PATH '$.status',
    result LONGTEXT CHARACTER SET utf8mb4 PATH '$.result',
    error_type LONGTEXT CHARACTER SET utf8mb4 PATH '$.error_type',
    error_message LONGTEXT CHARACTER SET utf8mb4 PATH '$.error_message',
    traceback LONGTEXT CHARACTER SET utf8mb4 PATH '$.traceback')) AS finished
STRAIGHT_JOIN {jobs.name} AS job FORCE INDEX (PRIMARY) ON job.id = finished.id
SET job.status = finished.status, job.finished_at = UTC_TIMESTAMP(6),
    job.lease_expires_at = NULL, job.progress = NULL,
    job.result = CASE WHEN finished.status = 'SUCCESS' THEN finished.result ELSE job.result END,
    job.error_type = finished.error_type, job.error_message = finished.error_message,
    job.traceback = finished.traceback
"""  # noqa: S608 (constants, no input)
"""Record the successes and failures of a batch, by primary key, in one statement: the
driver runs an ``executemany`` of UPDATEs as one round trip per job. Their rows are locked,
and their takes checked, by ``record_outcomes``'s locking read. The join goes from the
batch to the table by primary key (``STRAIGHT_JOIN``): on a small table the optimizer would
rather scan the table, and an UPDATE's scan waits for the row locks of every open send.

``%(finished)s`` is a JSON array of objects, the result's JSON text a JSON string there; a
value left out (no result, no error) reads as NULL. Its text columns are LONGTEXT: JSON_TABLE
would cut a longer value short without a word, where the table's own column refuses it."""

FINISH_CHUNK_BYTES = 1_000_000
"""The most JSON one ``FINISH_JOBS`` sends: tracebacks and results add up over a batch, and
the server refuses a statement longer than ``max_allowed_packet`` (16 MB by default on
MariaDB, 64 MB on MySQL 8, 4 MB in many a my.cnf) by dropping the connection. The driver's
quoting of the JSON (each quote and backslash escaped) can make it up to about twice as
long on the wire; a batch of short outcomes is a few hundred KB."""
