"""Periodic tasks with real processes: four workers and a `sqlqueue beat`, all scheduling one
periodic task every second while schedulers are killed with SIGKILL and started again, send
each tick exactly once; `--no-beat` sends none; `sqlqueue schedules` lists what was sent."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
import sqlalchemy as sa
from conftest import TESTS_DIR, sqlqueue_command, start_worker, stop_worker, wait_until

from sqlqueue import SQLQueue

TICK_TASK = "periodic_tasks.tick"


@pytest.fixture
def url(db_url: str) -> str:
    if db_url.startswith("postgresql"):
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("TRUNCATE sqlqueue_schedules")
    elif db_url.startswith("mysql"):
        engine = sa.create_engine(db_url)
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM sqlqueue_schedules")
        engine.dispose()
    return db_url


@pytest.fixture
def queue(url: str) -> Iterator[SQLQueue]:
    app = SQLQueue(url)
    yield app
    app.engine.dispose()


def start(url: str, command: str, *args: str) -> subprocess.Popen[str]:
    if command == "worker":
        return start_worker(url, "-A", "periodic_tasks", *args)
    return subprocess.Popen(
        [*sqlqueue_command(), command, "-A", "periodic_tasks", *args],
        cwd=TESTS_DIR,
        env={**os.environ, "SQLQUEUE_DATABASE_URL": url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)


def jobs_per_tick(app: SQLQueue) -> dict[str, int]:
    with app.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT scheduled_at, count(*) FROM sqlqueue_jobs WHERE task_name = :task "
                "GROUP BY scheduled_at ORDER BY scheduled_at"
            ),
            {"task": TICK_TASK},
        ).all()
    return {str(tick): count for tick, count in rows}


def test_four_workers_and_a_beat_send_each_tick_once_while_schedulers_are_killed(
    url: str, queue: SQLQueue
) -> None:
    # Given five schedulers (four workers, which schedule by default, and a beat), on a
    # periodic task that ticks every second,
    workers = [start(url, "worker", "-c", "2") for _ in range(4)]
    beat = start(url, "beat")
    try:
        # when they run for a while, the beat and two workers killed with SIGKILL (in the
        # middle of whatever they were doing) and started again,
        time.sleep(3.3)
        kill(beat)
        kill(workers[0])
        time.sleep(0.8)
        beat = start(url, "beat")
        workers[0] = start(url, "worker", "-c", "2")
        time.sleep(2.6)
        kill(workers[1])
        workers[1] = start(url, "worker", "-c", "2")
        time.sleep(3.0)
    finally:
        # (a beat stops promptly on SIGTERM: it sleeps on an event, not in a busy loop)
        beat.send_signal(signal.SIGTERM)
        started = time.monotonic()
        beat_output, _ = beat.communicate(timeout=30)
        beat_stop = time.monotonic() - started
        outputs = [stop_worker(worker) for worker in workers]
    # then every tick that was sent was sent once, and ticks came every second throughout.
    ticks = jobs_per_tick(queue)
    assert ticks, f"no tick was sent: {beat_output}{outputs[0]}"
    assert set(ticks.values()) == {1}, ticks
    assert len(ticks) >= 6, ticks
    assert beat.returncode == 0 and beat_stop < 5, beat_output
    # The periodic task's row names the latest tick and the job sent for it.
    with queue.engine.connect() as conn:
        last_tick, job_id = conn.execute(
            sa.text("SELECT last_tick, job_id FROM sqlqueue_schedules WHERE name = 'every-second'")
        ).one()
        sent_for_last = conn.execute(
            sa.text("SELECT scheduled_at FROM sqlqueue_jobs WHERE id = :id"), {"id": job_id}
        ).scalar_one()
    assert str(sent_for_last) == str(last_tick) == max(ticks)
    # The workers ran the jobs (the last tick's may have been sent as they stopped).
    wait_until(lambda: unfinished(queue) <= 1, 10, "the ticks' jobs to run")


def unfinished(app: SQLQueue) -> int:
    with app.engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM sqlqueue_jobs WHERE task_name = :task "
                    "AND status <> 'SUCCESS'"
                ),
                {"task": TICK_TASK},
            ).scalar_one()
        )


def test_workers_with_no_beat_send_no_ticks(url: str, queue: SQLQueue) -> None:
    worker = start(url, "worker", "--no-beat")
    time.sleep(2.5)
    output = stop_worker(worker)
    assert "worker stopped" in output, output
    assert jobs_per_tick(queue) == {}
    with queue.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM sqlqueue_schedules")).scalar_one() == 0
    # The same worker with Celery's -B (the default) schedules.
    worker = start(url, "worker", "-B")
    wait_until(lambda: bool(jobs_per_tick(queue)), 15, "a worker to send a tick")
    stop_worker(worker)


def schedules_listing(url: str) -> list[list[str]]:
    listing = subprocess.run(
        [*sqlqueue_command(), "schedules", "-A", "periodic_tasks"],
        cwd=TESTS_DIR,
        env={**os.environ, "SQLQUEUE_DATABASE_URL": url, "PERIODIC_EVERY": "3600"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split("  ") for line in listing.splitlines()]


def test_sqlqueue_schedules_lists_last_and_next_runs(url: str, queue: SQLQueue) -> None:
    header, every, weekly = (
        [cell.strip() for cell in row if cell] for row in schedules_listing(url)
    )
    assert header == ["NAME", "TASK", "SCHEDULE", "LAST RUN", "LAST JOB", "NEXT RUN"]
    now = queue.store.database_now()
    next_hour = (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    assert every == [
        "every-second",
        TICK_TASK,
        "every 3600s",
        "never",
        "-",
        next_hour.strftime("%Y-%m-%d %H:%M:%S UTC"),
    ]
    assert weekly[:5] == ["weekly-report", TICK_TASK, "crontab(0 7 * * mon)", "never", "-"]
    assert weekly[5].endswith("07:00:00 UTC")
    # Once a tick is sent, it is the last run, with its job.
    tick = next_hour - timedelta(hours=1)
    queue.store.insert_schedule("every-second", TICK_TASK, tick - timedelta(hours=1))
    job_id = queue.store.send_tick(
        "every-second",
        TICK_TASK,
        tick,
        lambda conn: queue.send_task(TICK_TASK, ["second"], connection=conn, eta=tick).id,
    )
    every = [cell.strip() for cell in schedules_listing(url)[1] if cell]
    assert every[3:] == [
        tick.strftime("%Y-%m-%d %H:%M:%S UTC"),
        job_id,
        next_hour.strftime("%Y-%m-%d %H:%M:%S UTC"),
    ]


def test_a_beat_for_an_app_without_periodic_tasks_says_so(url: str) -> None:
    completed = subprocess.run(
        [*sqlqueue_command(), "beat", "-A", "tasks"],
        cwd=TESTS_DIR,
        env={**os.environ, "SQLQUEUE_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 1
    assert "This app has no periodic tasks: declare them in app.conf.beat_schedule" in (
        completed.stderr
    )
