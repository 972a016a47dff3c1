"""delay_many: many jobs of one task in one statement, checked like delay, all or nothing."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import count_jobs, work_off

from sqlqueue import (
    InvalidOptionError,
    SerializationError,
    SQLQueue,
    TaskArgumentsError,
)
from sqlqueue.exceptions import DatabaseError
from sqlqueue.send_options import SendOptions


def test_every_call_becomes_a_job_with_its_own_arguments(app: SQLQueue, add: Any) -> None:
    results = add.delay_many([(1, 2), [3, 4], {"x": 5, "y": 6}])

    assert len({result.id for result in results}) == 3
    assert count_jobs(app) == 3
    work_off(app)
    assert [result.get(timeout=5) for result in results] == [3, 7, 11]


def test_the_options_apply_to_every_job(app: SQLQueue, add: Any) -> None:
    eta = datetime.now(UTC) + timedelta(hours=1)
    results = add.delay_many([(n, n) for n in range(5)], eta=eta, queue="bulk", priority=7)

    job_ids = [result.id for result in results]
    for job_id in job_ids:
        job = app.store.get_job(job_id)
        assert job is not None
        assert (job.queue, job.priority, job.status) == ("bulk", 7, "PENDING")
        assert abs((job.scheduled_at - eta).total_seconds()) < 0.001
    work_off(app)
    assert count_jobs(app, "status = 'PENDING'") == 5  # not due for an hour


def test_a_countdown_and_an_expiry_count_from_the_send(app: SQLQueue, add: Any) -> None:
    before = datetime.now(UTC)
    (result,) = add.delay_many([(1, 1)], countdown=60, expires=120)
    (other, _) = add.delay_many([(1, 1), (2, 2)], countdown=60, expires=120)

    for job_id in (result.id, other.id):
        job = app.store.get_job(job_id)
        assert job is not None and job.expires_at is not None
        # The database's clock on PostgreSQL, this process's on SQLite: allow some skew.
        assert abs((job.scheduled_at - before).total_seconds() - 60) < 5
        assert abs((job.expires_at - before).total_seconds() - 120) < 5


def test_no_calls_write_nothing(app: SQLQueue, add: Any) -> None:
    assert add.delay_many([]) == []
    assert count_jobs(app) == 0


@pytest.mark.parametrize(
    ("calls", "error", "message"),
    [
        ([(1, 2), (1,)], TaskArgumentsError, "missing a required argument"),
        ([(1, 2), (1, 2, 3)], TaskArgumentsError, "too many positional arguments"),
        ([(1, 2), {"x": 1, "y": 2, "z": 3}], TaskArgumentsError, "unexpected keyword argument"),
        ([(1, 2), 5], TaskArgumentsError, "for a one-argument task write [(5,), ...]"),
        ([(1, 2), "ab"], TaskArgumentsError, "tuple of positional arguments"),
        ([(1, 2), (object(), 1)], SerializationError, "JSON-serialisable"),
        ([(1, 2), ("\x00", 1)], SerializationError, "NUL"),
        ([(1, 2), ("x" * 2_000_000, 1)], InvalidOptionError, "max_payload_bytes"),
    ],
)
def test_one_bad_call_refuses_them_all_before_anything_is_written(
    app: SQLQueue, add: Any, calls: list[Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        add.delay_many(calls)
    assert message in str(raised.value)
    assert count_jobs(app) == 0


@pytest.mark.parametrize("calls", [{"x": 1}, "ab", 5, None])
def test_calls_must_be_a_list(app: SQLQueue, add: Any, calls: Any) -> None:
    with pytest.raises(TaskArgumentsError, match="delay_many takes a list of calls"):
        add.delay_many(calls)
    assert count_jobs(app) == 0


def test_bad_options_refuse_the_send(app: SQLQueue, add: Any) -> None:
    with pytest.raises(InvalidOptionError, match="priority"):
        add.delay_many([(1, 2)], priority=1000)
    with pytest.raises(InvalidOptionError, match="countdown"):
        add.delay_many([(1, 2)], countdown=-1)
    assert count_jobs(app) == 0


def test_a_generator_of_calls_is_accepted(app: SQLQueue, add: Any) -> None:
    results = add.delay_many((n, n) for n in range(4))
    assert len(results) == 4
    assert count_jobs(app) == 4


def test_they_join_the_callers_transaction_all_or_none(app: SQLQueue, add: Any) -> None:
    with app.engine.connect() as conn:
        add.delay_many([(n, n) for n in range(10)], connection=conn)
        assert count_jobs(app) == 0  # invisible to others before the commit
        conn.rollback()
    assert count_jobs(app) == 0

    with app.engine.connect() as conn, app.using(conn):
        add.delay_many([(n, n) for n in range(10)])
        conn.commit()
    assert count_jobs(app) == 10


def test_a_refused_statement_writes_none_of_them(app: SQLQueue, add: Any) -> None:
    # Ids collide with a job already written: the database refuses the whole statement.
    (first,) = add.delay_many([(1, 1)])
    new_jobs = app._new_jobs(None, "t.add", [([2, 2], {}), ([3, 3], {})], SendOptions())
    new_jobs.ids[1] = first.id
    with pytest.raises(DatabaseError):
        app.store.insert_jobs(new_jobs)
    assert count_jobs(app) == 1


def test_eager_mode_runs_each_call_inline(app: SQLQueue, add: Any) -> None:
    app.conf.task_always_eager = True
    results = add.delay_many([(1, 2), (3, 4)])
    assert [result.get() for result in results] == [3, 7]
    assert count_jobs(app) == 0


def test_async_delay_many(app: SQLQueue, add: Any) -> None:
    pytest.importorskip("aiosqlite")
    results = asyncio.run(add.adelay_many([(1, 2), (3, 4), (5, 6)]))
    assert count_jobs(app) == 3
    work_off(app)
    assert [result.get(timeout=5) for result in results] == [3, 7, 11]


def test_many_thousands_in_one_call(app: SQLQueue, add: Any) -> None:
    results = add.delay_many([(n, 1) for n in range(20_000)])
    assert count_jobs(app) == 20_000
    assert len({result.id for result in results}) == 20_000
    job = app.store.get_job(results[12_345].id)
    assert job is not None
    assert (job.args, job.kwargs) == ([12_345, 1], {})


@pytest.mark.postgresql
def test_one_notification_for_the_whole_send(pg_app: SQLQueue, postgres_url: str) -> None:
    @pg_app.task(name="t.job")
    def job(n: int) -> int:
        return n

    with psycopg.connect(postgres_url, autocommit=True) as listener:
        listener.execute("LISTEN sqlqueue")
        job.delay_many([(n,) for n in range(1000)], queue="mail")
        heard = [(n.channel, n.payload) for n in listener.notifies(timeout=1)]
    assert heard == [("sqlqueue", "mail")]


def test_all_or_none_even_on_a_connection_in_autocommit(
    sqlite_template: Path, tmp_path: Path
) -> None:
    # Django's SQLite connection outside atomic() is a sqlite3 connection in autocommit: a
    # send of many jobs must still be one statement, not one commit per job.
    path = tmp_path / "queue.db"
    path.write_bytes(sqlite_template.read_bytes())
    app = SQLQueue(f"sqlite:///{path}")
    add = app.task(name="t.add")(lambda x, y: x + y)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(
            "CREATE TRIGGER fourth_fails BEFORE INSERT ON sqlqueue_jobs"
            " WHEN (SELECT count(*) FROM sqlqueue_jobs) >= 3"
            " BEGIN SELECT RAISE(ABORT, 'the fourth job fails'); END"
        )
        with pytest.raises(DatabaseError, match="the fourth job fails"):
            add.delay_many([(n, n) for n in range(5)], connection=conn)
        assert not conn.in_transaction
    assert count_jobs(app) == 0
    app.engine.dispose()
