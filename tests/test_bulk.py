"""delay_many: many jobs of one task in one statement, checked like delay, all or nothing."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest
import sqlalchemy as sa
from conftest import count_jobs, work_off

from sqlqueue import (
    InvalidOptionError,
    SerializationError,
    SQLQueue,
    TaskArgumentsError,
)
from sqlqueue.app import new_job_ids
from sqlqueue.autocommit import copy_rest
from sqlqueue.exceptions import DatabaseError, DuplicateJobIdError
from sqlqueue.schema import jobs
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
    with pytest.raises(DuplicateJobIdError):
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


# --- large sends: PostgreSQL writes them with COPY ---------------------------------------------

LARGE = 1000
"""Jobs in a large send: enough for PostgreSQL's COPY (``COPY_MIN_JOBS``)."""

AWKWARD_CALLS: list[tuple[list[Any], dict[str, Any]]] = [
    (["Zoë", "😀", "\u2028", "日本"], {}),
    (["tab\there", "new\nline", "back\\slash", "\\N", "\\.", '"quoted"', "\r"], {}),
    ([{"a": [1, {"b": None, "c": [True, 2.5, -(10**15)]}], "": {}}], {}),
    ([], {"k": {"nested": ["\\"]}, "with\ttab": "\\t"}),
]
"""Arguments the COPY's text format must carry as they are: non-ASCII, its own escapes, nested
JSON, keyword arguments."""

COLUMNS = [column.name for column in jobs.columns if column.name != "id"]
TIMES = ("scheduled_at", "expires_at")


@pytest.mark.postgresql
@pytest.mark.parametrize(
    "options",
    [
        SendOptions(countdown=30, expires=90, queue="mail", priority=5),
        SendOptions(
            eta=datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
            expires=datetime(2030, 2, 3, tzinfo=UTC),
            priority=-3,
        ),
        SendOptions(),
    ],
)
def test_copy_writes_exactly_what_the_insert_writes(pg_app: SQLQueue, options: SendOptions) -> None:
    calls = [*AWKWARD_CALLS, *(([n], {}) for n in range(LARGE - len(AWKWARD_CALLS)))]
    inserted = pg_app._new_jobs(None, "t.any", calls, options)
    copied = replace(inserted, ids=new_job_ids(len(calls)))
    copy = pg_app.dialect.copy_jobs(copied)
    assert copy is not None
    with pg_app.engine.begin() as conn:  # one transaction: the same statement_timestamp()
        insert = pg_app.dialect.insert_jobs(inserted)
        conn.exec_driver_sql(insert.sql, insert.params)
        shared = conn.exec_driver_sql(copy.before.sql, copy.before.params).one()
        copy_rest(cast(psycopg.Connection[Any], conn.connection.driver_connection), copy, shared)

    def rows(ids: list[str]) -> list[tuple[Any, ...]]:
        # Each statement has its own statement_timestamp(): times are compared as offsets
        # from the job's created_at (and exactly, for those given as datetimes).
        with pg_app.engine.connect() as conn:
            found = {
                str(row.id): tuple(
                    getattr(row, name) - row.created_at
                    if name in TIMES and options.eta is None and getattr(row, name) is not None
                    else getattr(row, name)
                    for name in COLUMNS
                    if name != "created_at"
                )
                for row in conn.execute(sa.select(jobs).where(jobs.c.id.in_(ids)))
            }
        return [found[job_id] for job_id in ids]

    copied_rows = rows(copied.ids)
    assert copied_rows == rows(inserted.ids)
    assert [row[COLUMNS.index("args")] for row in copied_rows[:4]] == [
        args for args, _ in AWKWARD_CALLS
    ]


@pytest.mark.postgresql
def test_a_large_send_is_written_by_copy(pg_app: SQLQueue) -> None:
    @pg_app.task(name="t.echo")
    def echo(*values: Any, **named: Any) -> Any:
        return values, named

    results = echo.delay_many(
        [tuple(args) if not kwargs else kwargs for args, kwargs in AWKWARD_CALLS] * (LARGE // 4)
    )
    assert pg_app.dialect.copy_jobs(
        pg_app._new_jobs(None, "t.echo", [([1], {})] * LARGE, SendOptions())
    )
    for result, (args, kwargs) in zip(results[:4], AWKWARD_CALLS, strict=True):
        job = pg_app.store.get_job(result.id)
        assert job is not None
        assert (job.args, job.kwargs) == (args, kwargs)
    assert count_jobs(pg_app) == LARGE


def test_a_large_sends_ids_ascend_in_call_order(app: SQLQueue, add: Any) -> None:
    # Equal in priority and time, the jobs of one send are taken in call order.
    ids = [result.id for result in add.delay_many([(n, n) for n in range(LARGE)])]
    assert ids == sorted(ids)
    assert all(uuid.UUID(job_id).version == 7 for job_id in ids)


@pytest.mark.parametrize("bad", [0, LARGE // 2, LARGE - 1])
def test_one_bad_call_anywhere_in_a_large_send_writes_nothing(
    app: SQLQueue, add: Any, bad: int
) -> None:
    calls: list[Any] = [(n, n) for n in range(LARGE)]
    calls[bad] = (object(), 1)
    with pytest.raises(SerializationError):
        add.delay_many(calls)
    assert count_jobs(app) == 0


def test_a_large_send_the_database_refuses_writes_none_of_them(
    app: SQLQueue, add: Any, db_url: str
) -> None:
    (first,) = add.delay_many([(1, 1)])
    new_jobs = app._new_jobs(None, "t.add", [([n, n], {}) for n in range(LARGE)], SendOptions())
    new_jobs.ids[LARGE - 1] = first.id  # the last row collides with a job already written
    with listening(db_url) as heard:
        with pytest.raises(DuplicateJobIdError):
            app.store.insert_jobs(new_jobs)
        assert heard() == []  # no worker was woken for it
    assert count_jobs(app) == 1


@pytest.mark.postgresql
@pytest.mark.parametrize("autocommit", [True, False])
def test_a_large_send_on_a_psycopg_connection_is_all_or_nothing(
    pg_app: SQLQueue, postgres_url: str, autocommit: bool
) -> None:
    add = pg_app.task(name="t.add")(lambda x, y: x + y)
    (first,) = add.delay_many([(1, 1)])
    new_jobs = pg_app._new_jobs(None, "t.add", [([n, n], {}) for n in range(LARGE)], SendOptions())
    new_jobs.ids[LARGE - 1] = first.id
    with psycopg.connect(postgres_url, autocommit=autocommit) as conn:
        with pytest.raises(DuplicateJobIdError):
            pg_app.store.insert_jobs(new_jobs, conn)
        status = psycopg.pq.TransactionStatus
        if autocommit:  # the send's own transaction, rolled back
            assert conn.info.transaction_status is status.IDLE
        else:  # the caller's, back to where it was before the send: theirs to go on with
            assert conn.info.transaction_status is status.INTRANS
            conn.rollback()
        assert count_jobs(pg_app) == 1
        add.delay_many([(n, n) for n in range(LARGE)], connection=conn)
        if not autocommit:
            assert count_jobs(pg_app) == 1
            conn.commit()
    assert count_jobs(pg_app) == 1 + LARGE


@pytest.mark.postgresql
@pytest.mark.parametrize("kind", ["sqlalchemy", "psycopg"])
def test_a_large_send_refused_halfway_leaves_the_callers_transaction_as_it_was(
    pg_app: SQLQueue, postgres_url: str, kind: str
) -> None:
    # The arguments of a large send are checked as its COPY streams: a bad call halfway
    # comes after rows were sent, and must take only those with it.
    add = pg_app.task(name="t.add")(lambda x, y: x + y)
    calls: list[Any] = [(n, n) for n in range(LARGE)]
    calls[LARGE // 2] = ("\x00", 1)
    with contextlib.ExitStack() as stack:
        if kind == "sqlalchemy":
            conn: Any = stack.enter_context(pg_app.engine.connect())
        else:
            conn = stack.enter_context(psycopg.connect(postgres_url))
        (kept,) = add.delay_many([(1, 1)], connection=conn)
        with pytest.raises(SerializationError, match="NUL"):
            add.delay_many(calls, connection=conn)
        add.delay_many([(2, 2)] * LARGE, connection=conn)  # the transaction goes on
        conn.commit()
    assert count_jobs(pg_app) == 1 + LARGE
    assert pg_app.AsyncResult(kept.id).status == "PENDING"


@pytest.mark.postgresql
def test_a_large_send_wakes_listeners_at_the_commit_only(
    pg_app: SQLQueue, postgres_url: str
) -> None:
    add = pg_app.task(name="t.add")(lambda x, y: x + y)
    with listening(postgres_url) as heard, pg_app.engine.connect() as conn:
        add.delay_many([(n, n) for n in range(LARGE)], queue="bulk", connection=conn)
        assert heard() == []
        conn.rollback()
        assert heard() == []
        add.delay_many([(n, n) for n in range(LARGE)], queue="bulk", connection=conn)
        conn.commit()
        assert heard() == [("sqlqueue", "bulk")]


def test_a_large_async_send(app: SQLQueue, add: Any) -> None:
    pytest.importorskip("aiosqlite")
    results = asyncio.run(add.adelay_many([(n, n) for n in range(LARGE)]))
    assert count_jobs(app) == LARGE
    job = app.store.get_job(results[-1].id)
    assert job is not None and job.args == [LARGE - 1, LARGE - 1]


@contextlib.contextmanager
def listening(db_url: str) -> Iterator[Callable[[], list[tuple[str, str]]]]:
    """What the sqlqueue channel carried so far, read on demand (nothing on SQLite)."""
    if not db_url.startswith("postgresql"):
        yield list
        return
    with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as listener:
        listener.execute("LISTEN sqlqueue")
        yield lambda: [(n.channel, n.payload) for n in listener.notifies(timeout=0.5)]
