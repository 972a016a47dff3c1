"""Rate and concurrency limits held across real worker processes (`sqlqueue worker -A tasks`),
on SQLite, PostgreSQL and MariaDB. The tasks (tests/tasks.py) log their own start and end
times, so what is measured is what ran, not what the database says."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import count_jobs, start_worker, wait_until

from sqlqueue import SQLQueue
from sqlqueue.jobs import as_utc
from sqlqueue.schema import jobs

FAST = ("--poll-interval", "0.1")

Workers = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def workers(db_url: str) -> Iterator[Workers]:
    """Start worker processes on the test's database; all are killed at teardown."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        worker = start_worker(db_url, *args, *FAST)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.poll() is None:
            worker.kill()
        worker.communicate(timeout=30)


@pytest.fixture
def app(app: SQLQueue) -> SQLQueue:
    """The test's app, declaring the limited tasks of tests/tasks.py as they are declared
    there: a sender writes a job's limits from its own declaration of the task."""

    @app.task(name="tasks.two_at_a_time", concurrency_limit=2)
    def two_at_a_time(log_path: str, seconds: float) -> None: ...

    @app.task(
        name="tasks.one_per_account",
        concurrency_limit=1,
        concurrency_key=lambda log_path, account, seconds: f"account:{account}",
    )
    def one_per_account(log_path: str, account: str, seconds: float) -> None: ...

    @app.task(name="tasks.ten_per_second", rate_limit="10/s")
    def ten_per_second(log_path: str) -> None: ...

    return app


def read_log(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def intervals(path: Path, killed_at: dict[str, float] | None = None) -> list[tuple[float, float]]:
    """Each run's (start, end); a run whose worker was killed (``killed_at``, by the pid of
    its log line) ends when it was killed."""
    starts: dict[str, tuple[float, str]] = {}
    runs: list[tuple[float, float]] = []
    for event, job_id, at, who in read_log(path):
        if event == "start":
            if job_id in starts:  # a second take of a job whose first run was killed
                first, pid = starts.pop(job_id)
                runs.append((first, (killed_at or {})[pid]))
            starts[job_id] = (float(at), who)
        else:
            runs.append((starts.pop(job_id)[0], float(at)))
    for first, pid in starts.values():
        runs.append((first, (killed_at or {})[pid]))
    return runs


def most_at_once(runs: list[tuple[float, float]]) -> int:
    # Ends before starts at the same instant: a run that ends as another starts is not overlap.
    events = sorted([(end, -1) for _, end in runs] + [(start, 1) for start, _ in runs])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def test_a_concurrency_limit_of_two_holds_across_three_workers(
    app: SQLQueue, workers: Workers, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    for _ in range(3):
        workers("--concurrency", "3")
    for _ in range(12):
        app.send_task("tasks.two_at_a_time", args=[str(log), 0.4])

    wait_until(lambda: count_jobs(app, "status = 'SUCCESS'") == 12, 60, "12 jobs done")
    runs = intervals(log)
    assert len(runs) == 12
    assert most_at_once(runs) == 2  # never three; and two did run side by side


def test_a_killed_workers_slots_free_when_its_leases_run_out(
    app: SQLQueue, workers: Workers, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    victim = workers("--concurrency", "2", "--lease", "2")
    app.send_task("tasks.two_at_a_time", args=[str(log), 1.5])
    app.send_task("tasks.two_at_a_time", args=[str(log), 1.5])
    wait_until(lambda: len(read_log(log)) == 2, 30, "two runs started on the first worker")
    for _ in range(4):
        app.send_task("tasks.two_at_a_time", args=[str(log), 0.3])
    for _ in range(2):  # idle meanwhile: both slots are the first worker's
        workers("--concurrency", "3", "--lease", "2")
    time.sleep(1.0)
    victim.send_signal(signal.SIGKILL)
    killed_at = time.time()
    victim.wait(timeout=30)
    with app.engine.connect() as conn:
        leases = conn.execute(
            sa.select(jobs.c.lease_expires_at).where(jobs.c.status == "STARTED")
        ).scalars()
        first_lease_end = min(as_utc(lease).timestamp() for lease in leases)  # type: ignore[union-attr]

    # Nothing repairs a count: the dead worker's two slots are free once its leases run out,
    # and its two jobs run again.
    wait_until(lambda: count_jobs(app, "status = 'SUCCESS'") == 6, 60, "6 jobs done")
    runs = intervals(log, {str(victim.pid): killed_at})
    assert len(runs) == 8  # 6 that finished, and the 2 cut short by the kill
    assert most_at_once(runs) <= 2
    # Its slots stayed taken until its leases ran out, though two workers were waiting.
    after_kill = min(start for start, _ in runs if start > killed_at - 0.5)
    assert after_kill >= first_lease_end - 0.05
    assert after_kill < first_lease_end + 2.0  # and were free as soon as they did


def test_a_rate_of_ten_a_second_holds_across_three_workers(
    app: SQLQueue, workers: Workers, tmp_path: Path
) -> None:
    log = tmp_path / "starts.log"
    for _ in range(3):
        workers("--concurrency", "4")
    # Sent before the workers take any: all of them ready at once.
    for _ in range(35):
        app.send_task("tasks.ten_per_second", args=[str(log)])

    wait_until(lambda: count_jobs(app, "status = 'SUCCESS'") == 35, 60, "35 jobs done")
    starts = sorted(float(at) for _, _, at, _ in read_log(log))
    assert len(starts) == 35
    busiest = max(sum(1 for t in starts if first <= t < first + 1.0) for first in starts)
    assert busiest <= 10 + 1  # the rate, and its burst of one job
    assert starts[-1] - starts[0] >= 3.0  # 35 jobs at 10/s take 3.4 s
    assert len({pid for *_, pid in read_log(log)}) >= 2  # taken by more than one worker


def test_one_key_held_does_not_hold_another(
    app: SQLQueue, workers: Workers, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    for _ in range(3):
        app.send_task("tasks.one_per_account", args=[str(log), "a", 0.6])
    app.send_task("tasks.one_per_account", args=[str(log), "b", 0.1])
    workers("--concurrency", "4")

    wait_until(lambda: count_jobs(app, "status = 'SUCCESS'") == 4, 60, "4 jobs done")
    by_account: dict[str, list[tuple[float, float]]] = {"a": [], "b": []}
    starts: dict[str, float] = {}
    for event, job_id, at, account in read_log(log):
        if event == "start":
            starts[job_id] = float(at)
        else:
            by_account[account].append((starts[job_id], float(at)))
    assert most_at_once(by_account["a"]) == 1
    first_a_end = min(end for _, end in by_account["a"])
    assert by_account["b"][0][0] < first_a_end  # b ran while a's first job still ran


def test_ready_jobs_run_past_a_held_backlog_of_ten_thousand(
    app: SQLQueue, workers: Workers, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    app.tasks["tasks.two_at_a_time"].delay_many([(str(log), 30.0)] * 10_000)
    workers("--concurrency", "4")
    wait_until(lambda: len(read_log(log)) == 2, 30, "two of the backlog running")

    started = time.monotonic()
    for n in range(20):
        app.send_task("tasks.add", args=[n, n])
    wait_until(
        lambda: count_jobs(app, "task_name = 'tasks.add' AND status = 'SUCCESS'") == 20,
        30,
        "20 adds done",
    )
    assert time.monotonic() - started < 10
    # The held backlog was never taken: still ready, no attempt counted.
    assert count_jobs(app, "status = 'PENDING' AND attempts = 0") == 9_998
    assert count_jobs(app, "task_name = 'tasks.two_at_a_time' AND status = 'STARTED'") == 2
