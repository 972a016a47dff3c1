"""PostgreSQL wakes idle workers: every insert notifies, at commit, and workers LISTEN."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from conftest import start_worker, wait_until

from sqlqueue import SQLQueue, Worker, WorkerOptions
from sqlqueue.outcomes import Outcome
from sqlqueue.serialization import Failure

pytestmark = [pytest.mark.postgresql, pytest.mark.slow]


@pytest.fixture
def listener(postgres_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("LISTEN sqlqueue")
        yield conn


def test_an_insert_notifies_once_per_transaction_and_only_at_commit(
    pg_app: SQLQueue, listener: psycopg.Connection
) -> None:
    with pg_app.engine.connect() as conn, pg_app.using(conn):
        for n in range(50):
            pg_app.send_task("t.job", args=[n], queue="mail")
        assert list(listener.notifies(timeout=0.3)) == []  # nothing before the commit
        conn.commit()
    heard = [(n.channel, n.payload) for n in listener.notifies(timeout=1)]
    assert heard == [("sqlqueue", "mail")]

    with pg_app.engine.connect() as conn, pg_app.using(conn):
        pg_app.send_task("t.job", args=[0])
        conn.rollback()
    assert list(listener.notifies(timeout=0.5)) == []


def test_an_idle_worker_is_woken_long_before_its_next_poll(
    pg_app: SQLQueue, postgres_url: str
) -> None:
    worker = start_worker(postgres_url, "--poll-interval", "60")
    try:
        time.sleep(3)  # started, looked once, found nothing: idle for the next minute
        result = pg_app.send_task("tasks.add", args=[20, 22])
        # Without the notification the job would wait for the poll a minute away.
        assert result.get(timeout=10) == 42
    finally:
        worker.terminate()
        worker.communicate(timeout=30)


def test_jobs_made_ready_again_wake_listening_workers_too(
    pg_app: SQLQueue, listener: psycopg.Connection
) -> None:
    # Not only a send: a listening worker looks on its own only every 30 s, so a job given
    # back, re-queued, rescued or retried must announce itself the same way.
    def heard() -> int:
        return len(list(listener.notifies(timeout=0.5)))

    def take_one() -> tuple[str, int]:
        pg_app.send_task("t.job")
        heard()  # the send's own notification
        (job,) = pg_app.store.claim_jobs(1, None, "w", lease=30)
        return job.id, job.attempts

    pg_app.store.release_jobs([take_one()])
    assert heard() == 1

    pg_app.store.record_outcomes([(take_one(), Outcome.retrying(0, None))])
    assert heard() == 1

    job_id, attempt = take_one()
    pg_app.store.record_outcomes([((job_id, attempt), Outcome.failed(failure()))])
    assert heard() == 0  # a finished job is nobody's work
    assert pg_app.store.requeue_jobs(job_ids=[job_id]) == 1
    assert heard() == 1

    take_one()
    with pg_app.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE sqlqueue_jobs SET lease_expires_at = now() - interval '1 s'")
    assert pg_app.store.rescue_expired_jobs(3) >= 1
    assert heard() == 1

    assert pg_app.store.requeue_jobs(job_ids=[job_id]) == 0  # nothing changed: no wake-up
    assert heard() == 0


def psycopg_url(postgres_url: str) -> sa.URL:
    return sa.make_url(postgres_url).set(drivername="postgresql+psycopg")


def listen_backend(postgres_url: str) -> str | None:
    """The application_name of the session doing LISTEN on this database, once it is up."""
    deadline = time.monotonic() + 10
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT application_name FROM pg_stat_activity"
                " WHERE datname = current_database() AND query = 'LISTEN sqlqueue'"
            ).fetchone()
            if row is not None:
                return str(row[0])
            time.sleep(0.1)
    return None


@pytest.fixture
def run_listener() -> Iterator[Any]:
    """Run an app's listener in a thread of its own, as a worker does, until the test ends;
    then dispose of the app's engine. Not before: a listener still checking that it hears
    itself would return its connection to a pool disposed of, which nobody closes, and the
    garbage collector would find it open during a later test."""
    stop = threading.Event()
    threads: list[threading.Thread] = []
    apps: list[SQLQueue] = []

    def start(app: SQLQueue) -> threading.Event:
        woken = threading.Event()
        thread = threading.Thread(
            target=app.dialect.listen,
            args=(app.engine, woken.set, stop, threading.Event(), lambda: None),
        )
        thread.start()
        threads.append(thread)
        apps.append(app)
        return woken

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    for app in apps:
        app.engine.dispose()


def test_the_listen_connection_uses_the_engines_connect_args(
    postgres_url: str, run_listener: Any
) -> None:
    engine = sa.create_engine(
        psycopg_url(postgres_url),
        connect_args={"application_name": "from-connect-args"},
    )
    app = SQLQueue(engine=engine)
    woken = run_listener(app)
    assert listen_backend(postgres_url) == "from-connect-args"
    woken.clear()
    app.send_task("t.job")
    assert woken.wait(5)


def test_the_listen_connection_comes_from_the_engines_creator(
    postgres_url: str, run_listener: Any
) -> None:
    def creator() -> psycopg.Connection[Any]:
        return psycopg.connect(postgres_url, application_name="from-creator")

    engine = sa.create_engine("postgresql+psycopg://", creator=creator)
    app = SQLQueue(engine=engine)
    run_listener(app)
    assert listen_backend(postgres_url) == "from-creator"


def test_a_listener_that_fails_to_connect_is_restarted_and_wakes_the_worker(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Not a database error: a creator (or an event hook) that raises anything at all.
    refused: list[str] = []

    def creator() -> psycopg.Connection[Any]:
        if threading.current_thread().name == "sqlqueue-listen" and not refused:
            refused.append("once")
            raise RuntimeError("the first LISTEN connection is refused")
        return psycopg.connect(postgres_url, application_name="restarted")

    engine = sa.create_engine("postgresql+psycopg://", creator=creator)
    app = SQLQueue(engine=engine)
    worker = Worker(app, WorkerOptions(poll_interval=60))
    thread = threading.Thread(target=worker.run)
    with caplog.at_level(logging.WARNING, logger="sqlqueue"):
        thread.start()
        try:
            assert listen_backend(postgres_url) == "restarted"
            time.sleep(0.5)  # the worker has looked once and waits for its next poll
            result = app.send_task("tasks.unknown")  # fails at once: enough to see it ran
            assert result.get(timeout=5, propagate=False) is not None
        finally:
            stop_in_thread(worker, thread)
            engine.dispose()
    assert refused == ["once"]
    assert "the first LISTEN connection is refused" in caplog.text


def test_a_send_to_an_idle_worker_costs_it_two_claims(
    pg_app: SQLQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The claim that takes the job, and one when its thread is free again. A claim that took
    # every ready job it saw is not followed at once by another (it found nothing, and its
    # Python held up the thread starting the job).
    taken: list[int] = []
    claim_jobs = pg_app.store.claim_jobs

    def counted(*args: Any, **kwargs: Any) -> Any:
        jobs = claim_jobs(*args, **kwargs)
        taken.append(len(jobs))
        return jobs

    monkeypatch.setattr(pg_app.store, "claim_jobs", counted)
    noop = pg_app.task(name="t.noop")(lambda: None)
    worker = Worker(pg_app, WorkerOptions(poll_interval=60))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_until(
            lambda: worker._listening.is_set() and worker._chores.done.is_set(),
            30,
            "the worker to listen and finish its first chores",
        )
        time.sleep(0.5)  # the claims these woke have run: idle
        before = len(taken)
        for _ in range(10):
            noop.delay().get(timeout=10)
            time.sleep(0.1)  # idle again
        claims = taken[before:]
    finally:
        stop_in_thread(worker, thread)
    assert sum(claims) == 10
    # (Fewer, if a loaded machine merged a job's return with the next send: 30 before.)
    assert len(claims) <= 20


def stop_in_thread(worker: Worker, thread: threading.Thread) -> None:
    """Stop a worker run in ``thread``, and its listener: the listener closes its connection as
    it ends; let it, within the test, rather than leave the connection to the garbage collector
    during a later one."""
    worker.stop()
    thread.join(timeout=30)
    for listener in [t for t in threading.enumerate() if t.name == "sqlqueue-listen"]:
        listener.join(timeout=10)


def failure() -> Failure:
    try:
        raise ValueError("boom")
    except ValueError as exc:
        return Failure.from_exception(exc)
