"""PostgreSQL wakes idle workers: every insert notifies, at commit, and workers LISTEN."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from conftest import start_worker

from sqlqueue import SQLQueue

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
