"""Through PgBouncer in transaction mode (issue 16): sends, claims, results and migrations work;
LISTEN cannot, so a worker listens on a direct connection (``--listen-url``) or polls.

Each test module run starts its own PgBouncer (Debian's package, which `make test` installs)
on a free port, in front of the test server: transaction pooling, where a client's
consecutive transactions may run on different server connections, and a session's state
(prepared statements, LISTEN) stays behind on one it no longer holds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
import sqlalchemy as sa
from conftest import IN_CI, TESTS_DIR, sqlqueue_command, start_worker, wait_until

from sqlqueue import SQLQueue, Worker, WorkerOptions
from sqlqueue.dialects.postgresql import COPY_MIN_JOBS
from sqlqueue.exceptions import DatabaseError

pytestmark = [pytest.mark.postgresql, pytest.mark.slow]

POOLED = "prepare_threshold=none"
"""What a database URL through a pooler in transaction mode needs (docs/databases.md)."""

ONE_SERVER_CONNECTION = "one_server_connection"
"""A PgBouncer database whose clients all share one server connection."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def skip_or_fail(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def pgbouncer(
    postgres_server: str, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sa.URL]:
    """The URL of the session's test database through a PgBouncer of this module's own, in
    transaction mode; any other database name reaches that database on the test server.
    ``ONE_SERVER_CONNECTION`` names the session's database through a pool of one."""
    executable = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.access(executable, os.X_OK):
        skip_or_fail(
            "PgBouncer is not installed: `make pgbouncer` installs Debian's package "
            "(apt-get install pgbouncer)."
        )
    server = sa.make_url(postgres_server)
    user = server.username or "postgres"
    target = f"host={server.host or '127.0.0.1'} port={server.port or 5432}" + (
        f" password={server.password}" if server.password else ""
    )
    database = sa.make_url(postgres_url).database
    directory = tmp_path_factory.mktemp("pgbouncer")
    port = free_port()
    (directory / "users.txt").write_text(f'"{user}" ""\n')
    (directory / "pgbouncer.ini").write_text(
        f"""[databases]
{ONE_SERVER_CONNECTION} = {target} dbname={database} pool_size=1
* = {target}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory / "users.txt"}
pool_mode = transaction
default_pool_size = 20
max_client_conn = 200
"""
    )
    # PgBouncer refuses to run as root: then it reads its files and becomes postgres. Its log
    # goes to a file: a pipe nobody reads would stop it once full.
    as_user = ["-u", "postgres"] if os.geteuid() == 0 else []
    log = directory / "pgbouncer.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [executable, *as_user, str(directory / "pgbouncer.ini")],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = sa.make_url(postgres_url).set(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg.connect(url.render_as_string(False), connect_timeout=3).close()
            break
        except psycopg.OperationalError as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                skip_or_fail(f"PgBouncer did not start ({exc}):\n{log.read_text()}")
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=30)


def pooled(url: sa.URL, database: str | None = None, prepare: bool = False) -> str:
    """The URL as a string, of another database if given, with ``POOLED`` unless ``prepare``."""
    url = url if database is None else url.set(database=database)
    return url.render_as_string(False) + ("" if prepare else f"?{POOLED}")


@pytest.fixture
def app(pgbouncer: sa.URL, postgres_url: str) -> Iterator[SQLQueue]:
    """An app on the emptied session database, through PgBouncer."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("TRUNCATE sqlqueue_jobs, sqlqueue_workers")
    queue = SQLQueue(pooled(pgbouncer))
    yield queue
    queue.engine.dispose()


def jobs_by_status(postgres_url: str) -> dict[str, int]:
    """Read directly, not through PgBouncer."""
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT status, count(*) FROM sqlqueue_jobs GROUP BY status")
        return dict(rows.fetchall())


def test_sends_and_transactional_sends_through_pgbouncer(app: SQLQueue, postgres_url: str) -> None:
    # More of each than psycopg's default prepare threshold (5), on a pool of connections.
    for n in range(21):
        app.send_task("t.job", args=[n])
    with app.engine.connect() as conn, app.using(conn):
        for n in range(10):
            app.send_task("t.job", args=[n], queue="rolled-back")
        conn.rollback()
    with app.engine.connect() as conn, app.using(conn):
        for n in range(10):
            app.send_task("t.job", args=[n], queue="committed")
        conn.commit()
    # Many jobs at once: one INSERT, and COPY (a transaction of three statements) from
    # COPY_MIN_JOBS on, alone and in the caller's transaction.
    job = app.task(name="t.job", queue="many")(lambda n: n)
    job.delay_many([(n,) for n in range(20)])
    job.delay_many([(n,) for n in range(COPY_MIN_JOBS)])
    with app.engine.connect() as conn, app.using(conn):
        job.delay_many([(n,) for n in range(COPY_MIN_JOBS)])
        conn.commit()
    with app.engine.begin() as conn:
        queues = dict(
            conn.execute(sa.text("SELECT queue, count(*) FROM sqlqueue_jobs GROUP BY queue")).all()
        )
    assert queues == {"default": 21, "committed": 10, "many": 20 + 2 * COPY_MIN_JOBS}
    assert jobs_by_status(postgres_url) == {"PENDING": 31 + 20 + 2 * COPY_MIN_JOBS}


def test_one_server_connection_shared_by_two_apps(pgbouncer: sa.URL, postgres_url: str) -> None:
    # Given two apps whose transactions all run on the one server connection, each sending
    # the same statement more often than psycopg's prepare threshold.
    def apps(prepare: bool) -> list[SQLQueue]:
        return [SQLQueue(pooled(pgbouncer, ONE_SERVER_CONNECTION, prepare)) for _ in "ab"]

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("TRUNCATE sqlqueue_jobs")
    # With prepared statements (psycopg's default), the second app prepares a name the
    # first left on that connection: refused, and the message says what to do.
    first, second = apps(prepare=True)
    for _ in range(6):
        first.send_task("t.job")
    with pytest.raises(DatabaseError, match=r"prepare_threshold=none") as refused:
        for _ in range(6):
            second.send_task("t.job")
    assert "_pg3_" in str(refused.value)
    # With prepare_threshold=none in the URL, both send as often as they like.
    for queue in (first, second, *apps(prepare=False)):
        queue.engine.dispose()
    first, second = apps(prepare=False)
    for _ in range(10):
        first.send_task("t.job")
        second.send_task("t.job")
    assert jobs_by_status(postgres_url)["PENDING"] >= 20 + 6
    first.engine.dispose()
    second.engine.dispose()


class Output:
    """A worker process's output, read as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._process = process
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line)

    def stop(self) -> None:
        """Stop the worker as SIGTERM does, once it has said all it has to say."""
        self._process.terminate()
        self._process.wait(timeout=60)
        self._reader.join(timeout=60)
        assert self._process.stdout is not None
        self._process.stdout.close()

    def says(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def __str__(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def worker_through(pgbouncer: sa.URL) -> Iterator[Callable[..., Output]]:
    """Start `sqlqueue worker -A tasks` through PgBouncer with these options; stopped after."""
    workers: list[Output] = []

    def start(*args: str) -> Output:
        workers.append(Output(start_worker(pooled(pgbouncer), *args)))
        return workers[-1]

    yield start
    for worker in workers:
        worker.stop()


def test_a_worker_through_pgbouncer_runs_jobs_and_says_it_polls(
    app: SQLQueue, worker_through: Callable[..., Output], postgres_url: str
) -> None:
    # Given a worker through PgBouncer and no --listen-url: its LISTEN cannot hear sends.
    output = worker_through("--poll-interval", "0.2", "--concurrency", "4")
    results = [app.send_task("tasks.add", args=[n, n]) for n in range(40)]
    # Then every job runs, and its result reads back through PgBouncer.
    assert [result.get(timeout=60) for result in results] == [2 * n for n in range(40)]
    assert jobs_by_status(postgres_url) == {"SUCCESS": 40}
    # And the worker says that it polls, and why.
    wait_until(lambda: output.says("new jobs: polling every 0.2s"), 60, f"polling in\n{output}")
    assert output.says("LISTEN through 127.0.0.1:")
    assert output.says("give --listen-url a direct connection")
    assert not output.says("new jobs: LISTEN on")
    assert not output.says("Traceback")


def test_a_worker_with_listen_url_is_woken_by_notify(
    app: SQLQueue, worker_through: Callable[..., Output], postgres_url: str
) -> None:
    # Given a worker through PgBouncer that listens on a direct connection, and polls only
    # once a minute.
    output = worker_through("--poll-interval", "60", "--listen-url", postgres_url)
    direct = sa.make_url(postgres_url)
    wait_until(
        lambda: output.says(f"new jobs: LISTEN on {direct.host}:{direct.port}/{direct.database}"),
        60,
        f"the worker to listen, in\n{output}",
    )
    # Then a send wakes it: without the notification the job would wait for the next poll.
    started = time.monotonic()
    assert app.send_task("tasks.add", args=[20, 22]).get(timeout=20) == 42
    assert time.monotonic() - started < 20
    assert not output.says("new jobs: polling")


def test_migrate_through_pgbouncer_on_a_fresh_database(
    pgbouncer: sa.URL, postgres_server: str
) -> None:
    name = f"sqlqueue_bouncer_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        migrated = subprocess.run(
            [*sqlqueue_command(), "migrate", "--url", pooled(pgbouncer, name)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=TESTS_DIR,
            check=False,
        )
        assert migrated.returncode == 0, migrated.stderr
        assert "sqlqueue schema is up to date" in migrated.stdout
        direct = sa.make_url(postgres_server).set(database=name).render_as_string(False)
        with psycopg.connect(direct) as conn:
            (revision,) = conn.execute(
                "SELECT version_num FROM sqlqueue_alembic_version"
            ).fetchone() or (None,)
        assert revision == head_revision()
        # And the migrated queue works through PgBouncer.
        queue = SQLQueue(pooled(pgbouncer, name))
        queue.send_task("t.job")
        assert queue.store.claim_jobs(1, None, "w", lease=30)
        queue.engine.dispose()
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from sqlqueue.migrate import migrations_directory

    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def test_the_apps_listen_url_is_the_workers_too(
    app: SQLQueue, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an app through PgBouncer whose conf names a direct connection for LISTEN, and a
    # worker of its own that polls once a minute.
    app.conf.listen_url = postgres_url

    @app.task(name="t.double")
    def double(n: int) -> int:
        return 2 * n

    direct = sa.make_url(postgres_url)
    worker = Worker(app, WorkerOptions(poll_interval=60))
    thread = threading.Thread(target=worker.run)
    with caplog.at_level(logging.INFO, logger="sqlqueue"):
        thread.start()
        try:
            wait_until(
                lambda: f"new jobs: LISTEN on {direct.host}:{direct.port}/" in caplog.text,
                60,
                "the worker to listen on the direct connection",
            )
            # Then a send wakes it, long before its next look.
            assert double.delay(21).get(timeout=20) == 42
        finally:
            worker.stop()
            thread.join(timeout=60)
    assert "new jobs: polling" not in caplog.text


@pytest.mark.parametrize(("given", "threshold"), [("none", None), ("3", 3), (None, 5)])
def test_prepare_threshold_in_the_url_reaches_every_connection_sqlqueue_makes(
    postgres_url: str, given: str | None, threshold: int | None
) -> None:
    # The engine's, and the async engine's of adelay() and aget(); without it, psycopg's 5.
    url = postgres_url + ("" if given is None else f"?prepare_threshold={given}")
    queue = SQLQueue(url)
    pooled = queue.engine.raw_connection()
    try:
        assert isinstance(pooled.driver_connection, psycopg.Connection)
        assert pooled.driver_connection.prepare_threshold == threshold
    finally:
        pooled.close()
        queue.engine.dispose()

    async def async_threshold() -> int | None:
        engine = queue.store.async_engine  # made from the engine's URL, as adelay() does
        try:
            async with engine.connect() as conn:
                raw = await conn.get_raw_connection()
                assert isinstance(raw.driver_connection, psycopg.AsyncConnection)
                return raw.driver_connection.prepare_threshold
        finally:
            await engine.dispose()

    assert asyncio.run(async_threshold()) == threshold
