"""PostgreSQL wakes idle workers: every insert notifies, at commit, and workers LISTEN."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from conftest import start_worker

from sqlqueue import SQLQueue
from sqlqueue.dialects.base import JobOutcome
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

    pg_app.store.record_outcomes([JobOutcome.retry(take_one(), 0, None)])
    assert heard() == 1

    job_id, attempt = take_one()
    pg_app.store.record_outcomes([JobOutcome.failure((job_id, attempt), failure())])
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


def failure() -> Failure:
    try:
        raise ValueError("boom")
    except ValueError as exc:
        return Failure.from_exception(exc)
