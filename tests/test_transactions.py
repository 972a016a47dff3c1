"""Enqueue inside the caller's own transaction (API.md §3.1), on SQLite, PostgreSQL and
MariaDB.

Every kind of connection ``connection=`` accepts is exercised the same way: a SQLAlchemy
Connection (from the app's engine and from an engine of the application's own), an ORM
Session, the raw DB-API connection of the database (psycopg, sqlite3 or PyMySQL; mysqlclient
has tests of its own), each given either
as ``connection=`` or through ``with app.using(conn):``. For each one: a rollback leaves no
job, a commit leaves exactly one that a worker runs, and nobody else sees the job before
the commit.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import psycopg
import pymysql
import pytest
import sqlalchemy as sa
from conftest import count_jobs, start_worker
from sqlalchemy.engine import Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    scoped_session,
    sessionmaker,
)

from sqlqueue import (
    AsyncResult,
    ConfigurationError,
    DuplicateJobIdError,
    JobNotFoundError,
    JobStatus,
    SQLQueue,
    Task,
    Worker,
    WorkerOptions,
)

WAIT = 5.0
"""Seconds any wait in these tests may take before it counts as a failure."""

WORKER_PROCESS_TIMEOUT = 30.0
"""Seconds a `sqlqueue worker --burst` process may take to start, find nothing, and exit."""

PAYLOAD: dict[str, Any] = {
    "name": "Zoë \"quoted\" 'single' %s %(x)s ? :name",
    "numbers": [1, -2, 2.5, 10**15],
    "flags": [True, False, None],
    "nested": {"empty": [], "deeper": {"k": "v"}},
}
"""Arguments a driver could mangle: quotes, non-ASCII, and every placeholder style as text."""

KINDS = ["app-engine-connection", "own-engine-connection", "orm-session", "dbapi-connection"]
"""Every kind of connection ``connection=`` accepts (the DB-API one is the database's own)."""

VIAS = ["connection-kwarg", "app-using"]
"""The two ways to join a transaction: ``connection=conn``, or ``with app.using(conn):``."""


class Base(DeclarativeBase):
    pass


class Order(Base):
    """The application's own row, written in the same transaction as its job."""

    __tablename__ = "shop_orders"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    item: Mapped[str] = mapped_column(sa.String(100))


orders = Order.__table__


def sqlalchemy_url(db_url: str) -> str:
    """The URL for a plain ``sqlalchemy.create_engine``: psycopg 3 for PostgreSQL."""
    url = sa.make_url(db_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def sqlite_path(db_url: str) -> str:
    database = sa.make_url(db_url).database
    assert database, f"{db_url} names no SQLite file"
    return database


class Caller(Protocol):
    """One open transaction of the application's, on one kind of connection."""

    handle: Any
    """What the application gives to ``connection=`` or ``app.using()``."""

    def add_order(self, order_id: int) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


class ConnectionCaller:
    """``with engine.connect() as conn, conn.begin():``"""

    def __init__(self, engine: Engine) -> None:
        self.connection = engine.connect()
        self.transaction = self.connection.begin()
        self.handle: Any = self.connection

    def add_order(self, order_id: int) -> None:
        self.connection.execute(orders.insert().values(id=order_id, item="book"))

    def commit(self) -> None:
        self.transaction.commit()

    def rollback(self) -> None:
        self.transaction.rollback()

    def close(self) -> None:
        self.connection.close()


class SessionCaller:
    """``with Session(engine) as session, session.begin():``"""

    def __init__(self, engine: Engine) -> None:
        self.session = Session(engine)
        self.session.begin()
        self.handle: Any = self.session

    def add_order(self, order_id: int) -> None:
        self.session.add(Order(id=order_id, item="book"))
        self.session.flush()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()

    def close(self) -> None:
        self.session.close()


class DBAPICaller:
    """A raw DB-API connection, passed as it is; subclasses open it and say how to insert."""

    connection: Any
    insert_order = "INSERT INTO shop_orders (id, item) VALUES (%s, %s)"

    def __init__(self) -> None:
        self.handle: Any = self.connection

    def add_order(self, order_id: int) -> None:
        cursor = self.connection.cursor()
        cursor.execute(self.insert_order, (order_id, "book"))
        cursor.close()

    def commit(self) -> None:
        self.connection.commit()

    def rollback(self) -> None:
        self.connection.rollback()

    def close(self) -> None:
        self.connection.close()


class PsycopgCaller(DBAPICaller):
    """A raw ``psycopg.connect()``: a transaction starts with the first statement."""

    def __init__(self, db_url: str) -> None:
        self.connection = psycopg.connect(db_url, connect_timeout=int(WAIT))
        super().__init__()


class MySQLCaller(DBAPICaller):
    """A raw ``pymysql.connect()`` or ``MySQLdb.connect()`` (mysqlclient), autocommit off as
    both default to: InnoDB starts a transaction with the first statement."""

    def __init__(self, db_url: str, driver: Any) -> None:
        url = sa.make_url(db_url)
        self.connection = driver.connect(
            host=url.host,
            port=url.port or 3306,
            user=url.username,
            password=url.password or "",
            database=url.database,
            connect_timeout=int(WAIT),
        )
        super().__init__()


class SQLite3Caller(DBAPICaller):
    """A raw ``sqlite3.connect()``: the module opens a transaction before the first write."""

    insert_order = "INSERT INTO shop_orders (id, item) VALUES (?, ?)"

    def __init__(self, db_url: str) -> None:
        self.connection = sqlite3.connect(sqlite_path(db_url), timeout=WAIT)
        super().__init__()


@pytest.fixture
def orders_table(db_url: str) -> Iterator[None]:
    """The application's own table, beside the queue's, dropped after the test."""
    engine = sa.create_engine(sqlalchemy_url(db_url))
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    yield
    Base.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def own_engine(db_url: str) -> Iterator[Engine]:
    """An engine the application built itself with plain ``sqlalchemy.create_engine``."""
    engine = sa.create_engine(sqlalchemy_url(db_url))
    yield engine
    engine.dispose()


@pytest.fixture(params=KINDS)
def open_caller(
    request: pytest.FixtureRequest,
    db_url: str,
    app: SQLQueue,
    own_engine: Engine,
    orders_table: None,
) -> Iterator[Callable[[], Caller]]:
    """Opens transactions on this test's kind of connection; closes them all afterwards."""
    opened: list[Caller] = []

    def open_() -> Caller:
        caller: Caller
        if request.param == "app-engine-connection":
            caller = ConnectionCaller(app.engine)
        elif request.param == "own-engine-connection":
            caller = ConnectionCaller(own_engine)
        elif request.param == "orm-session":
            caller = SessionCaller(app.engine)
        elif app.dialect.name == "postgresql":
            caller = PsycopgCaller(db_url)
        elif app.dialect.name == "mysql":
            caller = MySQLCaller(db_url, pymysql)
        else:
            caller = SQLite3Caller(db_url)
        opened.append(caller)
        return caller

    yield open_
    for caller in opened:
        caller.close()


@pytest.fixture
def caller(open_caller: Callable[[], Caller]) -> Caller:
    """One open transaction of the application's, on this test's kind of connection."""
    return open_caller()


@pytest.fixture(params=VIAS)
def via(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def echo(app: SQLQueue) -> Task[..., Any]:
    @app.task(name="t.echo")
    def echo(value: Any, label: str = "") -> list[Any]:
        return [value, label]

    return echo


@pytest.fixture
def add(app: SQLQueue) -> Task[..., Any]:
    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    return add


def send(via: str, caller: Caller, task: Task[..., Any], *args: Any, **kwargs: Any) -> AsyncResult:
    """Send ``task(*args, **kwargs)`` inside the caller's transaction, the way ``via`` says."""
    if via == "connection-kwarg":
        return task.apply_async(args, kwargs, connection=caller.handle)
    with task.app.using(caller.handle):
        return task.delay(*args, **kwargs)


def send_by_name(
    via: str, app: SQLQueue, caller: Caller, name: str, args: list[Any]
) -> AsyncResult:
    """``app.send_task`` inside the caller's transaction, the way ``via`` says."""
    if via == "connection-kwarg":
        return app.send_task(name, args=args, connection=caller.handle)
    with app.using(caller.handle):
        return app.send_task(name, args=args)


def count_orders(app: SQLQueue) -> int:
    """Rows of the application's table, read with a connection of its own."""
    with app.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(orders)).scalar_one()


def run_worker_in_process(app: SQLQueue) -> None:
    """A burst worker in a thread of this process, which must be done within ``WAIT``."""
    worker = Worker(app, WorkerOptions(burst=True, poll_interval=0.05))
    thread = threading.Thread(target=worker.run, name="test-worker", daemon=True)
    thread.start()
    thread.join(WAIT)
    if thread.is_alive():
        worker.stop()
        thread.join(WAIT)
        pytest.fail(f"a burst worker was still running after {WAIT}s")


def run_worker_process(db_url: str) -> str:
    """Run `sqlqueue worker -A tasks --burst` to its end; it must exit 0. Returns its output."""
    process = start_worker(db_url, "--burst", "--poll-interval", "0.05")
    try:
        output, _ = process.communicate(timeout=WORKER_PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate(timeout=WAIT)
        pytest.fail(f"the burst worker did not exit in {WORKER_PROCESS_TIMEOUT}s:\n{output}")
    assert process.returncode == 0, f"the worker exited {process.returncode}:\n{output}"
    return output


# --- rollback, commit, visibility: every kind of connection, both ways of joining ----------


def test_rollback_leaves_no_job(
    app: SQLQueue, caller: Caller, via: str, add: Task[..., Any]
) -> None:
    result = send(via, caller, add, 2, 3)

    caller.rollback()

    assert count_jobs(app) == 0
    with pytest.raises(JobNotFoundError):
        _ = result.status


def test_commit_leaves_exactly_one_job_that_a_worker_runs(
    app: SQLQueue, caller: Caller, via: str, echo: Task[..., Any]
) -> None:
    result = send(via, caller, echo, PAYLOAD, label="round-trip")

    caller.commit()

    assert count_jobs(app) == 1
    job = app.store.get_job(result.id)
    assert job is not None
    assert job.task_name == "t.echo"
    assert job.status is JobStatus.PENDING
    assert job.args == [PAYLOAD]
    assert job.kwargs == {"label": "round-trip"}
    assert result.status == "PENDING"

    run_worker_in_process(app)

    assert result.get(timeout=WAIT) == [PAYLOAD, "round-trip"]
    assert result.status == "SUCCESS"
    assert count_jobs(app) == 1


def test_job_is_invisible_to_other_connections_until_commit(
    app: SQLQueue, caller: Caller, via: str, add: Task[..., Any]
) -> None:
    result = send(via, caller, add, 2, 3)

    # Another connection (what a worker or a web request would use) sees nothing yet.
    assert count_jobs(app) == 0
    with pytest.raises(JobNotFoundError):
        _ = result.status

    caller.commit()

    assert count_jobs(app) == 1
    assert result.status == "PENDING"


def test_every_job_sent_in_the_transaction_commits_with_it(
    app: SQLQueue, caller: Caller, via: str, add: Task[..., Any]
) -> None:
    results = [send(via, caller, add, n, n) for n in range(3)]
    assert count_jobs(app) == 0

    caller.commit()

    assert count_jobs(app) == 3
    run_worker_in_process(app)
    assert [result.get(timeout=WAIT) for result in results] == [0, 2, 4]


# --- the job and the application's own row: both or neither ----------------------------------


def test_job_and_callers_row_commit_together(
    app: SQLQueue, caller: Caller, via: str, add: Task[..., Any]
) -> None:
    caller.add_order(42)
    result = send(via, caller, add, 40, 2)
    assert (count_orders(app), count_jobs(app)) == (0, 0)

    caller.commit()

    assert (count_orders(app), count_jobs(app)) == (1, 1)
    assert result.status == "PENDING"


def test_job_and_callers_row_roll_back_together(
    app: SQLQueue, caller: Caller, via: str, add: Task[..., Any]
) -> None:
    caller.add_order(42)
    result = send(via, caller, add, 40, 2)

    caller.rollback()

    assert (count_orders(app), count_jobs(app)) == (0, 0)
    with pytest.raises(JobNotFoundError):
        _ = result.status


BULK = 1000
"""Jobs in one delay_many: enough for PostgreSQL's COPY (``COPY_MIN_JOBS``)."""


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_a_large_send_and_the_callers_row_commit_or_roll_back_together(
    app: SQLQueue, caller: Caller, via: str, add: Task[..., Any], outcome: str
) -> None:
    caller.add_order(42)
    if via == "connection-kwarg":
        add.delay_many([(n, n) for n in range(BULK)], connection=caller.handle)
    else:
        with app.using(caller.handle):
            add.delay_many([(n, n) for n in range(BULK)])
    caller.add_order(43)  # the transaction goes on after the send
    assert (count_orders(app), count_jobs(app)) == (0, 0)

    caller.commit() if outcome == "commit" else caller.rollback()

    expected = (2, BULK) if outcome == "commit" else (0, 0)
    assert (count_orders(app), count_jobs(app)) == expected


def test_job_sent_before_the_callers_row_still_commits_with_it(
    app: SQLQueue, caller: Caller, via: str, add: Task[..., Any]
) -> None:
    # The job is the first write of the transaction; the row comes after it.
    send(via, caller, add, 40, 2)
    caller.add_order(43)

    caller.rollback()

    assert (count_orders(app), count_jobs(app)) == (0, 0)


# --- app.using(): scoped to its block ----------------------------------------------------------


def test_delay_after_the_using_block_no_longer_joins_the_transaction(
    app: SQLQueue, caller: Caller, add: Task[..., Any]
) -> None:
    with app.using(caller.handle):
        joined = add.delay(1, 1)
    caller.rollback()

    on_its_own = add.delay(2, 2)

    assert count_jobs(app) == 1
    assert on_its_own.status == "PENDING"
    with pytest.raises(JobNotFoundError):
        _ = joined.status


def test_connection_kwarg_wins_over_app_using(
    app: SQLQueue, open_caller: Callable[[], Caller], add: Task[..., Any]
) -> None:
    used, given = open_caller(), open_caller()
    with app.using(used.handle):
        add.apply_async((1, 2), connection=given.handle)

    # The job is in `given`'s transaction: rolling back `used` does not touch it...
    used.rollback()
    assert count_jobs(app) == 0
    # ...and committing `given` publishes it.
    given.commit()
    assert count_jobs(app) == 1


# --- countdown= inside the caller's transaction -------------------------------------------------


@pytest.mark.parametrize(
    "open_caller", ["app-engine-connection", "dbapi-connection"], indirect=True
)
def test_countdown_counts_from_the_send_not_from_the_start_of_the_callers_transaction(
    app: SQLQueue, caller: Caller, add: Task[..., Any]
) -> None:
    countdown = 1.0
    # Given a transaction that has been open for longer than the countdown...
    caller.add_order(1)
    time.sleep(countdown + 0.5)
    # ...when a job is sent in it with that countdown and the transaction commits at once...
    sent_at = time.monotonic()
    result = add.apply_async((1, 2), countdown=countdown, connection=caller.handle)
    caller.commit()

    # ...I expect a worker looking right away to leave it alone (API.md §3: "not before
    # now + countdown"), and to run it once the countdown has passed.
    run_worker_in_process(app)
    assert time.monotonic() - sent_at < countdown, "the test itself was too slow to tell"
    assert result.status == "PENDING", (
        f"the job ran {time.monotonic() - sent_at:.2f}s after apply_async(countdown={countdown}): "
        "its countdown was counted from the start of the caller's transaction"
    )
    # (A margin for the send's own round trips: a first DB-API send on MySQL also reads
    # where the app's engine is connected.)
    time.sleep(max(0.0, sent_at + countdown + 0.5 - time.monotonic()))
    run_worker_in_process(app)
    assert result.get(timeout=WAIT) == 3


# --- PostgreSQL: a real worker process during the open transaction -----------------------------


@pytest.mark.postgresql
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_worker_process_does_not_run_a_job_whose_transaction_is_open(
    db_url: str, app: SQLQueue, caller: Caller, via: str
) -> None:
    # (On SQLite the caller's open write transaction blocks every other writer, a worker's
    # claim included; test_job_is_invisible_to_other_connections_until_commit covers it.)
    caller.add_order(7)
    result = send_by_name(via, app, caller, "tasks.add", [1, 2])

    # Given a job written in a transaction still open, when a worker process looks for work,
    # I expect it to find none and exit 0 at once, without waiting on the caller's locks.
    output = run_worker_process(db_url)
    assert "burst: no ready job left" in output
    assert "job finished" not in output
    assert count_jobs(app) == 0

    caller.commit()

    # The worker left the job alone: it is still PENDING, and the next worker runs it.
    assert result.status == "PENDING"
    output = run_worker_process(db_url)
    assert f"id={result.id} outcome=SUCCESS" in output
    assert result.get(timeout=WAIT) == 3
    assert count_orders(app) == 1


# --- MySQL: mysqlclient's connection too, and times through a DB-API connection ----------------


@pytest.mark.mysql
@pytest.mark.parametrize("db_url", ["mysql"], indirect=True)
@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_a_mysqlclient_connection_commits_or_rolls_back_its_jobs(
    db_url: str,
    app: SQLQueue,
    add: Task[..., Any],
    orders_table: None,
    mysqlclient: Any,
    outcome: str,
) -> None:
    caller = MySQLCaller(db_url, mysqlclient)
    try:
        caller.add_order(42)
        one = add.apply_async((1, 2), connection=caller.handle)
        with app.using(caller.handle):
            add.delay_many([(n, n) for n in range(BULK)])
        assert (count_orders(app), count_jobs(app)) == (0, 0)

        caller.commit() if outcome == "commit" else caller.rollback()
    finally:
        caller.close()

    if outcome == "rollback":
        assert (count_orders(app), count_jobs(app)) == (0, 0)
        return
    assert (count_orders(app), count_jobs(app)) == (1, BULK + 1)
    run_worker_in_process(app)
    assert one.get(timeout=WAIT) == 3


@pytest.mark.mysql
@pytest.mark.parametrize("db_url", ["mysql"], indirect=True)
@pytest.mark.parametrize("driver", ["pymysql", "mysqlclient"])
def test_a_mysql_dbapi_send_keeps_its_times_in_utc_with_microseconds(
    request: pytest.FixtureRequest, db_url: str, app: SQLQueue, add: Task[..., Any], driver: str
) -> None:
    module = pymysql if driver == "pymysql" else request.getfixturevalue("mysqlclient")
    eta = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    expires = datetime(2030, 1, 3, 0, 0, 0, 123456, tzinfo=UTC)
    caller = MySQLCaller(db_url, module)
    try:
        # A session time zone other than UTC must change nothing: times are UTC throughout.
        cursor = caller.connection.cursor()
        cursor.execute("SET time_zone = '+05:00'")
        cursor.close()
        pinned = add.apply_async((1, 2), eta=eta, expires=expires, connection=caller.handle)
        soon = add.apply_async((3, 4), countdown=0.25, connection=caller.handle)
        caller.commit()
    finally:
        caller.close()

    now = app.store.database_now()
    job = app.store.get_job(pinned.id)
    assert job is not None
    assert job.scheduled_at == eta  # the same instant, to the microsecond
    assert job.scheduled_at.tzinfo is not None
    assert job.scheduled_at.utcoffset() == timedelta(0)
    assert job.expires_at == expires
    later = app.store.get_job(soon.id)
    assert later is not None
    assert later.created_at.utcoffset() == timedelta(0)
    assert later.scheduled_at - later.created_at == timedelta(microseconds=250_000)
    assert abs(now - later.created_at) < timedelta(seconds=WAIT)


@pytest.mark.mysql
@pytest.mark.parametrize("db_url", ["mysql"], indirect=True)
@pytest.mark.parametrize("driver", ["pymysql", "mysqlclient"])
def test_a_taken_id_sent_on_a_mysql_dbapi_connection_is_a_duplicate(
    request: pytest.FixtureRequest, db_url: str, app: SQLQueue, add: Task[..., Any], driver: str
) -> None:
    module = pymysql if driver == "pymysql" else request.getfixturevalue("mysqlclient")
    add.apply_async((1, 2), task_id="taken")
    caller = MySQLCaller(db_url, module)
    try:
        with pytest.raises(DuplicateJobIdError):
            add.apply_async((3, 4), task_id="taken", connection=caller.handle)
        caller.commit()
    finally:
        caller.close()
    assert count_jobs(app) == 1


@pytest.mark.mysql
@pytest.mark.parametrize("db_url", ["mysql"], indirect=True)
def test_a_mysql_connection_to_another_database_on_the_server_is_refused(
    db_url: str, app: SQLQueue, add: Task[..., Any]
) -> None:
    other = MySQLCaller(sa.make_url(db_url).set(database="mysql").render_as_string(False), pymysql)
    try:
        with pytest.raises(ConfigurationError, match=r"mysql database 'mysql'"):
            add.apply_async((1, 2), connection=other.handle)
    finally:
        other.close()
    assert count_jobs(app) == 0


# --- refusals: not a connection, or a connection to another database --------------------------


@pytest.mark.parametrize(
    "not_a_connection",
    [
        pytest.param(lambda app: object(), id="object"),
        pytest.param(lambda app: str(app.engine.url), id="url-string"),
        pytest.param(lambda app: app.engine, id="engine"),
        pytest.param(lambda app: sessionmaker(app.engine), id="sessionmaker"),
    ],
)
def test_connection_that_is_not_a_connection_raises_configuration_error(
    app: SQLQueue, add: Task[..., Any], not_a_connection: Callable[[SQLQueue], Any]
) -> None:
    bad = not_a_connection(app)

    with pytest.raises(ConfigurationError, match=r"connection="):
        add.apply_async((1, 2), connection=bad)
    with pytest.raises(ConfigurationError, match=r"connection="), app.using(bad):
        add.delay(1, 2)

    assert count_jobs(app) == 0


@pytest.mark.parametrize("open_caller", ["dbapi-connection"], indirect=True)
def test_a_dbapi_cursor_is_not_a_connection(
    app: SQLQueue, caller: Caller, add: Task[..., Any]
) -> None:
    cursor = caller.handle.cursor()
    try:
        with pytest.raises(ConfigurationError, match=r"connection="):
            add.apply_async((1, 2), connection=cursor)
    finally:
        cursor.close()
    caller.commit()

    assert count_jobs(app) == 0


@pytest.mark.postgresql
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_psycopg_async_connection_is_refused_not_silently_dropped(
    db_url: str, app: SQLQueue, add: Task[..., Any]
) -> None:
    # An AsyncConnection is not one of the connections connection= takes (API.md §3.1);
    # sending through it must fail loudly rather than return a receipt for a job never written.
    async def send_through_async_connection() -> None:
        connection = await psycopg.AsyncConnection.connect(db_url, connect_timeout=int(WAIT))
        try:
            with pytest.raises(ConfigurationError, match=r"connection="):
                add.apply_async((1, 2), connection=connection)
            await connection.commit()
        finally:
            await connection.close()

    asyncio.run(asyncio.wait_for(send_through_async_connection(), WAIT))

    assert count_jobs(app) == 0


@pytest.fixture
def other_database(
    request: pytest.FixtureRequest, app: SQLQueue, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """A migrated queue in the other kind of database: (dialect name, URL)."""
    if app.dialect.name == "postgresql":
        path = tmp_path / "other.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield "sqlite", f"sqlite:///{path}"
    else:
        yield "postgresql", request.getfixturevalue("postgres_url")


def count_task_rows(connection: Any, task_name: str) -> int:
    """Jobs of one task, read inside the given (DB-API or SQLAlchemy) connection's transaction."""
    if isinstance(connection, sa.Connection):
        query = sa.text("SELECT count(*) FROM sqlqueue_jobs WHERE task_name = :name")
        return int(connection.execute(query, {"name": task_name}).scalar_one())
    placeholder = "?" if isinstance(connection, sqlite3.Connection) else "%s"
    cursor = connection.execute(
        f"SELECT count(*) FROM sqlqueue_jobs WHERE task_name = {placeholder}", (task_name,)
    )
    return int(cursor.fetchone()[0])


@pytest.mark.parametrize("kind", ["dbapi-connection", "sqlalchemy-connection"])
def test_connection_to_the_other_database_raises_configuration_error(
    app: SQLQueue, other_database: tuple[str, str], kind: str
) -> None:
    other_name, other_url = other_database

    @app.task(name="t.wrong_database")
    def wrong_database(x: int) -> int:
        return x

    engine = sa.create_engine(sqlalchemy_url(other_url))
    connection: Any
    if kind == "sqlalchemy-connection":
        connection = engine.connect()
        connection.begin()
    elif other_name == "sqlite":
        connection = sqlite3.connect(sqlite_path(other_url), timeout=WAIT)
    else:
        connection = psycopg.connect(other_url, connect_timeout=int(WAIT))
    try:
        with pytest.raises(ConfigurationError, match=rf"connection to the {other_name} database"):
            wrong_database.apply_async((1,), connection=connection)
        with pytest.raises(ConfigurationError, match=rf"connection to the {other_name} database"):
            with app.using(connection):
                wrong_database.delay(1)

        # Nothing was written on either side, not even inside the caller's transaction.
        assert count_task_rows(connection, "t.wrong_database") == 0
        connection.commit()
        assert count_task_rows(connection, "t.wrong_database") == 0
        assert count_jobs(app, "task_name = 't.wrong_database'") == 0
    finally:
        connection.close()
        engine.dispose()


def test_a_connection_to_another_database_of_the_same_kind_is_refused(
    sqlite_template: Path, tmp_path: Path
) -> None:
    shutil.copy(sqlite_template, tmp_path / "queue.db")
    app = SQLQueue(f"sqlite:///{tmp_path / 'queue.db'}")
    other = sqlite3.connect(tmp_path / "someone_elses.db")
    try:
        with pytest.raises(ConfigurationError, match=r"someone_elses\.db"):
            app.send_task("t.anything", connection=other)
        assert count_jobs(app) == 0
    finally:
        other.close()
        app.engine.dispose()


def test_a_shared_sqlite_engine_in_autocommit_mode_keeps_its_writes(
    sqlite_template: Path, tmp_path: Path
) -> None:
    # Given an application engine in autocommit mode, shared with sqlqueue,
    shutil.copy(sqlite_template, tmp_path / "queue.db")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'queue.db'}", isolation_level="AUTOCOMMIT")
    app = SQLQueue(engine=engine)
    try:
        # when the application writes through it without a transaction,
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE TABLE notes (body TEXT)"))
            conn.execute(sa.text("INSERT INTO notes VALUES ('kept')"))
            app.send_task("t.anything", connection=conn)
        # I expect sqlqueue's BEGIN hook to have left its writes committed.
        with sqlite3.connect(tmp_path / "queue.db") as reader:
            assert reader.execute("SELECT body FROM notes").fetchall() == [("kept",)]
        assert count_jobs(app) == 1
    finally:
        engine.dispose()


def test_a_sqlite_connection_in_autocommit_mode_keeps_its_writes(
    sqlite_template: Path, tmp_path: Path
) -> None:
    shutil.copy(sqlite_template, tmp_path / "queue.db")
    app = SQLQueue(f"sqlite:///{tmp_path / 'queue.db'}")
    try:
        with app.engine.connect() as conn:
            autocommit = conn.execution_options(isolation_level="AUTOCOMMIT")
            app.send_task("t.anything", connection=autocommit)
        assert count_jobs(app) == 1
    finally:
        app.engine.dispose()


def test_a_scoped_session_joins_its_current_session_transaction(
    app: SQLQueue, add: Task[..., Any]
) -> None:
    # Flask-SQLAlchemy's db.session is a scoped_session: a registry, not a Session.
    registry = scoped_session(sessionmaker(app.engine))
    try:
        registry.begin()
        rolled_back = add.apply_async((1, 2), connection=registry)
        registry.rollback()
        registry.begin()
        committed = add.apply_async((3, 4), connection=registry)
        registry.commit()
    finally:
        registry.remove()
    assert count_jobs(app) == 1
    assert committed.status == "PENDING"
    with pytest.raises(JobNotFoundError):
        rolled_back.status  # noqa: B018 - reading it is the check
