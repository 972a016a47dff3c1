"""Jobs that expire unstarted, pruning of finished jobs, and re-queueing failed ones."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import count_jobs, on_a_terminal, sqlqueue_command, work_off

import sqlqueue.store
from sqlqueue import JobStatus, SQLQueue
from sqlqueue.exceptions import InvalidOptionError, JobNotFoundError, TaskRevokedError
from sqlqueue.schema import jobs


def age_finished_jobs(app: SQLQueue, seconds: float) -> None:
    """Pretend every finished job finished ``seconds`` ago."""
    with app.engine.begin() as conn:
        conn.execute(
            jobs.update()
            .where(jobs.c.finished_at.is_not(None))
            .values(finished_at=datetime.now(UTC) - timedelta(seconds=seconds))
        )


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*sqlqueue_command(), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_a_job_not_started_before_it_expires_is_never_run(app: SQLQueue, add: Any) -> None:
    expiring = add.apply_async((1, 2), expires=0.2)
    at_time = add.apply_async((1, 3), expires=datetime.now(UTC) + timedelta(seconds=0.2))
    lasting = add.apply_async((1, 4), expires=3600)
    time.sleep(0.3)

    work_off(app)

    assert (expiring.status, at_time.status) == ("REVOKED", "REVOKED")
    with pytest.raises(TaskRevokedError, match="expired before a worker started it"):
        expiring.get(timeout=1)
    assert lasting.get(timeout=5) == 5


def test_the_claim_itself_never_takes_an_expired_job(app: SQLQueue, add: Any) -> None:
    add.apply_async((1, 2), expires=0.1)
    time.sleep(0.2)
    # Even before any worker has swept it, taking it is impossible.
    assert app.store.claim_jobs(10, None, "w", lease=30) == []
    assert app.store.expire_jobs() == 1


def test_workers_prune_jobs_finished_longer_ago_than_result_expires(
    app: SQLQueue, add: Any
) -> None:
    old = [add.delay(n, n) for n in range(3)]
    work_off(app)
    age_finished_jobs(app, 7200)
    fresh = add.delay(5, 5)
    waiting = add.apply_async((6, 6), countdown=3600)
    app.conf.result_expires = 3600

    work_off(app)

    assert count_jobs(app) == 2
    assert fresh.get(timeout=1) == 10
    assert waiting.status == "PENDING"
    with pytest.raises(JobNotFoundError):
        old[0].status  # noqa: B018 - reading it is the check


def test_result_expires_none_keeps_finished_jobs(app: SQLQueue, add: Any) -> None:
    add.delay(1, 1)
    work_off(app)
    age_finished_jobs(app, 10**7)
    app.conf.result_expires = None

    work_off(app)

    assert count_jobs(app) == 1


def test_delete_finished_jobs_works_in_batches_and_spares_live_jobs(
    app: SQLQueue, add: Any
) -> None:
    with app.engine.begin() as conn, app.using(conn):
        for n in range(25):
            add.delay(n, n)
    work_off(app, concurrency=4)
    age_finished_jobs(app, 100)
    add.delay(0, 0)  # pending: never pruned

    assert app.store.delete_finished_jobs(older_than=50, batch_size=10) == 25
    assert count_jobs(app) == 1


def insert_old_results(app: SQLQueue, count: int) -> None:
    """Insert ``count`` jobs that finished two days ago, fast: one INSERT ... SELECT."""
    if app.dialect.name == "postgresql":
        numbers = "generate_series(1, :count) AS n"
        new_id, old = "gen_random_uuid()", "now() - interval '2 days'"
    elif app.dialect.name == "mysql":
        # up to 100,000 rows from five joined digits (a recursive CTE stops at 1,000)
        digits = "(" + " UNION ALL ".join(f"SELECT {d} AS d" for d in range(10)) + ")"
        joined = ", ".join(f"{digits} AS d{at}" for at in range(5))
        numbers = f"(SELECT 1 FROM {joined} LIMIT :count) AS numbers"
        new_id, old = "UUID()", "UTC_TIMESTAMP(6) - INTERVAL 2 DAY"
    else:
        numbers = (
            "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :count)"
            " SELECT n FROM s)"
        )
        new_id = "lower(hex(randomblob(16)))"
        old = "strftime('%Y-%m-%d %H:%M:%f', 'now', '-2 days')"
    with app.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO sqlqueue_jobs (id, task_name, queue, priority, args, kwargs, status,"
                " attempts, scheduled_at, created_at, started_at, finished_at, result)"
                f" SELECT {new_id}, 't.old', 'default', 0, '[]', '{{}}', 'SUCCESS', 1,"
                f" {old}, {old}, {old}, {old}, 'null' FROM {numbers}"
            ),
            {"count": count},
        )


def test_a_backlog_of_old_results_does_not_hold_up_the_claim(app: SQLQueue) -> None:
    # Given tens of thousands of results older than result_expires, and a job sent now
    backlog = 50_000
    insert_old_results(app, backlog)

    @app.task(name="t.count_old")
    def count_old() -> int:
        return count_jobs(app, "task_name = 't.old'")

    result = count_old.delay()

    # When a burst worker starts
    work_off(app)

    # I expect it to have run the job while most of the backlog was still there (the
    # prune runs beside the claim, not before it), and to have pruned some before it left
    assert result.get(timeout=1) > backlog // 2
    assert count_jobs(app, "task_name = 't.old'") < backlog


def test_one_prune_pass_deletes_a_bounded_number_of_batches(app: SQLQueue) -> None:
    insert_old_results(app, 35)

    assert app.store.delete_finished_jobs(3600, batch_size=10, max_batches=2) == 20
    assert app.store.delete_finished_jobs(3600, batch_size=10, max_batches=2) == 15
    assert count_jobs(app) == 0


def test_sqlqueue_prune_deletes_old_finished_jobs(app: SQLQueue, add: Any, db_url: str) -> None:
    add.delay(1, 1)
    work_off(app)
    age_finished_jobs(app, 100)

    kept = run_cli("prune", "--url", db_url, "--older-than", "1000")
    pruned = run_cli("prune", "--url", db_url, "--older-than", "50")

    assert kept.returncode == 0 and "deleted 0 finished job(s)" in kept.stdout
    assert pruned.returncode == 0 and "deleted 1 finished job(s)" in pruned.stdout
    assert count_jobs(app) == 0


def test_sqlqueue_prune_reads_durations_as_people_write_them(
    app: SQLQueue, add: Any, db_url: str
) -> None:
    add.delay(1, 1)
    work_off(app)
    age_finished_jobs(app, 2 * 3600)  # finished two hours ago

    kept = run_cli("prune", "--url", db_url, "--older-than", "1d")
    also_kept = run_cli("prune", "--url", db_url, "--older-than", "2h30m")
    pruned = run_cli("prune", "--url", db_url, "--older-than", "90m")

    assert "deleted 0 finished job(s) older than 1d " in kept.stdout
    assert "deleted 0 finished job(s) older than 2h 30m " in also_kept.stdout
    assert "deleted 1 finished job(s) older than 1h 30m " in pruned.stdout
    assert count_jobs(app) == 0


def test_sqlqueue_prune_refuses_a_duration_it_cannot_read_and_says_how_to_write_one(
    app: SQLQueue, add: Any, db_url: str
) -> None:
    add.delay(1, 1)
    work_off(app)
    age_finished_jobs(app, 100)

    refused = run_cli("prune", "--url", db_url, "--older-than", "7 days")

    assert refused.returncode == 2
    assert "'7 days' is not a duration" in refused.stderr
    assert "7d, 12h, 90m" in refused.stderr
    assert count_jobs(app) == 1


def test_sqlqueue_retry_queues_a_failed_job_again_as_new(app: SQLQueue, db_url: str) -> None:
    calls: list[int] = []

    @app.task(name="t.flaky_once")
    def flaky_once() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first run fails")
        return "second run works"

    result = flaky_once.delay()
    work_off(app)
    assert result.status == "FAILURE"

    completed = run_cli("retry", "--url", db_url, result.id)

    assert completed.returncode == 0 and "queued 1 job(s) again" in completed.stdout
    assert result.status == "PENDING"
    work_off(app)
    assert result.get(timeout=5) == "second run works"


def test_retry_by_task_or_queue_touches_only_failed_or_revoked_jobs(
    app: SQLQueue, add: Any
) -> None:
    @app.task(name="t.fail", queue="risky")
    def fail() -> None:
        raise ValueError("no")

    failed = [fail.delay() for _ in range(2)]
    revoked = add.delay(1, 1)
    revoked.revoke()
    succeeded = add.delay(2, 2)
    work_off(app)

    assert app.store.requeue_jobs(queue="risky") == 2
    assert app.store.requeue_jobs(task_name="t.add") == 1
    assert [result.status for result in failed] == ["PENDING", "PENDING"]
    assert revoked.status == "PENDING"
    assert succeeded.status == "SUCCESS"
    with pytest.raises(InvalidOptionError, match="Say which jobs"):
        app.store.requeue_jobs()


def test_retry_goes_through_many_jobs_a_batch_at_a_time_reviving_one_per_unique_key(
    app: SQLQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given seven failed jobs, three of which share a unique key, in batches of two
    @app.task(name="t.fail")
    def fail(n: int) -> None:
        raise ValueError(n)

    keyed = []
    for n in range(3):  # one at a time: each, failed, frees the key for the next
        keyed.append(fail.apply_async((n,), unique_key="k"))
        work_off(app)
    plain = [fail.delay(n) for n in range(4)]
    work_off(app)
    assert count_jobs(app, "status = 'FAILURE'") == 7
    monkeypatch.setattr(sqlqueue.store, "RETRY_BATCH_SIZE", 2)
    counts: list[int] = []

    # When they are retried by task
    requeued = app.store.requeue_jobs(task_name="t.fail", progress=counts.append)

    # I expect every plain one back and one of the keyed ones, the count told after each batch
    assert requeued == 5
    assert [job.status for job in plain] == ["PENDING"] * 4
    assert sorted(job.status for job in keyed) == ["FAILURE", "FAILURE", "PENDING"]
    assert len(counts) == 4 and counts == sorted(counts) and counts[-1] == 5


def test_retry_shows_its_count_on_a_terminal(db_url: str, app: SQLQueue) -> None:
    @app.task(name="t.fail")
    def fail() -> None:
        raise ValueError("no")

    for _ in range(3):
        fail.delay()
    work_off(app)
    code, stdout, shown = on_a_terminal("retry", "--task", "t.fail", "--url", db_url)

    assert code == 0 and "queued 3 job(s) again in" in stdout
    assert "\rqueued 3 job(s) again" in shown


def test_retry_resets_the_counters_of_the_job(app: SQLQueue) -> None:
    @app.task(name="t.always_retry", bind=True, max_retries=1)
    def always_retry(self: Any) -> None:
        raise self.retry(countdown=0)

    result = always_retry.delay()
    work_off(app)
    assert result.status == "FAILURE"

    app.store.requeue_jobs(job_ids=[result.id])

    with app.engine.connect() as conn:
        row = conn.execute(sa.select(jobs).where(jobs.c.id == result.id)).mappings().one()
    assert (row["status"], row["retries"], row["finished_at"]) == (JobStatus.PENDING, 0, None)
