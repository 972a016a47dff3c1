"""MySQL and MariaDB (issue 17): what only MySQL has (its migrations, claim indexes, lock
order, isolation and version checks) on a MariaDB database of this module's. The rest of the
suite runs on MariaDB too (``db_url``'s ``[mysql]`` parameter).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from conftest import (
    _with_database,
    mariadb_admin_url,
    sqlqueue_command,
    start_worker,
    stop_worker,
    wait_until,
    work_off,
)
from sqlalchemy.orm import Session
from test_worker_processes import FAST, WorkerProcess, wait_for_lease_to_expire

import sqlqueue.migrate
from sqlqueue import JobStatus, SQLQueue, chain, chord
from sqlqueue.dialects import mysql, mysql_limits
from sqlqueue.dialects.mysql import (
    CLAIM_IN_QUEUE_INDEX,
    CLAIM_INDEX,
    MySQLDialect,
    check_version,
)
from sqlqueue.exceptions import TaskFailedError, UnsupportedDatabaseError
from sqlqueue.jobs import Job
from sqlqueue.limits import KEY_SEPARATOR
from sqlqueue.migrate import VERSION_TABLE
from sqlqueue.outcomes import Outcome
from sqlqueue.purge import purge_queue
from sqlqueue.serialization import Failure

HEAD = ScriptDirectory(str(sqlqueue.migrate.migrations_directory())).get_current_head()

TESTS_DIR = Path(__file__).parent


def take(app: SQLQueue, count: int = 1, lease: float = 30, worker: str = "w1") -> list[Any]:
    return app.store.claim_jobs(count, None, worker, lease=lease)


def job_of(app: SQLQueue, job_id: str) -> Job:
    job = app.store.get_job(job_id)
    assert job is not None, f"no job {job_id}"
    return job


def test_migrate_gives_a_new_database_the_mysql_forms(mysql_app: SQLQueue) -> None:
    with mysql_app.engine.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalar() == HEAD
        table = conn.exec_driver_sql("SHOW CREATE TABLE sqlqueue_jobs").one()[1]
    assert "`id` varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL" in table
    assert "`scheduled_at` datetime(6) NOT NULL" in table
    assert "ENGINE=InnoDB" in table
    assert f"KEY `{CLAIM_INDEX}` (`claim_ready`,`priority` DESC,`scheduled_at`,`id`)" in table
    assert f"KEY `{CLAIM_IN_QUEUE_INDEX}` (`claim_ready`,`queue`,`priority` DESC," in table
    assert "UNIQUE KEY `ix_sqlqueue_jobs_unique` (`unique_unfinished`)" in table
    assert "ix_sqlqueue_jobs_ready" not in table


def test_sqlqueue_migrate_and_alembic_upgrade_run_on_a_new_database(tmp_path: Path) -> None:
    pytest.importorskip("pymysql")
    admin = sa.create_engine(mariadb_admin_url())
    names = [f"sqlqueue_test_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    try:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
        cli, alembic = (_with_database(mariadb_admin_url(), name) for name in names)
        migrated = subprocess.run(
            [*sqlqueue_command(), "migrate", "--url", cli],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrated.returncode == 0, migrated.stderr
        root = TESTS_DIR.parent
        upgraded = subprocess.run(
            [str(Path(sqlqueue_command()[0]).parent / "alembic"), "upgrade", "head"],
            cwd=root,
            env={"SQLQUEUE_DATABASE_URL": alembic, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert upgraded.returncode == 0, upgraded.stderr
        for url in (cli, alembic):
            engine = sa.create_engine(url)
            with engine.connect() as conn:
                version = conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}")
                assert version.scalar() == HEAD
            engine.dispose()
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()


def test_sends_store_their_options_with_microseconds_in_utc(mysql_app: SQLQueue) -> None:
    @mysql_app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    eta = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    at_once = add.delay(1, 2)
    later = add.apply_async(
        (3, 4), countdown=60, priority=7, queue="q2", expires=3600, task_id="Chosen-Id"
    )
    pinned = add.apply_async((5, 6), eta=eta)
    many = add.delay_many([(n, n) for n in range(50)])

    first = mysql_app.store.get_job(at_once.id)
    assert first is not None and first.status is JobStatus.PENDING
    assert first.scheduled_at == first.created_at  # one clock reading: due at once
    assert first.created_at.tzinfo is not None
    chosen = mysql_app.store.get_job("Chosen-Id")
    assert chosen is not None and later.id == "Chosen-Id"
    assert (chosen.priority, chosen.queue, chosen.args) == (7, "q2", [3, 4])
    assert timedelta(seconds=59) < chosen.scheduled_at - chosen.created_at < timedelta(seconds=61)
    assert chosen.expires_at is not None
    assert mysql_app.store.get_job("chosen-id") is None  # ids are compared byte by byte
    eta_job = mysql_app.store.get_job(pinned.id)
    assert eta_job is not None and eta_job.scheduled_at == eta
    assert len(many) == 50
    # Only the jobs due now are taken, highest priority first.
    taken = take(mysql_app, 100)
    assert [job.id for job in taken][:1] == [at_once.id]
    assert {job.id for job in taken} == {at_once.id, *(result.id for result in many)}


def test_a_send_joins_the_callers_transaction(mysql_app: SQLQueue) -> None:
    with mysql_app.engine.connect() as conn:
        with conn.begin() as transaction:
            rolled_back = mysql_app.send_task("t.add", args=[1, 1], connection=conn)
            transaction.rollback()
        with conn.begin():
            committed = mysql_app.send_task("t.add", args=[2, 2], connection=conn)
            # Not visible to others before the commit.
            assert mysql_app.store.get_job(committed.id) is None
    assert mysql_app.store.get_job(rolled_back.id) is None
    assert mysql_app.store.get_job(committed.id) is not None


def test_a_send_joins_the_transaction_of_a_session(mysql_app: SQLQueue) -> None:
    with Session(mysql_app.engine) as session:
        with session.begin():
            rolled_back = mysql_app.send_task("t.add", args=[1, 1], connection=session)
            session.rollback()
        with session.begin():
            committed = mysql_app.send_task("t.add", args=[2, 2], connection=session)
    assert mysql_app.store.get_job(rolled_back.id) is None
    assert mysql_app.store.get_job(committed.id) is not None


def test_revoke_and_expiry_finish_jobs_not_started(mysql_app: SQLQueue) -> None:
    revoked = mysql_app.send_task("t.x")
    expiring = mysql_app.send_task("t.x", expires=0.01)
    running = mysql_app.send_task("t.x", countdown=0)
    assert revoked.revoke() is True
    wait_until(lambda: mysql_app.store.expire_jobs() == 1, 10, "the expiry pass")
    (taken,) = take(mysql_app)
    assert taken.id == running.id
    assert mysql_app.store.revoke_jobs([running.id]) == 0  # running: only with terminate
    assert mysql_app.store.revoke_jobs([running.id], terminate=True) == 1
    jobs = [job_of(mysql_app, result.id) for result in (revoked, expiring, running)]
    assert [job.status for job in jobs] == [JobStatus.REVOKED] * 3
    assert jobs[1].error_type == "Expired"


def test_a_stale_take_writes_nothing(mysql_app: SQLQueue) -> None:
    job_id = mysql_app.send_task("t.job").id
    (first,) = take(mysql_app, lease=0.05)
    wait_until(
        lambda: mysql_app.store.rescue_expired_jobs(max_lease_expiries=3) == 1, 10, "a rescue"
    )
    (second,) = take(mysql_app, worker="w2")
    assert (second.id, second.attempts) == (job_id, 2)
    late, current = (job_id, first.attempts), (job_id, second.attempts)

    assert mysql_app.store.extend_leases([late], lease=300) == set()
    assert mysql_app.store.record_outcomes([(late, Outcome.succeeded(json.dumps("late")))]) == set()
    assert mysql_app.store.record_outcomes([(late, Outcome.retrying(0, None))]) == set()
    assert mysql_app.store.update_progress(late, {"state": "LATE"}) is False
    assert mysql_app.store.extend_leases([current], lease=30) == {current}
    assert mysql_app.store.record_outcomes(
        [
            (late, Outcome.failed(Failure("E", "late", "tb"))),
            (current, Outcome.succeeded(json.dumps("current"))),
        ]
    ) == {current}
    job = mysql_app.store.get_job(job_id)
    assert job is not None
    assert (job.status, job.result, job.worker_id, job.expired_leases) == (
        JobStatus.SUCCESS,
        "current",
        "w2",
        1,
    )


def test_a_batch_of_outcomes_is_written_in_statements_of_bounded_length(
    mysql_app: SQLQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One UPDATE for a whole batch, unless its JSON would outgrow FINISH_CHUNK_BYTES (the
    # server drops a connection whose statement outgrows max_allowed_packet): here every
    # outcome is longer than the bound, so each goes alone; what is stored is the same.
    monkeypatch.setattr(mysql, "FINISH_CHUNK_BYTES", 100)
    finishes: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement == mysql.FINISH_JOBS:
            finishes.append(statement)

    for _ in range(3):
        mysql_app.send_task("t.job")
    first, second, third = take(mysql_app, 3)
    text = json.dumps({"word": 'é 😀 " \\ \u0000', "n": 1.5})
    sa.event.listen(mysql_app.engine, "before_cursor_execute", count)
    try:
        assert mysql_app.store.record_outcomes(
            [
                ((first.id, first.attempts), Outcome.succeeded(text)),
                ((second.id, second.attempts), Outcome.failed(Failure("E", "boom é" * 20, "tb\n"))),
                ((third.id, third.attempts), Outcome.succeeded("null")),
            ]
        ) == {(job.id, job.attempts) for job in (first, second, third)}
    finally:
        sa.event.remove(mysql_app.engine, "before_cursor_execute", count)

    assert len(finishes) == 3
    with mysql_app.engine.connect() as conn:
        stored = {
            row.id: row[1:]
            for row in conn.exec_driver_sql(
                "SELECT id, status, result, error_type, error_message, traceback,"
                " lease_expires_at IS NULL, finished_at IS NOT NULL FROM sqlqueue_jobs"
            )
        }
    assert stored == {
        first.id: ("SUCCESS", text, None, None, None, 1, 1),
        second.id: ("FAILURE", None, "E", "boom é" * 20, "tb\n", 1, 1),
        third.id: ("SUCCESS", "null", None, None, None, 1, 1),
    }
    monkeypatch.undo()
    for _ in range(3):
        mysql_app.send_task("t.job")
    jobs = take(mysql_app, 3)
    sa.event.listen(mysql_app.engine, "before_cursor_execute", count)
    try:
        mysql_app.store.record_outcomes(
            [((job.id, job.attempts), Outcome.succeeded("1")) for job in jobs]
        )
    finally:
        sa.event.remove(mysql_app.engine, "before_cursor_execute", count)
    assert len(finishes) == 4  # the three in one


def test_rescue_requeues_an_expired_lease_then_fails_a_job_that_keeps_losing_it(
    mysql_app: SQLQueue,
) -> None:
    job_id = mysql_app.send_task("t.job").id
    (live,) = take(mysql_app)
    assert mysql_app.store.rescue_expired_jobs(max_lease_expiries=2) == 0
    assert mysql_app.store.release_jobs([(live.id, live.attempts)]) == 1
    for expected in (JobStatus.PENDING, JobStatus.FAILURE):
        take(mysql_app, lease=0.01)
        wait_until(
            lambda: mysql_app.store.rescue_expired_jobs(max_lease_expiries=2) == 1, 10, "a rescue"
        )
        job = mysql_app.store.get_job(job_id)
        assert job is not None and job.status is expected
    assert job.error_type == "WorkerLost"
    assert take(mysql_app) == []


def test_retries_then_success_and_a_failure_in_a_worker(mysql_app: SQLQueue) -> None:
    calls: list[int] = []

    @mysql_app.task(name="t.flaky", bind=True, max_retries=3)
    def flaky(self: Any) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise self.retry(countdown=0)
        return "third time"

    @mysql_app.task(name="t.broken")
    def broken() -> None:
        raise ValueError("broken on purpose")

    retried, failed = flaky.delay(), broken.delay()
    deadline = time.monotonic() + 30
    while job_of(mysql_app, retried.id).status is not JobStatus.SUCCESS:
        assert time.monotonic() < deadline, "the retried job never succeeded"
        work_off(mysql_app)
    assert retried.get(timeout=5) == "third time"
    job = mysql_app.store.get_job(retried.id)
    assert job is not None and job.retries == 2
    with pytest.raises(TaskFailedError, match="ValueError: broken on purpose"):
        failed.get(timeout=5)
    assert failed.status == "FAILURE"


def test_a_burst_worker_process_runs_jobs_to_success(mysql_app: SQLQueue, mysql_url: str) -> None:
    results = [mysql_app.send_task("tasks.add", args=[n, 1]) for n in range(20)]
    failing = mysql_app.send_task("tasks.fail", args=["no luck"])

    worker = start_worker(mysql_url, "--burst", "--concurrency", "2", "--poll-interval", "0.1")
    output, _ = worker.communicate(timeout=120)

    assert worker.returncode == 0, output
    assert [result.get(timeout=5) for result in results] == [n + 1 for n in range(20)]
    assert failing.status == "FAILURE"


def test_worker_processes_run_each_job_exactly_once(
    mysql_app: SQLQueue, mysql_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    count = 300
    processes = [
        start_worker(mysql_url, "--concurrency", "4", "--poll-interval", "0.05") for _ in range(3)
    ]
    try:
        # Every worker polls before the jobs come, and each job takes a moment: the workers
        # claim at the same time, over the same ready jobs.
        wait_until(
            lambda: _live_workers(mysql_app) == len(processes),
            60,
            "the workers to register",
        )
        ids = [mysql_app.send_task("tasks.record", args=[str(log), 0.01]).id for _ in range(count)]

        def all_finished() -> bool:
            with mysql_app.engine.connect() as conn:
                left = conn.exec_driver_sql(
                    "SELECT count(*) FROM sqlqueue_jobs WHERE status <> 'SUCCESS'"
                ).scalar()
            return left == 0

        wait_until(all_finished, 180, f"{count} jobs to succeed")
    finally:
        outputs = [stop_worker(process) for process in processes]
    runs = log.read_text().splitlines()
    run_ids = [line.split()[0] for line in runs]
    assert len(run_ids) == count, outputs
    assert len(set(run_ids)) == count
    assert set(ids) == set(run_ids)
    pids = {line.split()[1] for line in runs}
    assert len(pids) >= 2, "the jobs were not shared among the worker processes"


def _live_workers(app: SQLQueue) -> int:
    with app.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM sqlqueue_workers").scalar_one())


def test_the_claim_reads_the_claim_index_in_order(mysql_app: SQLQueue) -> None:
    for queue in ("a", "b"):
        mysql_app.send_task("t.job", queue=queue)
    dialect = MySQLDialect()
    for statement, index in (
        (dialect.ready_jobs(10, None), CLAIM_INDEX),
        (dialect.ready_jobs(10, "a"), CLAIM_IN_QUEUE_INDEX),
    ):
        compiled = statement.compile(
            dialect=mysql_app.engine.dialect, compile_kwargs={"literal_binds": True}
        )
        with mysql_app.engine.connect() as conn:
            plan = json.loads(conn.exec_driver_sql(f"EXPLAIN FORMAT=JSON {compiled}").scalar_one())
        text = json.dumps(plan)
        assert f'"key": "{index}"' in text, text
        assert '"access_type": "ref"' in text, text  # claim_ready = 1: the ready jobs alone
        assert "filesort" not in text, text  # the index's order is the claim's


def test_a_workflows_waiting_steps_stay_out_of_the_claim_index_until_released(
    mysql_app: SQLQueue,
) -> None:
    @mysql_app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    handle = chain(add.s(1, 1), add.s(2)).delay()
    first = handle.parent
    assert first is not None

    def claim_ready() -> dict[str, int | None]:
        with mysql_app.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT id, claim_ready FROM sqlqueue_jobs")
            return {job_id: ready for job_id, ready in rows}

    assert claim_ready() == {first.id: 1, handle.id: None}
    [taken] = take(mysql_app, count=10)
    assert taken.id == first.id
    mysql_app.store.record_outcomes([((first.id, 1), Outcome.succeeded("2"))], releasing=[first.id])
    assert claim_ready() == {first.id: None, handle.id: 1}
    [released] = take(mysql_app)
    assert released.id == handle.id and released.args == [2, 2]


def test_a_chord_body_receives_results_longer_than_group_concat_max_len(
    mysql_app: SQLQueue,
) -> None:
    # MariaDB cuts a GROUP_CONCAT at 1 MB by default, MySQL at 1 KB: the results are read
    # one row each, never concatenated.
    @mysql_app.task(name="t.text")
    def text(size: int) -> str:
        return "x" * size

    @mysql_app.task(name="t.lengths")
    def lengths(texts: list[str]) -> list[int]:
        return [len(each) for each in texts]

    sizes = [400_000, 400_001, 400_002]
    body = chord([text.s(size) for size in sizes], lengths.s()).delay()
    work_off(mysql_app)

    assert body.get(timeout=10) == sizes


def test_a_chord_body_receives_results_longer_than_max_allowed_packet(
    mysql_app: SQLQueue,
) -> None:
    # Together the header's results outgrow max_allowed_packet (16 MB by default), which
    # bounds any one value the server sends; each result alone fits in it.
    with mysql_app.engine.connect() as conn:
        packet = conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one()

    @mysql_app.task(name="t.text")
    def text(size: int, mark: str) -> str:
        return mark + "x" * size

    @mysql_app.task(name="t.marks")
    def marks(texts: list[str]) -> list[tuple[str, int]]:
        return [(each[:3], len(each)) for each in texts]

    count = 20
    size = packet // count + 1
    assert count * size > packet
    body = chord([text.s(size, f"{n:03}") for n in range(count)], marks.s()).delay()
    work_off(mysql_app)

    assert body.get(timeout=30) == [[f"{n:03}", size + 3] for n in range(count)]


def test_a_requeue_updates_jobs_without_reading_their_table_in_a_subquery(
    mysql_app: SQLQueue,
) -> None:
    # MySQL 8 refuses an UPDATE whose subquery reads the table it changes (error 1093);
    # MariaDB, where this runs, allows it, so the UPDATEs a requeue sends are read instead.
    @mysql_app.task(name="t.fail")
    def fail(n: int) -> None:
        raise ValueError(n)

    keyed = []
    for n in range(2):  # one at a time: each, failed, frees the key for the next
        keyed.append(fail.apply_async((n,), unique_key="k"))
        work_off(mysql_app)
    plain = fail.delay(2)
    work_off(mysql_app)
    updates: list[str] = []

    def watch(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            updates.append(statement)

    sa.event.listen(mysql_app.engine, "before_cursor_execute", watch)
    try:
        requeued = mysql_app.store.requeue_jobs(task_name="t.fail")
    finally:
        sa.event.remove(mysql_app.engine, "before_cursor_execute", watch)

    assert requeued == 2
    assert plain.status == "PENDING"
    keyed.sort(key=lambda job: job.id)
    assert [job.status for job in keyed] == ["PENDING", "FAILURE"]  # the first by id
    assert updates and all("SELECT" not in update.upper() for update in updates), updates


def test_a_revoke_that_loses_a_deadlock_runs_again_and_says_so(
    mysql_app: SQLQueue, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a revoke that holds job a and waits for job b, which another transaction holds,
    # that transaction then asks for a: InnoDB ends the lighter of the two, the revoke (the
    # other has changed many rows).
    for job_id in ("a", "b"):
        mysql_app.send_task("t.x", task_id=job_id)
    for n in range(30):
        mysql_app.send_task("t.filler", task_id=f"filler-{n}")
    caplog.set_level("INFO", logger="sqlqueue.store")
    revoked: list[int] = []
    with mysql_app.engine.connect() as other:
        other.begin()
        other.exec_driver_sql("UPDATE sqlqueue_jobs SET priority = 1 WHERE task_name = 't.filler'")
        other.exec_driver_sql("SELECT id FROM sqlqueue_jobs WHERE id = 'b' FOR UPDATE")
        revoke = threading.Thread(
            target=lambda: revoked.append(mysql_app.store.revoke_jobs(["a", "b"]))
        )
        revoke.start()
        time.sleep(1)  # the revoke holds a and waits for b
        other.exec_driver_sql("SELECT id FROM sqlqueue_jobs WHERE id = 'a' FOR UPDATE")
        other.commit()
    revoke.join(timeout=30)

    # Then the revoke, run again, revoked both, and its first try is in the log.
    assert revoked == [2]
    assert "lock conflict, transaction run again attempt=1 error=(1213" in caplog.text


def test_async_sends_and_reads_go_through_aiomysql_in_utc(mysql_app: SQLQueue) -> None:
    @mysql_app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    eta = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

    async def send_and_read() -> tuple[Any, Any]:
        pinned = await add.aapply_async((1, 2), eta=eta)
        now = await add.adelay(3, 4)
        return await mysql_app.store.aget_job(pinned.id), now

    pinned, now = asyncio.run(send_and_read())
    assert mysql_app.store.async_engine.dialect.driver == "aiomysql"
    assert pinned is not None and pinned.scheduled_at == eta  # to the microsecond, in UTC
    work_off(mysql_app)
    assert asyncio.run(now.aget(timeout=5)) == 7
    done = asyncio.run(mysql_app.store.aget_job(now.id))
    assert done is not None and done.started_at is not None and done.finished_at is not None
    assert done.finished_at.utcoffset() == timedelta(0)  # read back in UTC through aiomysql
    assert done.created_at <= done.started_at <= done.finished_at
    assert abs(mysql_app.store.database_now() - done.finished_at) < timedelta(seconds=60)


def test_limited_and_unique_jobs_are_sent_and_held_to_their_limits(mysql_app: SQLQueue) -> None:
    @mysql_app.task(name="t.limited", concurrency_limit=1)
    def limited() -> None: ...

    first, second = limited.delay(), limited.delay()
    unique = mysql_app.send_task("t.u", unique_key="k")
    again = mysql_app.send_task("t.u", unique_key="k")

    assert (again.duplicate, again.id) == (True, unique.id)
    taken = take(mysql_app, 10)
    assert sorted(job.id for job in taken) == sorted([first.id, unique.id])
    assert take(mysql_app, 10) == []  # the limit's one slot is taken
    assert job_of(mysql_app, second.id).status == JobStatus.PENDING


def test_tasks_whose_names_differ_in_case_have_buckets_of_their_own(mysql_app: SQLQueue) -> None:
    # MySQL's default collation finds "t.A" and "t.a" to be one name; the buckets' names
    # are compared byte by byte (migration 0014), so each task starts its one job.
    @mysql_app.task(name="t.A", rate_limit="1/s")
    def upper() -> None: ...

    @mysql_app.task(name="t.a", rate_limit="1/s")
    def lower() -> None: ...

    upper.delay()
    lower.delay()
    assert sorted(job.task_name for job in take(mysql_app, 10)) == ["t.A", "t.a"]
    with mysql_app.engine.connect() as conn:
        names = conn.execute(sa.text("SELECT task_name FROM sqlqueue_rate_limits")).scalars()
        assert {"t.A", "t.a"} <= set(names)


def test_the_limited_claim_reads_the_limited_indexes_in_order(mysql_app: SQLQueue) -> None:
    # Given many finished jobs with limits, I expect each read of the claim of limited jobs
    # to go straight to the ready (or running) ones of its group, in the order it takes them.
    @mysql_app.task(name="t.limited", concurrency_limit=2)
    def limited(n: int) -> None: ...

    limited.delay_many([(n,) for n in range(50)])
    with mysql_app.engine.begin() as conn:
        conn.execute(sa.text("UPDATE sqlqueue_jobs SET status = 'SUCCESS' WHERE id <> ''"))
    limited.delay_many([(n,) for n in range(3)])
    key = f"t.limited{KEY_SEPARATOR}"
    for statement, index, access in (
        (mysql_limits.next_group(""), mysql_limits.LIMITED_INDEX, "range"),
        (mysql_limits.group_ready_jobs(key, None, 2), mysql_limits.LIMITED_INDEX, "ref"),
        (mysql_limits.group_running_count(key), mysql_limits.LIMITED_RUNNING_INDEX, "ref"),
    ):
        compiled = statement.compile(
            dialect=mysql_app.engine.dialect, compile_kwargs={"literal_binds": True}
        )
        with mysql_app.engine.connect() as conn:  # MariaDB's ANALYZE runs it, and counts
            plan = conn.exec_driver_sql(f"ANALYZE FORMAT=JSON {compiled}").scalar_one()
        text = json.dumps(json.loads(plan, strict=False))  # (the key's separator is in it)
        assert f'"key": "{index}"' in text, text
        assert f'"access_type": "{access}"' in text, text
        assert "filesort" not in text, text
        read = re.findall(r'"r_rows": ([\d.]+)', text)
        assert read and max(float(rows) for rows in read) <= 3, text  # none of the 50 finished


def test_claims_and_finishes_of_limited_jobs_never_deadlock(mysql_app: SQLQueue) -> None:
    # Given six threads that each claim and finish, as fast as they can, jobs of a rate-limited
    # task and of a task with one slot per account, and renew their leases and send more
    # jobs meanwhile, I expect no deadlock or lock wait to be run again, every job to run
    # once, and no account to ever run two jobs at once.
    @mysql_app.task(name="t.rated", rate_limit="200/s")
    def rated(n: int) -> None: ...

    @mysql_app.task(
        name="t.account", concurrency_limit=1, concurrency_key=lambda account, n: str(account)
    )
    def per_account(account: int, n: int) -> None: ...

    rated.delay_many([(n,) for n in range(100)])
    per_account.delay_many([(account, n) for account in range(5) for n in range(20)])
    conflicts: list[BaseException | None] = []
    dialect = mysql_app.store.dialect
    lost_lock_conflict = dialect.lost_lock_conflict

    def counted(error: BaseException | None) -> bool:
        lost = lost_lock_conflict(error)
        if lost:
            conflicts.append(error)
        return lost

    dialect.lost_lock_conflict = counted  # type: ignore[method-assign]
    ran: list[str] = []
    overlaps: list[int] = []
    running: dict[int, int] = {}
    guard = threading.Lock()

    def work(name: str) -> None:
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 1.0:
            taken = mysql_app.store.claim_jobs(3, None, name, 30)
            if not taken:
                time.sleep(0.005)
                continue
            idle_since = time.monotonic()
            accounts = [job.args[0] for job in taken if job.task_name == "t.account"]
            with guard:
                for account in accounts:
                    running[account] = running.get(account, 0) + 1
                    overlaps.append(running[account])
            mysql_app.store.extend_leases([(job.id, job.attempts) for job in taken], 30)
            with guard:
                for account in accounts:
                    running[account] -= 1
            mysql_app.store.record_outcomes(
                [((job.id, job.attempts), Outcome.succeeded(None)) for job in taken]
            )
            ran.extend(job.id for job in taken)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    rated.delay_many([(n,) for n in range(100, 120)])
    for thread in threads:
        thread.join(timeout=120)

    assert conflicts == []
    assert len(ran) == len(set(ran)) == 220
    assert max(overlaps) == 1


def test_purge_deletes_a_queues_ready_jobs_only(mysql_app: SQLQueue) -> None:
    ready = [mysql_app.send_task("t.x", queue="spam").id for _ in range(3)]
    kept = mysql_app.send_task("t.x", queue="mail").id
    (running,) = mysql_app.store.claim_jobs(1, ["spam"], "w", lease=30)

    assert purge_queue(mysql_app.store, "spam") == (2, 0)
    assert [job_id for job_id in ready if mysql_app.store.get_job(job_id)] == [running.id]
    assert mysql_app.store.get_job(kept) is not None


@pytest.mark.parametrize(
    ("version", "supported"),
    [
        ("10.11.19-MariaDB-0+deb12u1", True),
        ("10.6.0-MariaDB", True),
        ("10.5.22-MariaDB", False),
        ("8.0.36", True),
        ("8.0.4-rc-log", True),
        ("8.0.3-rc-log", False),  # SKIP LOCKED, but no JSON_TABLE yet
        ("8.0.0-dmr", False),
        ("5.7.44-log", False),
    ],
)
def test_old_servers_are_refused(version: str, supported: bool) -> None:
    if supported:
        check_version(version)
    else:
        with pytest.raises(UnsupportedDatabaseError, match="needs"):
            check_version(version)


def test_an_app_on_another_database_imports_no_mysql_driver(tmp_path: Path) -> None:
    # Not even to recognise a driver's errors: one nobody imported has raised none. (The
    # queue's tables are missing here, so the read fails and its error is translated.)
    script = (
        "import sys\n"
        "from sqlqueue import SQLQueue\n"
        "from sqlqueue.exceptions import DatabaseError\n"
        f"app = SQLQueue({f'sqlite:///{tmp_path}/queue.db'!r})\n"
        "try:\n"
        "    app.store.get_job('x')\n"
        "except DatabaseError as error:\n"
        "    print('refused:', 'sqlqueue migrate' in str(error))\n"
        "print(sorted({'pymysql', 'MySQLdb'} & sys.modules.keys()))\n"
    )
    imported = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert imported.stdout.split("\n")[:2] == ["refused: True", "[]"]


def test_queue_tables_that_are_not_innodb_are_refused_with_the_fix(mysql_url: str) -> None:
    # Given a database whose jobs table was made by another engine (a server whose
    # default_storage_engine was MyISAM when it was migrated), which has no row locks
    admin = sa.create_engine(mysql_url)
    name = f"sqlqueue_myisam_{uuid.uuid4().hex[:8]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
        conn.exec_driver_sql(f"CREATE TABLE {name}.sqlqueue_jobs (id INT) ENGINE=MyISAM")
    app = SQLQueue(sa.make_url(mysql_url).set(database=name).render_as_string(False))
    try:
        # I expect the first statement to be refused, saying how to convert it
        with pytest.raises(UnsupportedDatabaseError) as refused:
            app.store.get_job("any")
        assert "sqlqueue_jobs (MyISAM)" in str(refused.value)
        assert "ALTER TABLE sqlqueue_jobs ENGINE=InnoDB" in str(refused.value)
    finally:
        app.engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name}")
        admin.dispose()


def test_a_periodic_tick_is_taken_once(mysql_app: SQLQueue) -> None:
    tick = datetime(2026, 1, 1, tzinfo=UTC)
    mysql_app.store.insert_schedule("nightly", "t.x", tick)
    mysql_app.store.insert_schedule(
        "nightly", "t.x", tick + timedelta(hours=1)
    )  # a second scheduler
    assert mysql_app.store.get_schedules(["nightly"])["nightly"].last_tick == tick

    def send(connection: Any) -> str:
        return mysql_app.send_task("t.x", connection=connection).id

    later = tick + timedelta(minutes=1, microseconds=5)
    job_id = mysql_app.store.send_tick("nightly", "t.x", later, send)
    assert job_id is not None
    assert mysql_app.store.send_tick("nightly", "t.x", later, send) is None
    state = mysql_app.store.get_schedules(["nightly"])["nightly"]
    assert (state.last_tick, state.job_id) == (later, job_id)


def test_status_counts_the_queue(mysql_app: SQLQueue, mysql_url: str) -> None:
    mysql_app.send_task("t.x", queue="mail")
    mysql_app.send_task("t.x", queue="mail", countdown=600)
    shown = subprocess.run(
        [*sqlqueue_command(), "status", "--url", mysql_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    (row,) = (line.split() for line in shown.stdout.splitlines() if line.startswith("mail "))
    assert row[1:5] == ["1", "1", "0", "0"]  # ready, scheduled, retrying, running


def isolation_level(conn: sa.Connection) -> str:
    """The connection's isolation level, read by its variable's name on this server: MySQL
    8.0.3 removed ``tx_isolation``, and MariaDB has ``transaction_isolation`` only from 11.1."""
    version = conn.exec_driver_sql("SELECT VERSION()").scalar_one()
    name = "tx_isolation" if "MariaDB" in version else "transaction_isolation"
    return str(conn.exec_driver_sql(f"SELECT @@{name}").scalar_one())


def test_sqlqueues_transactions_run_in_read_committed_on_an_engine_of_the_application(
    mysql_url: str,
) -> None:
    engine = sa.create_engine(mysql_url)  # MySQL's default: REPEATABLE READ
    app = SQLQueue(engine=engine)
    levels: list[str] = []
    try:
        with app.store._write() as conn:  # the transactions of claims, finishes, rescues
            levels.append(isolation_level(conn))
        with engine.connect() as conn:  # the application's own are left as they were
            levels.append(isolation_level(conn))
    finally:
        engine.dispose()
    assert levels == ["READ-COMMITTED", "REPEATABLE-READ"]
    built = SQLQueue(mysql_url).engine  # an engine sqlqueue built: set once per connection
    with built.connect() as conn:
        assert isolation_level(conn) == "READ-COMMITTED"
    built.dispose()


def test_a_transaction_of_sqlqueues_is_run_again_after_a_lock_wait_timeout(
    mysql_app: SQLQueue, mysql_url: str
) -> None:
    # Given a job's row locked by another transaction, and a store whose lock waits time out
    # after a second ...
    mysql_app.send_task("t.x")
    (job,) = take(mysql_app)
    engine = sa.create_engine(
        mysql_url, connect_args={"init_command": "SET SESSION innodb_lock_wait_timeout = 1"}
    )
    store = SQLQueue(engine=engine).store
    holder = mysql_app.engine.connect()
    holder.exec_driver_sql("BEGIN")
    holder.exec_driver_sql("SELECT id FROM sqlqueue_jobs WHERE id = %s FOR UPDATE", (job.id,))
    timed_out: list[int] = []
    first_timeout = threading.Event()

    @sa.event.listens_for(engine, "handle_error")
    def count(context: Any) -> None:
        timed_out.append(context.original_exception.args[0])
        first_timeout.set()

    def release_after_the_first_timeout() -> None:
        first_timeout.wait(30)
        holder.rollback()
        holder.close()

    releaser = threading.Thread(target=release_after_the_first_timeout)
    releaser.start()
    try:
        # ... the renewal waits, times out, runs again and renews the lease.
        assert store.extend_leases([(job.id, job.attempts)], lease=60) == {(job.id, job.attempts)}
    finally:
        first_timeout.set()
        releaser.join()
        engine.dispose()
    assert timed_out and set(timed_out) == {1205}


def test_the_job_of_a_killed_worker_runs_again_on_another(
    mysql_app: SQLQueue, mysql_url: str, tmp_path: Path
) -> None:
    # Given a worker with a 2 s lease running a job that hangs on its first run ...
    markers = tmp_path / "markers"
    markers.mkdir()
    job_id = mysql_app.send_task("tasks.hang_first_time", args=[str(markers)]).id
    first = WorkerProcess(start_worker(mysql_url, "--concurrency", "1", "--lease", "2", *FAST))
    second = None
    try:
        wait_until((markers / job_id).exists, 30, "the job's first run to start")
        assert job_of(mysql_app, job_id).worker_id == first.id
        # ... killed outright: a burst worker started after the lease re-queues and runs it.
        first.send_signal(signal.SIGKILL)
        assert first.wait() == -signal.SIGKILL
        wait_for_lease_to_expire(mysql_app, job_id)
        second = WorkerProcess(start_worker(mysql_url, "--burst", "--lease", "2", *FAST))
        assert second.wait() == 0, second.output
    finally:
        first.close()
        if second is not None:
            second.close()
    job = job_of(mysql_app, job_id)
    assert (job.status, job.attempts, job.expired_leases) == (JobStatus.SUCCESS, 2, 1)
    assert mysql_app.AsyncResult(job_id).get(timeout=1) == 2
    assert "re-queued 1 job(s)" in second.output
