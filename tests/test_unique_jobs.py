"""Unique jobs (API.md §9.2): at most one unfinished job per key, held by a partial unique
index (on MySQL, a unique index on a generated column), so that a duplicate send writes nothing and answers with the job that holds the key,
even from two open transactions at once; the key frees when the job finishes."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from typing import Any

import aiomysql
import aiosqlite
import psycopg
import pytest
import sqlalchemy as sa
from conftest import TESTS_DIR, work_off
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from sqlqueue import DuplicateJobIdError, InvalidOptionError, JobStatus, SQLQueue
from sqlqueue.jobs import NewJobs
from sqlqueue.outcomes import Outcome
from sqlqueue.unique import call_key


def job_count(app: SQLQueue) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM sqlqueue_jobs")).scalar_one())


def keys_of(app: SQLQueue) -> dict[str, str | None]:
    with app.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, unique_key FROM sqlqueue_jobs"))
        return {row.id: row.unique_key for row in rows}


def test_a_duplicate_send_answers_with_the_unfinished_job_and_writes_nothing(
    app: SQLQueue, add: Any
) -> None:
    first = add.apply_async((1, 2), unique_key="sync-account-42")
    second = add.apply_async((5, 6), unique_key="sync-account-42")
    plain = add.delay(1, 2)

    assert first.duplicate is False
    assert second.duplicate is True
    assert second.id == first.id
    assert plain.duplicate is False
    assert keys_of(app) == {first.id: "sync-account-42", plain.id: None}
    assert app.store.get_job(first.id).args == [1, 2]  # type: ignore[union-attr]


def test_the_key_is_free_again_once_the_job_has_finished(app: SQLQueue, add: Any) -> None:
    first = add.apply_async((1, 2), unique_key="nightly")
    work_off(app)
    assert first.get(timeout=5) == 3

    again = add.apply_async((1, 2), unique_key="nightly")

    assert again.duplicate is False
    assert again.id != first.id
    assert job_count(app) == 2


def test_a_worker_moves_a_unique_job_through_its_live_states_without_a_conflict(
    app: SQLQueue,
) -> None:
    # PENDING -> STARTED -> RETRY -> PENDING -> STARTED -> SUCCESS, one row per key
    # throughout (river #619): the index holds every live state, so no move leaves it.
    attempts: list[int] = []

    @app.task(name="t.flaky", bind=True, default_retry_delay=0)
    def flaky(self: Any) -> str:
        attempts.append(self.request.retries)
        if len(attempts) == 1:
            raise self.retry(countdown=0)
        return "done"

    result = flaky.apply_async(unique_key="flaky")
    work_off(app)

    assert result.get(timeout=5) == "done"
    assert attempts == [0, 1]
    assert result.status == JobStatus.SUCCESS
    assert flaky.apply_async(unique_key="flaky").duplicate is False


def test_a_unique_task_keys_each_call_by_its_arguments(app: SQLQueue) -> None:
    @app.task(name="t.sync", unique=True)
    def sync(account: int, full: bool = False) -> None:
        pass

    first = sync.delay(42)
    same = sync.apply_async((42,))
    other = sync.delay(43)
    by_keyword = sync.apply_async(kwargs={"account": 42})  # another call's JSON, another key

    assert (first.duplicate, same.duplicate, other.duplicate) == (False, True, False)
    assert same.id == first.id
    assert other.id != first.id
    assert by_keyword.duplicate is False
    assert keys_of(app)[first.id] == "t.sync:[[42],{}]"
    assert keys_of(app)[by_keyword.id] == 't.sync:[[],{"account":42}]'
    chosen = sync.apply_async((42,), unique_key="mine")  # unique_key= overrides the task's
    assert chosen.duplicate is False
    assert job_count(app) == 4


def test_a_call_key_sorts_keyword_arguments_and_hashes_long_calls() -> None:
    assert call_key("t.x", [1], {"b": 2, "a": 1}) == call_key("t.x", [1], {"a": 1, "b": 2})
    long = call_key("t.x", ["y" * 300], {})
    assert len(long) <= 255
    assert long.startswith("t.x:sha256:")
    assert long != call_key("t.x", ["y" * 301], {})


def test_delay_many_collapses_calls_of_one_key(app: SQLQueue) -> None:
    @app.task(name="t.sync", unique=True)
    def sync(account: int) -> None:
        pass

    held = sync.delay(1)
    results = sync.delay_many([(1,), (2,), (2,), (3,), (2,)])

    assert [result.duplicate for result in results] == [True, False, True, False, True]
    assert results[0].id == held.id
    assert results[1].id == results[2].id == results[4].id
    assert len({result.id for result in results}) == 3
    assert job_count(app) == 3
    assert sync.delay_many([]) == []


def test_delay_many_with_one_unique_key_writes_one_job(app: SQLQueue, add: Any) -> None:
    results = add.delay_many([(n, n) for n in range(1500)], unique_key="one")  # past COPY's size

    assert [result.duplicate for result in results[:2]] == [False, True]
    assert {result.id for result in results} == {results[0].id}
    assert job_count(app) == 1


def test_a_unique_task_sends_thousands_of_distinct_calls_in_one_statement(app: SQLQueue) -> None:
    @app.task(name="t.sync", unique=True)
    def sync(account: int) -> None:
        pass

    results = sync.delay_many([(n,) for n in range(1500)])
    again = sync.delay_many([(n,) for n in range(1499, 1502)])

    assert not any(result.duplicate for result in results)
    assert [result.duplicate for result in again] == [True, False, False]
    assert again[0].id == results[-1].id
    assert job_count(app) == 1502


@pytest.mark.parametrize("key", ["", "k" * 256, 42, "a\0b"])
def test_a_malformed_key_is_refused(app: SQLQueue, add: Any, key: Any) -> None:
    with pytest.raises(InvalidOptionError, match="unique key is a string of 1 to 255"):
        add.apply_async((1, 2), unique_key=key)
    assert job_count(app) == 0


def test_a_workflow_refuses_unique_keys_and_unique_tasks(app: SQLQueue, add: Any) -> None:
    @app.task(name="t.sync", unique=True)
    def sync(account: int) -> None:
        pass

    with pytest.raises(InvalidOptionError, match="not supported in workflows yet"):
        add.s(1, 2).set(unique_key="k")
    with pytest.raises(InvalidOptionError, match="not supported in workflows yet"):
        add.apply_async((1, 2), unique_key="k", link=add.s(3))
    with pytest.raises(InvalidOptionError, match="not supported in workflows yet"):
        (sync.s(1) | add.si(1, 2)).apply_async()
    assert job_count(app) == 0
    assert sync.s(1).apply_async().duplicate is False  # one job alone is a plain send


def test_an_eager_send_runs_as_usual(app: SQLQueue, add: Any) -> None:
    app.conf.task_always_eager = True
    first = add.apply_async((1, 2), unique_key="k")
    second = add.apply_async((1, 2), unique_key="k")

    assert (first.get(), second.get()) == (3, 3)
    assert first.duplicate is second.duplicate is False
    assert job_count(app) == 0


def test_an_async_send_of_its_own_answers_with_the_unfinished_job(app: SQLQueue) -> None:

    @app.task(name="t.sync", unique=True)
    def sync(account: int) -> None:
        pass

    async def send() -> list[Any]:
        first = await sync.adelay(1)
        again = await sync.aapply_async((1,))
        many = await sync.adelay_many([(1,), (2,), (2,)])
        return [first, again, *many]

    first, again, *many = asyncio.run(send())

    assert [result.duplicate for result in (first, again, *many)] == [
        False,
        True,
        True,
        False,
        True,
    ]
    assert again.id == many[0].id == first.id
    assert many[1].id == many[2].id
    assert job_count(app) == 2


@pytest.mark.parametrize("kind", ["AsyncConnection", "AsyncSession", "driver"])
def test_an_async_send_in_the_callers_transaction(
    app: SQLQueue, add: Any, db_url: str, kind: str
) -> None:
    url = sa.make_url(db_url)
    backend = url.get_backend_name()

    async def in_transaction() -> list[Any]:
        if kind == "driver":
            if backend == "sqlite":
                conn: Any = await aiosqlite.connect(url.database or "")
                await conn.execute("BEGIN")
            elif backend == "mysql":
                conn = await aiomysql.connect(
                    host=url.host, port=url.port or 3306, user=url.username, db=url.database
                )
            else:
                conn = await psycopg.AsyncConnection.connect(db_url)
            try:
                sent = [await add.aapply_async((1, 2), unique_key="k", connection=conn)]
                sent.append(await add.aapply_async((3, 4), unique_key="k", connection=conn))
                await conn.commit()
            finally:
                await conn.ensure_closed() if backend == "mysql" else await conn.close()
            return sent
        driver = {
            "sqlite": "sqlite+aiosqlite",
            "mysql": "mysql+aiomysql",
            "postgresql": "postgresql+psycopg",
        }[backend]
        engine = create_async_engine(url.set(drivername=driver))
        try:
            if kind == "AsyncConnection":
                async with engine.connect() as conn:
                    sent = [await add.aapply_async((1, 2), unique_key="k", connection=conn)]
                    sent.append(await add.aapply_async((3, 4), unique_key="k", connection=conn))
                    await conn.commit()
            else:
                async with AsyncSession(engine) as session:
                    sent = [await add.aapply_async((1, 2), unique_key="k", connection=session)]
                    sent.append(await add.aapply_async((3, 4), unique_key="k", connection=session))
                    await session.commit()
        finally:
            await engine.dispose()
        return sent

    first, second = asyncio.run(in_transaction())

    assert (first.duplicate, second.duplicate, second.id) == (False, True, first.id)
    assert keys_of(app) == {first.id: "k"}


def test_a_duplicate_inside_the_callers_transaction(app: SQLQueue, add: Any) -> None:
    with app.engine.connect() as conn:
        with conn.begin():
            first = add.apply_async((1, 2), unique_key="k", connection=conn)
            second = add.apply_async((1, 2), unique_key="k", connection=conn)
            assert (first.duplicate, second.duplicate) == (False, True)
            assert second.id == first.id
        with conn.begin() as transaction:
            fresh = add.apply_async((1, 2), unique_key="other", connection=conn)
            transaction.rollback()
    assert keys_of(app) == {first.id: "k"}
    assert fresh.duplicate is False


def test_a_duplicate_through_a_sqlite3_connection(tmp_path: Any, db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("the DB-API connection of SQLite")
    app = SQLQueue(db_url)
    add = add_task(app)
    conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    first = add.apply_async((1, 2), unique_key="k", connection=conn)
    second = add.apply_async((1, 2), unique_key="k", connection=conn)
    conn.commit()
    conn.close()
    assert (first.duplicate, second.duplicate, second.id) == (False, True, first.id)
    assert job_count(app) == 1
    app.engine.dispose()


def add_task(app: SQLQueue) -> Any:
    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    return add


def send_the_key_twice_at_once(
    add: Any, one: Any, two: Any | None, first_commits: bool
) -> tuple[Any, Any]:
    """Send the key "race" on ``one``, left open, then again on ``two`` (None: in a transaction
    of sqlqueue's own) from another thread, which must wait; then commit ``one`` or roll it
    back. Both sends' results; ``two`` is left for the caller to commit."""
    first = add.apply_async((1, 2), unique_key="race", connection=one)
    answers: list[Any] = []
    sender = threading.Thread(
        target=lambda: answers.append(add.apply_async((3, 4), unique_key="race", connection=two))
    )
    sender.start()
    time.sleep(0.5)
    assert sender.is_alive()  # waits on the first transaction's index entry
    assert not answers
    one.commit() if first_commits else one.rollback()
    sender.join(timeout=10)
    (second,) = answers
    return first, second


@pytest.mark.postgresql
@pytest.mark.parametrize("first_commits", [True, False])
def test_a_concurrent_sender_waits_for_the_first_transaction(
    pg_app: SQLQueue, postgres_url: str, first_commits: bool
) -> None:
    add = add_task(pg_app)
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as one, psycopg.connect(url) as two:
        first, second = send_the_key_twice_at_once(add, one, two, first_commits)
        two.commit()

    if first_commits:
        assert (second.duplicate, second.id) == (True, first.id)
    else:
        assert second.duplicate is False
        assert second.id != first.id
    assert keys_of(pg_app) == {(first if first_commits else second).id: "race"}


@pytest.mark.postgresql
def test_a_concurrent_sender_in_autocommit_gets_the_committed_job(
    pg_app: SQLQueue, postgres_url: str
) -> None:
    # The second send is the app's own (autocommit): the statement that waited cannot see
    # the job committed meanwhile, and the store asks again.
    add = add_task(pg_app)
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as one:
        first, second = send_the_key_twice_at_once(add, one, None, first_commits=True)

    assert (second.duplicate, second.id) == (True, first.id)
    assert job_count(pg_app) == 1


@pytest.mark.mysql
@pytest.mark.parametrize("first_commits", [True, False])
@pytest.mark.parametrize("isolation", ["READ COMMITTED", "REPEATABLE READ"])
@pytest.mark.parametrize("own", [False, True], ids=["callers", "own"])
def test_a_concurrent_sender_waits_for_the_first_transaction_on_mysql(
    mysql_app: SQLQueue, mysql_url: str, first_commits: bool, isolation: str, own: bool
) -> None:
    # Given a send of a key left open in one transaction, I expect a second send of the key,
    # in a transaction of the application's (in either isolation level) or in one of
    # sqlqueue's own, to wait for it, then answer with its job if it commits, or write its
    # own if it rolls back; one job either way.
    add = add_task(mysql_app)
    engine = sa.create_engine(mysql_url, isolation_level=isolation)
    with engine.connect() as one, engine.connect() as two:
        first, second = send_the_key_twice_at_once(add, one, None if own else two, first_commits)
        two.commit()
    engine.dispose()

    if first_commits:
        assert (second.duplicate, second.id) == (True, first.id)
    else:
        assert second.duplicate is False
        assert second.id != first.id
    assert keys_of(mysql_app) == {(first if first_commits else second).id: "race"}


@pytest.mark.mysql
def test_a_sender_whose_snapshot_predates_the_holder_finds_it_on_mysql(
    mysql_app: SQLQueue, mysql_url: str
) -> None:
    add = add_task(mysql_app)
    # Given an application's REPEATABLE READ transaction that read before another sender
    # committed a job of the key, I expect its send of the key to answer with that job,
    # which its snapshot does not show.
    engine = sa.create_engine(mysql_url, isolation_level="REPEATABLE READ")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM sqlqueue_jobs")).scalar_one() == 0
        holder = add.apply_async((1, 2), unique_key="k")  # committed after the snapshot
        again = add.apply_async((3, 4), unique_key="k", connection=conn)
        assert conn.execute(sa.text("SELECT count(*) FROM sqlqueue_jobs")).scalar_one() == 0
        conn.commit()
    engine.dispose()
    assert (again.duplicate, again.id) == (True, holder.id)
    assert job_count(mysql_app) == 1


@pytest.mark.mysql
@pytest.mark.parametrize("isolation", ["READ COMMITTED", "REPEATABLE READ"])
def test_a_duplicate_send_leaves_its_holder_unlocked_for_the_worker_on_mysql(
    mysql_app: SQLQueue, mysql_url: str, isolation: str
) -> None:
    # Given job "2" holding key a and job "1" holding key b, both running in one worker, an
    # application's open transaction that sends a (a duplicate of "2") while the worker
    # records both outcomes (locking "1", then "2"), then sends b: I expect the worker not
    # to wait for the application, no deadlock, and the application's rows kept.
    add = add_task(mysql_app)
    add.apply_async((1, 2), unique_key="a", task_id="2")
    add.apply_async((1, 2), unique_key="b", task_id="1")
    taken = mysql_app.store.claim_jobs(2, None, "w1", lease=60)
    assert sorted(job.id for job in taken) == ["1", "2"]
    engine = sa.create_engine(mysql_url, isolation_level=isolation)
    recorded: list[set[Any]] = []
    with engine.connect() as conn:
        own = add.apply_async((5, 6), connection=conn)  # the application's row
        assert add.apply_async((3, 4), unique_key="a", connection=conn).id == "2"
        recorder = threading.Thread(
            target=lambda: recorded.append(
                mysql_app.store.record_outcomes(
                    [((job.id, job.attempts), Outcome.succeeded("3")) for job in taken]
                )
            )
        )
        recorder.start()
        recorder.join(timeout=10)
        assert recorded == [{("1", 1), ("2", 1)}]  # it did not wait for the application
        again = add.apply_async((3, 4), unique_key="b", connection=conn)
        conn.commit()
    engine.dispose()
    if isolation == "READ COMMITTED":
        assert again.duplicate is False  # job "1" had finished, so b was free
    else:  # the snapshot, taken at the first send, shows job "1" unfinished
        assert (again.duplicate, again.id) == (True, "1")
    assert keys_of(mysql_app).keys() == {"1", "2", own.id, again.id}


@pytest.mark.mysql
@pytest.mark.parametrize("isolation", ["READ COMMITTED", "REPEATABLE READ"])
def test_an_open_send_keeps_no_other_key_waiting_on_mysql(
    mysql_app: SQLQueue, mysql_url: str, isolation: str
) -> None:
    # Given an application's open transaction that sent key c, next to held and free keys
    # in the index, I expect sends of other keys, around c, not to wait for it.
    add = add_task(mysql_app)
    for key in ("b", "d"):
        add.apply_async((1, 2), unique_key=key)
    engine = sa.create_engine(mysql_url, isolation_level=isolation)
    with engine.connect() as conn:
        conn.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = 1")
        add.apply_async((1, 2), unique_key="c", connection=conn)  # left open
        for key in ("c2", "a", "e", "bb"):
            assert add.apply_async((3, 4), unique_key=key).duplicate is False
        assert add.apply_async((3, 4), unique_key="d").duplicate is True
        conn.rollback()
    engine.dispose()
    assert sorted(keys_of(mysql_app).values()) == ["a", "b", "bb", "c2", "d", "e"]


@pytest.mark.mysql
def test_keys_differing_by_trailing_spaces_are_one_key_on_mysql(mysql_app: SQLQueue) -> None:
    # utf8mb4_bin pads with spaces, so the unique index holds "k" and "k " as one key: I
    # expect a send of "k " to be a duplicate of the job of "k", in one delay_many too.
    add = add_task(mysql_app)
    holder = add.apply_async((1, 2), unique_key="k")
    again = add.apply_async((3, 4), unique_key="k ")
    assert (again.duplicate, again.id) == (True, holder.id)
    # (A task's call keys end in "}" or a digest; keys of one send come to the store thus.)
    sent = NewJobs(
        task_name="t.add",
        queue="default",
        priority=0,
        eta=None,
        countdown=0.0,
        expires_at=None,
        expires_in=None,
        ids=["m1", "m2", "m3"],
        calls=[((1, 1), {})] * 3,
        max_payload_bytes=1_000_000,
        unique_keys=["m ", "m", "k  "],
    )
    holders = mysql_app.store.insert_unique_jobs(sent)
    assert holders == {"m ": "m1", "m": "m1", "k  ": holder.id}
    assert keys_of(mysql_app) == {holder.id: "k", "m1": "m "}


@pytest.mark.mysql
def test_an_async_send_of_its_own_runs_again_after_a_lock_wait_timeout_on_mysql(
    mysql_app: SQLQueue, mysql_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an open transaction that sent key k, and an app whose lock waits time out after
    # a second, I expect an async send of k in a transaction of sqlqueue's own to wait, time
    # out, run again as the sync send does, and answer with k's job once that commits.
    url = sa.make_url(mysql_url).update_query_dict(
        {"init_command": "SET SESSION innodb_lock_wait_timeout = 1"}
    )
    app = SQLQueue(url.render_as_string(hide_password=False))
    add = add_task(app)
    caplog.set_level("INFO", logger="sqlqueue.store")
    timed_out = threading.Event()
    sa.event.listen(app.store.async_engine.sync_engine, "handle_error", lambda _: timed_out.set())
    with mysql_app.engine.connect() as conn:
        first = add.apply_async((1, 2), unique_key="k", connection=conn)  # left open

        def commit_after_the_first_timeout() -> None:
            timed_out.wait(30)
            conn.commit()

        committer = threading.Thread(target=commit_after_the_first_timeout)
        committer.start()
        try:
            again = asyncio.run(add.aapply_async((3, 4), unique_key="k"))
        finally:
            timed_out.set()
            committer.join()
    asyncio.run(app.store.async_engine.dispose())
    app.engine.dispose()
    assert (again.duplicate, again.id) == (True, first.id)
    assert "lock conflict, transaction run again attempt=1 error=(1205" in caplog.text
    assert job_count(mysql_app) == 1


@pytest.mark.mysql
def test_the_unique_index_refuses_a_second_unfinished_job_of_a_key_on_mysql(
    mysql_app: SQLQueue,
) -> None:
    # The database itself holds the rule, whatever writes the rows: its unique index holds
    # the key of each unfinished job, and nothing for a finished one; keys are compared
    # byte by byte.
    add = add_task(mysql_app)
    holder = add.apply_async((1, 2), unique_key="Key")
    insert = sa.text(
        "INSERT INTO sqlqueue_jobs (id, task_name, queue, priority, args, kwargs, status,"
        " scheduled_at, created_at, unique_key) VALUES (:id, 't.add', 'default', 0, '[]',"
        " '{}', :status, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), :key)"
    )
    with mysql_app.engine.begin() as conn, pytest.raises(sa.exc.IntegrityError) as refused:
        conn.execute(insert, {"id": "second", "status": "PENDING", "key": "Key"})
    assert refused.value.orig.args[0] == 1062  # type: ignore[union-attr]
    assert "ix_sqlqueue_jobs_unique" in str(refused.value)
    with mysql_app.engine.begin() as conn:
        conn.execute(insert, {"id": "finished", "status": "SUCCESS", "key": "Key"})
        conn.execute(insert, {"id": "other case", "status": "PENDING", "key": "key"})
    assert add.apply_async((1, 2), unique_key="key").id == "other case"
    assert add.apply_async((1, 2), unique_key="Key").id == holder.id
    with pytest.raises(DuplicateJobIdError):  # a taken id: refused, as on the other databases
        add.apply_async((1, 2), unique_key="free", task_id="finished")
    assert job_count(mysql_app) == 3


def test_retry_of_failed_jobs_brings_back_one_job_per_free_key(app: SQLQueue) -> None:
    @app.task(name="t.fail", max_retries=0)
    def fail(n: int) -> None:
        raise ValueError("no")

    failed = [fail.apply_async((0,), unique_key="k")]
    work_off(app)
    failed.append(fail.apply_async((1,), unique_key="k"))
    work_off(app)
    failed.append(fail.apply_async((2,), unique_key="k"))  # the key is free again
    work_off(app)
    held = fail.apply_async((3,), unique_key="held")
    held_failed = fail.apply_async((4,), unique_key="held2")
    work_off(app)
    holder = fail.apply_async((5,), unique_key="held2")  # unfinished, holds the key

    assert [result.status for result in failed] == ["FAILURE"] * 3
    assert app.store.requeue_jobs(task_name="t.fail") == 2  # one of "k", and "held"

    statuses = {result.id: result.status for result in (*failed, held, held_failed, holder)}
    first_of_k = min(result.id for result in failed)
    assert statuses == {
        **{result.id: "FAILURE" for result in failed if result.id != first_of_k},
        first_of_k: "PENDING",
        held.id: "PENDING",
        held_failed.id: "FAILURE",
        holder.id: "PENDING",
    }


def test_eight_processes_racing_one_key_with_random_rollbacks_leave_one_live_job(
    app: SQLQueue, db_url: str
) -> None:
    start = time.time() + 2  # once every sender has imported sqlqueue
    senders = [
        subprocess.Popen(
            [sys.executable, "unique_race.py", db_url, str(start), str(seed)],
            cwd=TESTS_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(8)
    ]
    committed = []
    for sender in senders:
        output, errors = sender.communicate(timeout=120)
        assert sender.returncode == 0, errors
        committed += [line.split() for line in output.splitlines()]

    assert committed  # some sends committed (each sender commits half, at random)
    written = {job_id for job_id, duplicate in committed if duplicate == "False"}
    assert len(written) == 1  # nothing finished the job, so its key stayed taken
    assert {job_id for job_id, _ in committed} == written
    assert keys_of(app) == {written.pop(): "race"}
