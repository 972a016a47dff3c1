"""Real databases for every test: SQLite always, PostgreSQL and MariaDB (or MySQL) when
reachable.

PostgreSQL comes from $SQLQUEUE_TEST_POSTGRES_URL, MariaDB from $SQLQUEUE_TEST_MARIADB_URL
(default: the local servers). When one cannot be reached its tests are skipped with a
message saying how to start it; under CI=true they fail instead, so CI can never go green
without them.
"""

from __future__ import annotations

import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from sqlqueue import SQLQueue, Worker, WorkerOptions
from sqlqueue.migrate import upgrade

TESTS_DIR = Path(__file__).parent
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PER_TEST_TABLES = (
    "sqlqueue_jobs",
    "sqlqueue_workers",
    "sqlqueue_rate_limits",
    "sqlqueue_schedules",
)
"""The tables a test on a server's session database starts with empty: a bucket or a schedule
left by the test before, under the same task's name, would change what this one sees."""


def postgres_admin_url() -> str:
    return os.environ.get("SQLQUEUE_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL


def _with_database(url: str, name: str) -> str:
    return sa.make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of a reachable PostgreSQL server, or a skip (a failure under CI)."""
    url = postgres_admin_url()
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        message = (
            f"PostgreSQL is unreachable at {url}: {exc}. Start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
            "or point SQLQUEUE_TEST_POSTGRES_URL at a server."
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A database created and migrated for this test session, dropped at the end."""
    name = f"sqlqueue_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(postgres_server, name)
    app = SQLQueue(url)
    upgrade(app.engine)
    app.engine.dispose()
    yield url
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test gets its own copy."""
    path = tmp_path_factory.mktemp("sqlite-template") / "queue.db"
    app = SQLQueue(f"sqlite:///{path}")
    upgrade(app.engine)
    app.engine.dispose()
    return path


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated queue: a fresh SQLite file, or the session's
    PostgreSQL or MariaDB database with its ``PER_TEST_TABLES`` emptied."""
    if request.param == "sqlite":
        path = tmp_path / "queue.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    if request.param == "mysql":
        url: str = request.getfixturevalue("mysql_url")
        empty_mysql(url)
        return url
    url = request.getfixturevalue("postgres_url")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(PER_TEST_TABLES)}")
    return url


@pytest.fixture
def app(db_url: str) -> Iterator[SQLQueue]:
    """An app on the test's database, with no task registered."""
    queue = SQLQueue(db_url)
    yield queue
    queue.engine.dispose()


@pytest.fixture
def add(app: SQLQueue) -> Any:
    """The task ``t.add``, registered on the test's app."""

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    return add


def count_jobs(app: SQLQueue, where: str = "1 = 1") -> int:
    """Rows in the jobs table, read with a connection of its own (what a worker would see)."""
    with app.engine.connect() as conn:
        return conn.execute(
            sa.text(f"SELECT count(*) FROM sqlqueue_jobs WHERE {where}")
        ).scalar_one()


def sqlqueue_command() -> list[str]:
    """The installed `sqlqueue` console script of the interpreter running the tests."""
    return [str(Path(sys.executable).parent / "sqlqueue")]


def on_a_terminal(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    """Run ``sqlqueue ARGS`` with its stderr on a pseudo-terminal, as an operator's shell:
    the exit code, its stdout, and what the terminal showed (redraw codes dropped)."""
    leader, follower = pty.openpty()
    completed = subprocess.run(
        [*sqlqueue_command(), *args],
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )
    os.close(follower)
    shown = os.read(leader, 100_000).decode()
    os.close(leader)
    return completed.returncode, completed.stdout, shown.replace("\x1b[2K", "")


def start_worker(
    db_url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """A real `sqlqueue worker -A tasks` process on the test database, run from tests/."""
    return subprocess.Popen(
        [*sqlqueue_command(), "worker", "-A", "tasks", *args],
        cwd=TESTS_DIR,
        env={**os.environ, "SQLQUEUE_DATABASE_URL": db_url, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop_worker(worker: subprocess.Popen[str]) -> str:
    """Stop a worker started by ``start_worker`` as SIGTERM does; its output.

    A worker that has not exited a minute later is killed before the test fails, so that it
    does not outlive its test and fail a later one."""
    worker.send_signal(signal.SIGTERM)
    try:
        output, _ = worker.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.communicate()
        raise
    return output


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds, or fail the test saying what never happened."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"gave up waiting {timeout:g}s for {what}")
        time.sleep(0.02)


def work_off(app: SQLQueue, *, concurrency: int = 2, queues: list[str] | None = None) -> None:
    """Run an in-process burst worker until no ready job is left."""
    options = WorkerOptions(burst=True, concurrency=concurrency, queues=queues, poll_interval=0.05)
    Worker(app, options).run()


@pytest.fixture
def pg_app(postgres_url: str) -> Iterator[SQLQueue]:
    """An app on the session's PostgreSQL database, its ``PER_TEST_TABLES`` emptied: for
    tests that only make sense where there are row locks and query plans."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(PER_TEST_TABLES)}")
    queue = SQLQueue(postgres_url)
    yield queue
    queue.engine.dispose()


DEFAULT_MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/mysql"


def mariadb_admin_url() -> str:
    return os.environ.get("SQLQUEUE_TEST_MARIADB_URL") or DEFAULT_MARIADB_URL


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    """A MariaDB (or MySQL) database created and migrated for this test session, dropped at
    its end; a skip saying why when PyMySQL or the server is missing (a failure under CI)."""
    try:
        import pymysql  # noqa: F401
    except ImportError:
        message = 'PyMySQL is not installed: pip install -e ".[dev]" (or "sqlqueue[mysql]").'
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    admin = sa.create_engine(mariadb_admin_url(), connect_args={"connect_timeout": 3})
    name = f"sqlqueue_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    except sa.exc.OperationalError as exc:
        message = (
            f"MariaDB is unreachable at {mariadb_admin_url()}: {exc.orig}. Start it (`service "
            "mariadb start`) or point SQLQUEUE_TEST_MARIADB_URL at a server."
        )
        admin.dispose()
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    url = _with_database(mariadb_admin_url(), name)
    app = SQLQueue(url)
    upgrade(app.engine)
    app.engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE {name}")
    admin.dispose()


@pytest.fixture(scope="session")
def mysqlclient() -> Any:
    """mysqlclient's ``MySQLdb`` module, or a skip saying how to install it (a failure under
    CI, whose ``make test`` installs it)."""
    try:
        import MySQLdb
    except ImportError as exc:
        message = (
            f"mysqlclient is not installed ({exc}): `make mysqlclient` installs it, with the "
            "client library's headers it builds against."
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return MySQLdb


def empty_mysql(url: str) -> None:
    """Empty the ``PER_TEST_TABLES`` of the session's MariaDB database (TRUNCATE would
    recreate the tables, slower than deleting a test's few rows)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in PER_TEST_TABLES:
            conn.exec_driver_sql(f"DELETE FROM {table}")
    engine.dispose()


@pytest.fixture
def mysql_app(mysql_url: str) -> Iterator[SQLQueue]:
    """An app on the session's MariaDB database, its ``PER_TEST_TABLES`` emptied: for tests
    of what only MySQL has (its claim index, its version checks)."""
    empty_mysql(mysql_url)
    queue = SQLQueue(mysql_url)
    yield queue
    queue.engine.dispose()


# The Django tests run in their own pytest session, with DJANGO_SETTINGS_MODULE set (see the
# Makefile's test target); the rest of the suite does not load Django.
collect_ignore = [] if os.environ.get("DJANGO_SETTINGS_MODULE") else ["django"]


def explain_claim(url: str, limit: int = 10, queues: list[str] | None = None) -> str:
    """The plans of the statements the claim function really ran, with buffers, one after
    another: EXPLAIN of the call shows only a function scan, so auto_explain (a superuser's
    LOAD) reports the statements inside it. The claim is rolled back."""
    messages: list[str] = []
    with psycopg.connect(url) as conn:
        conn.add_notice_handler(lambda notice: messages.append(notice.message_primary or ""))
        for setting in (
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_nested_statements = on",
            "SET auto_explain.log_analyze = on",
            "SET auto_explain.log_buffers = on",
            "SET client_min_messages = log",
        ):
            conn.execute(setting)
        conn.execute("SELECT * FROM sqlqueue_claim(%s, 30, 'w', %s::text[])", (limit, queues))
        conn.rollback()
    return "\n".join(
        message
        for message in messages
        if message.startswith("duration:") and "FROM sqlqueue_claim(" not in message
    )


def claim_buffers(plans: str) -> int:
    """Shared buffers the claim touched to find and lock its jobs, not to update them: each
    statement that chooses jobs without locking them (given queues), and each ``ready`` CTE,
    which locks them."""
    total = 0
    for plan in re.split(r"^duration:", plans, flags=re.MULTILINE)[1:]:
        lines = plan.splitlines()
        start = next((n for n, line in enumerate(lines) if "CTE ready" in line), 0)
        buffers = next(line for line in lines[start:] if "Buffers:" in line)
        total += sum(int(n) for n in re.findall(r"(?:hit|read)=(\d+)", buffers))
    return total


def explain(app: SQLQueue, statement: sa.Executable) -> str:
    """The plan of one of the dialect's statements on PostgreSQL, run with ``EXPLAIN (ANALYZE,
    BUFFERS)`` and rolled back."""
    compiled = statement.compile(
        dialect=app.engine.dialect, compile_kwargs={"render_postcompile": True}
    )
    with app.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}", compiled.params)
        plan = "\n".join(str(row[0]) for row in rows)
        conn.rollback()
    return plan


def plan_buffers(plan: str) -> int:
    """Shared buffers the whole statement touched: its top node's (planning not counted)."""
    buffers = next(line for line in plan.splitlines() if "Buffers:" in line)
    return sum(int(n) for n in re.findall(r"(?:hit|read)=(\d+)", buffers))


def uses_index(plan: str, index: str) -> bool:
    """Whether a plan names this index (not merely one whose name starts the same)."""
    return re.search(rf"\b{index}\b", plan) is not None
