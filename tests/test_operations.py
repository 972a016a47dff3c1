"""Seeing and steering the queue (API.md §10): workers' rows and heartbeats, read by real
worker processes' neighbours, and the `status`, `workers`, `inspect` and `purge` commands as
an operator runs them."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from conftest import (
    TESTS_DIR,
    count_jobs,
    on_a_terminal,
    sqlqueue_command,
    start_worker,
    stop_worker,
    wait_until,
    work_off,
)
from test_cli import assert_clean_error

import sqlqueue
import sqlqueue.status
import sqlqueue.terminal
from sqlqueue import SQLQueue
from sqlqueue.canvas import chain
from sqlqueue.conf import WORKER_FORGET_AFTER, WORKER_GONE_AFTER
from sqlqueue.operator_cli import vacuum_warnings


def run(db_url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*sqlqueue_command(), *args, "--url", db_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        input=stdin,
        cwd=TESTS_DIR,
    )


def ok(db_url: str, *args: str, stdin: str | None = None) -> str:
    completed = run(db_url, *args, stdin=stdin)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def worker_rows(app: SQLQueue) -> list[dict[str, Any]]:
    with app.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM sqlqueue_workers")).mappings()
        return [dict(row) for row in rows]


def age_workers(app: SQLQueue, seconds: float) -> None:
    """Move every worker's last heartbeat back in time, as if it had stopped beating then."""
    with app.engine.begin() as conn:
        for row in worker_rows(app):
            conn.execute(
                sa.text("UPDATE sqlqueue_workers SET last_seen_at = :at WHERE id = :id"),
                {"at": row_time(row["last_seen_at"]) - timedelta(seconds=seconds), "id": row["id"]},
            )


def row_time(value: Any) -> datetime:
    """A time as read from a row: SQLite's is text."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


# --- workers and their heartbeats -------------------------------------------------------


def test_a_worker_registers_beats_with_its_running_jobs_and_leaves_on_a_clean_stop(
    db_url: str, app: SQLQueue, tmp_path: Path
) -> None:
    # A short lease makes the renewer, and with it the heartbeat, beat every half second.
    worker = start_worker(db_url, "-c", "3", "-Q", "default,other", "--lease", "1.5")
    try:
        wait_until(lambda: len(worker_rows(app)) == 1, 30, "the worker's row")
        (row,) = worker_rows(app)
        assert row["pid"] == worker.pid
        assert row["id"].startswith(f"{row['host']}:{worker.pid}:")
        queues = row["queues"]
        assert (json.loads(queues) if isinstance(queues, str) else queues) == ["default", "other"]
        assert (row["concurrency"], row["pool"], row["version"]) == (
            3,
            "thread",
            sqlqueue.__version__,
        )
        assert row["jobs_running"] == 0
        first_seen = row_time(row["last_seen_at"])

        app.send_task("tasks.progress_then_wait", args=[str(tmp_path)])
        wait_until(lambda: worker_rows(app)[0]["jobs_running"] == 1, 30, "a heartbeat with one job")
        assert row_time(worker_rows(app)[0]["last_seen_at"]) > first_seen
        shown = json.loads(ok(db_url, "workers", "--json"))
        assert [(w["pid"], w["jobs_running"], w["gone"]) for w in shown] == [(worker.pid, 1, False)]
        (tmp_path / "go").touch()
    finally:
        output = stop_worker(worker)
    assert worker.returncode == 0, output
    assert worker_rows(app) == []


def test_a_live_workers_up_time_runs_to_now_not_to_its_last_heartbeat(
    db_url: str, app: SQLQueue
) -> None:
    worker = start_worker(db_url)  # the default lease: a heartbeat every 10 s
    try:
        wait_until(lambda: len(worker_rows(app)) == 1, 30, "the worker's row")
        time.sleep(3)
        line = ok(db_url, "workers").splitlines()[1]
    finally:
        stop_worker(worker)
    up = line.split()[8]  # ID HOST PID QUEUES POOL CONC RUNNING VERSION UP SEEN… STATE
    assert float(up.removesuffix("s")) >= 2.5, line


def test_a_killed_worker_shows_as_gone_and_is_forgotten_later(db_url: str, app: SQLQueue) -> None:
    worker = start_worker(db_url)
    wait_until(lambda: len(worker_rows(app)) == 1, 30, "the worker's row")
    worker.send_signal(signal.SIGKILL)
    worker.communicate(timeout=30)

    assert len(worker_rows(app)) == 1  # nothing deleted it
    assert "1 live worker(s)" in ok(db_url, "status")
    age_workers(app, WORKER_GONE_AFTER + 1)
    table = ok(db_url, "workers")
    assert table.splitlines()[1].split()[-1] == "gone", table
    assert "0 live worker(s)" in ok(db_url, "status")
    assert "1 gone" in ok(db_url, "status")

    age_workers(app, WORKER_FORGET_AFTER)
    work_off(app)  # its chores forget the gone worker; its own row goes when it stops
    assert worker_rows(app) == []


# --- status ------------------------------------------------------------------------------


def fill_queue(app: SQLQueue) -> None:
    """default: 2 ready, 1 scheduled, 1 retrying, 1 running, 3 succeeded, 2 failed;
    emails: 1 ready."""

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.fail")
    def fail() -> None:
        raise ValueError("no")

    @app.task(name="t.again", bind=True, max_retries=5)
    def again(self: Any) -> None:
        raise self.retry(countdown=600)

    for n in range(3):
        add.delay(n, n)
    fail.delay()
    fail.delay()
    again.delay()
    work_off(app)
    add.delay(1, 1)
    add.apply_async((1, 1), countdown=600)
    add.delay(2, 2)
    app.store.claim_jobs(1, ["default"], "someone", 60)  # one running
    add.apply_async((3, 3), queue="emails")


def test_status_counts_each_queues_jobs_by_state(db_url: str, app: SQLQueue) -> None:
    fill_queue(app)

    shown = json.loads(ok(db_url, "status", "--json"))

    counts = {
        queue["queue"]: {
            name: value
            for name, value in queue.items()
            if name not in ("queue", "oldest_ready_age")
        }
        for queue in shown["queues"]
    }
    assert counts == {
        "default": {
            "ready": 1,
            "scheduled": 1,
            "retrying": 1,
            "running": 1,
            "failed_last_hour": 2,
            "failed_last_day": 2,
            "succeeded_last_day": 3,
        },
        "emails": {
            "ready": 1,
            "scheduled": 0,
            "retrying": 0,
            "running": 0,
            "failed_last_hour": 0,
            "failed_last_day": 0,
            "succeeded_last_day": 0,
        },
    }
    ages = {queue["queue"]: queue["oldest_ready_age"] for queue in shown["queues"]}
    assert 0 <= ages["default"] < 60 and 0 <= ages["emails"] < 60
    assert shown["history_count_cap"] == sqlqueue.status.HISTORY_COUNT_CAP

    table = ok(db_url, "status").splitlines()
    assert table[0].split()[:5] == ["QUEUE", "READY", "SCHEDULED", "RETRYING", "RUNNING"]
    assert table[1].split()[:8] == ["default", "1", "1", "1", "1", "2", "2", "3"]
    assert "0 live worker(s)" in "\n".join(table)


def test_counts_of_finished_jobs_stop_at_the_cap(
    app: SQLQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_queue(app)
    monkeypatch.setattr(sqlqueue.status, "HISTORY_COUNT_CAP", 2)

    default = sqlqueue.status.read_status(app.store).queues[0]

    assert (default.failed_last_day, default.succeeded_last_day) == (2, 2)
    assert sqlqueue.terminal.capped(default.succeeded_last_day, 2) == "2+"


def test_finished_jobs_older_than_a_day_are_not_counted(db_url: str, app: SQLQueue) -> None:
    fill_queue(app)
    with app.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE sqlqueue_jobs SET finished_at = :at WHERE status = 'FAILURE'"),
            {"at": row_time("2020-01-01T00:00:00+00:00")},
        )

    default = json.loads(ok(db_url, "status", "--json"))["queues"][0]

    assert (default["failed_last_hour"], default["failed_last_day"]) == (0, 0)


def test_status_watch_redraws_until_interrupted(db_url: str, app: SQLQueue) -> None:
    fill_queue(app)
    watch = subprocess.Popen(
        [*sqlqueue_command(), "status", "--url", db_url, "--watch", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(3)
    finally:
        watch.send_signal(signal.SIGINT)
        output, _ = watch.communicate(timeout=30)
    assert watch.returncode == 0, output
    assert "Traceback" not in output
    assert output.count("QUEUE  ") >= 2  # drawn again


def test_status_of_an_unreachable_database_is_one_clear_line() -> None:
    completed = run("postgresql://someone@127.0.0.1:9/app", "status")

    error = assert_clean_error(completed, 1)
    assert "Connection refused" in error


def test_status_of_an_empty_queue_says_so(db_url: str) -> None:
    assert ok(db_url, "status").startswith("No jobs in the queue.")


# --- inspect ----------------------------------------------------------------------------


def test_inspect_shows_a_failed_jobs_call_timings_and_traceback(db_url: str, app: SQLQueue) -> None:
    @app.task(name="t.fail")
    def fail(x: int, *, why: str) -> None:
        raise ValueError(f"bad {x}: {why}")

    job = fail.delay(7, why="testing")
    work_off(app)

    text = ok(db_url, "inspect", job.id)

    assert f"job {job.id}" in text
    for line in ("task:", "t.fail"), ("status:", "FAILURE"), ("args:", "[7]"):
        assert any(line[0] in row and row.split()[-1] == line[1] for row in text.splitlines()), text
    assert '{"why": "testing"}' in text
    assert "ValueError: bad 7: testing" in text
    assert "Traceback (most recent call last)" in text
    assert "ran:" in text and "waited:" in text
    shown = json.loads(ok(db_url, "inspect", job.id, "--json"))
    assert (shown["error_type"], shown["attempts"], shown["kwargs"]) == (
        "ValueError",
        1,
        {"why": "testing"},
    )
    assert shown["ran"] >= 0


def test_inspect_shows_a_running_jobs_progress_and_worker(db_url: str, app: SQLQueue) -> None:
    job = app.send_task("tasks.add", args=[1, 2])
    (claimed,) = app.store.claim_jobs(1, None, "host:1:abc", 60)
    app.store.update_progress(
        (claimed.id, claimed.attempts), {"state": "PROGRESS", "meta": {"done": 3}}
    )

    shown = json.loads(ok(db_url, "inspect", job.id, "--json"))

    assert shown["status"] == "STARTED"
    assert shown["worker_id"] == "host:1:abc"
    assert shown["progress"] == {"state": "PROGRESS", "meta": {"done": 3}}
    assert '"done": 3' in ok(db_url, "inspect", job.id)


def test_inspect_shows_what_a_workflow_step_waits_for_and_what_waits_for_it(
    db_url: str, app: SQLQueue
) -> None:
    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    handle = chain(add.s(1, 2), add.s(3), add.s(4)).delay()
    middle = handle.parent
    first = middle.parent

    text = ok(db_url, "inspect", middle.id)
    shown = json.loads(ok(db_url, "inspect", middle.id, "--json"))

    assert shown["status"] == "WAITING"
    assert shown["parent_id"] == first.id
    assert shown["prerequisites"] == [first.id]
    assert shown["dependents"] == [handle.id]
    assert shown["workflow_id"] == handle.id
    assert f'waits for:           ["{first.id}"]' in text
    assert f'released on success: ["{handle.id}"]' in text


def test_inspect_shows_the_limits_a_job_was_sent_with(db_url: str, app: SQLQueue) -> None:
    # Given a job of a task limited per account and in rate
    @app.task(
        name="t.sync",
        concurrency_limit=1,
        concurrency_key=lambda account: f"account:{account}",
        rate_limit="2/s",
    )
    def sync(account: int) -> None: ...

    job = sync.delay(42)

    # When an operator asks why it waits, I expect its group and limits shown
    output = ok(db_url, "inspect", job.id)
    assert "limit group:         t.sync account:42" in output
    assert "concurrency limit:   1" in output
    assert "seconds per start:   0.5" in output


def test_inspect_of_an_unknown_job_is_one_clear_line(db_url: str) -> None:
    error = assert_clean_error(run(db_url, "inspect", "no-such-job"), 1)

    assert "No job 'no-such-job'" in error


# --- purge -----------------------------------------------------------------------------


def test_purge_asks_then_deletes_only_the_queues_ready_jobs(db_url: str, app: SQLQueue) -> None:
    fill_queue(app)
    before = count_jobs(app)

    declined = run(db_url, "purge", "--queue", "default", stdin="n\n")
    assert declined.returncode == 1 and "Aborted" in declined.stderr
    assert count_jobs(app) == before

    output = ok(db_url, "purge", "--queue", "default", stdin="y\n")

    assert "Take 3 ready job(s) out of queue 'default'" in output
    assert "deleted 3 ready job(s) of queue 'default'" in output
    assert "\r" not in output  # no progress in a pipe
    assert count_jobs(app, "queue = 'default' AND status IN ('PENDING', 'RETRY')") == 0
    # The running job, the finished ones and the other queue's stay.
    assert count_jobs(app) == before - 3
    assert count_jobs(app, "status = 'STARTED'") == 1
    assert count_jobs(app, "queue = 'emails'") == 1


def test_status_and_purge_count_the_jobs_a_limit_holds_back(db_url: str, app: SQLQueue) -> None:
    # Given three jobs of a task limited to two at once, two of them running, and one of
    # another task
    @app.task(name="t.limited", concurrency_limit=2)
    def limited() -> None: ...

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    for _ in range(3):
        limited.delay()
    assert len(app.store.claim_jobs(10, None, "someone", 60)) == 2
    add.delay(1, 1)

    # When an operator reads the queue, then purges it
    shown = json.loads(ok(db_url, "status", "--json"))["queues"][0]
    output = ok(db_url, "purge", "--queue", "default", "--yes")

    # I expect the held job counted ready beside the other, and both taken out
    assert (shown["ready"], shown["running"]) == (2, 2)
    assert "deleted 2 ready job(s)" in output
    assert count_jobs(app, "status IN ('PENDING', 'RETRY')") == 0
    assert count_jobs(app, "status = 'STARTED'") == 2


def test_purge_revokes_a_workflow_step_others_wait_for_and_they_stop(
    db_url: str, app: SQLQueue
) -> None:
    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    handle = chain(add.s(1, 2), add.s(3)).delay()
    lone = add.delay(5, 5)

    output = ok(db_url, "purge", "--queue", "default", "--yes")

    assert "deleted 1 ready job(s)" in output
    assert "revoked 1 that workflow steps waited for" in output
    assert app.store.get_job(lone.id) is None
    assert handle.parent.status == "REVOKED"
    assert handle.status == "REVOKED"  # settled: it does not wait forever


def test_purge_of_an_unknown_queue_names_the_queues_there_are(db_url: str, app: SQLQueue) -> None:
    fill_queue(app)

    error = assert_clean_error(run(db_url, "purge", "--queue", "nope", "--yes"), 1)

    assert "No queue 'nope'" in error
    assert "default, emails" in error


def test_prune_stays_quiet_in_a_pipe(db_url: str, app: SQLQueue) -> None:
    fill_queue(app)

    output = ok(db_url, "prune", "--older-than", "0")

    assert output.startswith("deleted 5 finished job(s)")
    assert "\r" not in output


def test_purge_shows_progress_on_a_terminal(db_url: str, app: SQLQueue) -> None:
    fill_queue(app)
    code, _stdout, shown = on_a_terminal("purge", "--queue", "default", "--yes", "--url", db_url)

    assert code == 0
    assert "\rpurged" in shown


@pytest.mark.postgresql
def test_status_names_a_long_transaction_that_holds_back_vacuum(
    pg_app: SQLQueue, postgres_url: str
) -> None:
    # Given a session that took a snapshot and left its transaction open
    with psycopg.connect(postgres_url, application_name="nightly-report") as holder:
        holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        holder.execute("SELECT count(*) FROM sqlqueue_jobs")
        pid = holder.info.backend_pid
        time.sleep(1.2)

        # I expect the status to name it, with what to do about it
        held = sqlqueue.status.read_vacuum(pg_app.store, long_transaction=1.0)
        assert held is not None and held.holder_pid == pid
        assert held.holder_application == "nightly-report"
        assert held.holder_state == "idle in transaction"
        assert held.held_for is not None and held.held_for >= 1.0
        (warning,) = [line for line in vacuum_warnings(held) if "transaction" in line]
        assert f"pid {pid}: " in warning and "'nightly-report', idle in transaction" in warning
        assert "idle_in_transaction_session_timeout" in warning
        # and not one that is younger than the limit
        younger = sqlqueue.status.read_vacuum(pg_app.store, long_transaction=3600)
        assert younger is not None and younger.holder_pid is None

    assert sqlqueue.status.read_vacuum(pg_app.store, long_transaction=0).holder_pid is None  # type: ignore[union-attr]


@pytest.mark.postgresql
def test_status_says_when_the_server_does_not_vacuum(pg_app: SQLQueue, postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        autovacuum = conn.execute("SHOW autovacuum").fetchone()[0] == "on"  # type: ignore[index]

    vacuum = sqlqueue.status.read_vacuum(pg_app.store)
    text = ok(pg_app.engine.url.render_as_string(hide_password=False), "status")

    assert vacuum is not None and vacuum.autovacuum is autovacuum
    assert ("autovacuum is off on this server" in text) is not autovacuum
    assert (
        json.loads(ok(pg_app.engine.url.render_as_string(hide_password=False), "status", "--json"))[
            "vacuum"
        ]["autovacuum"]
        is autovacuum
    )


def test_vacuum_is_reported_on_postgresql_only(app: SQLQueue) -> None:
    vacuum = sqlqueue.status.read_status(app.store).vacuum
    assert (vacuum is None) is (app.dialect.name != "postgresql")
