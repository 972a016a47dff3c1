"""Prefetch: a worker of short jobs holds more than its threads, and every job it holds is
leased, renewed, given back at a stop, run once, and never hoarded from an idle worker.

The stop and hoarding tests run real `sqlqueue worker` processes (see test_worker_processes).
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import test_worker_processes
from conftest import count_jobs, wait_until
from test_worker_processes import FAST, START_TIMEOUT, StartWorker

from sqlqueue import SQLQueue, Worker, WorkerOptions
from sqlqueue.schema import jobs

workers = test_worker_processes.workers
"""The fixture starting real worker processes, shared with test_worker_processes."""


def record(log_path: str, seconds: float = 0.0) -> str:
    """The signature of tests/tasks.py's ``record``, so that this app can send it in bulk."""
    raise AssertionError("only the worker processes run it")


def add(x: int, y: int) -> int:
    """The signature of tests/tasks.py's ``add``."""
    raise AssertionError("only the worker processes run it")


def test_prefetched_jobs_waiting_longer_than_the_lease_keep_it_and_run_once(
    app: SQLQueue,
) -> None:
    # Given quick jobs first, then two that wait on a gate, then 20 quick ones behind them
    gate = threading.Event()

    @app.task(name="t.quick")
    def quick(n: int) -> int:
        return n

    @app.task(name="t.gated")
    def gated() -> None:
        gate.wait(30)

    quick.delay_many([(n,) for n in range(50)], priority=10)
    gated.delay_many([(), ()], priority=5)
    behind = {result.id for result in quick.delay_many([(n,) for n in range(20)])}

    # When a 2-thread worker with a 1 s lease has taken them all, and the gated two hold
    # both threads for three leases (the give-back of an overdue buffer switched off, so
    # that jobs wait in the buffer)
    worker = Worker(app, WorkerOptions(concurrency=2, burst=True, lease=1.0, poll_interval=0.05))
    worker._give_back_buffer = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_until(
            lambda: count_jobs(app, "status = 'STARTED' AND priority = 0") == len(behind),
            10,
            "the jobs behind the gated ones to be taken",
        )
        time.sleep(3.0)

        # I expect them still taken by this worker, each under its first take, with a
        # lease that has not run out
        with app.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    jobs.c.status,
                    jobs.c.worker_id,
                    jobs.c.attempts,
                    jobs.c.lease_expires_at > app.dialect.now(),
                ).where(jobs.c.id.in_(behind))
            ).all()
        assert {tuple(row) for row in rows} == {("STARTED", worker.id, 1, True)}, rows
    finally:
        gate.set()
        thread.join(timeout=30)

    # ... and, once the gate opens, every job run once (none re-queued by the rescue)
    assert not thread.is_alive()
    assert count_jobs(app, "status = 'SUCCESS'") == 72
    assert count_jobs(app, "attempts = 1 AND expired_leases = 0") == 72


@pytest.mark.slow
def test_a_stopped_worker_gives_back_its_prefetched_jobs_and_none_is_lost_or_run_twice(
    app: SQLQueue, workers: StartWorker, tmp_path: Path
) -> None:
    # Given many quick jobs that each log their run, and a worker with default settings
    # draining them
    log = tmp_path / "runs.log"
    total = 20_000
    sent = {r.id for r in app.task(name="tasks.record")(record).delay_many([(str(log),)] * total)}
    worker = workers(*FAST)
    wait_until(lambda: count_jobs(app, "status = 'SUCCESS'") >= 300, START_TIMEOUT, "300 jobs done")
    # ... holding more jobs than it has threads (its buffer)
    wait_until(
        lambda: count_jobs(app, "status = 'STARTED'") > 8, START_TIMEOUT, "a prefetched buffer"
    )

    # When it is stopped in the middle
    worker.send_signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.output

    # I expect every job it had not started (how many depends on the moment) to be ready
    # again and untouched; none left taken
    assert count_jobs(app, "status = 'STARTED'") == 0
    assert count_jobs(app, "status = 'PENDING' AND worker_id IS NULL") == total - count_jobs(
        app, "status = 'SUCCESS'"
    )
    ran = [line.split()[0] for line in log.read_text().splitlines()]
    assert len(ran) == len(set(ran)) == count_jobs(app, "status = 'SUCCESS'")

    # ... and, once another worker has drained the rest, every job run exactly once
    assert workers("--burst", *FAST).wait(timeout=180) == 0
    assert count_jobs(app, "status = 'SUCCESS'") == total
    ran = [line.split()[0] for line in log.read_text().splitlines()]
    assert len(ran) == total
    assert set(ran) == sent


@pytest.mark.slow
def test_long_jobs_behind_short_ones_are_not_hoarded_while_another_worker_is_idle(
    app: SQLQueue, workers: StartWorker
) -> None:
    # Given two one-thread workers, both up
    first, second = workers("-c", "1", *FAST), workers("-c", "1", *FAST)
    worker_ids = {first.id, second.id}

    # When they drain quick jobs (so both prefetch) and then four 1 s jobs come up
    app.task(name="tasks.add")(add).delay_many([(n, n) for n in range(2000)], priority=10)
    long = [app.send_task("tasks.sleep", args=[1.0]).id for _ in range(4)]
    wait_until(lambda: count_jobs(app, "status = 'SUCCESS'") == 2004, 120, "every job to be done")

    # I expect the long jobs shared between both workers: whichever prefetched them gave
    # back those its one thread could not start, rather than run all four in turn while
    # the other worker sat idle
    with app.engine.connect() as conn:
        takers = conn.execute(sa.select(jobs.c.worker_id).where(jobs.c.id.in_(long))).scalars()
        counts = {worker_id: 0 for worker_id in worker_ids}
        for worker_id in takers:
            counts[worker_id] += 1
    assert min(counts.values()) >= 1, counts


@pytest.mark.slow
def test_a_buffer_filled_by_quick_jobs_is_given_back_when_they_slow_to_just_under_a_stall(
    app: SQLQueue, workers: StartWorker, tmp_path: Path
) -> None:
    # Given many quick jobs, then jobs of 80 ms each: one of the worker's threads frees
    # every 10 ms or so, so its buffer never stops moving, but a buffer of such jobs, taken
    # while the jobs were quick, would drain for seconds while another worker sat idle
    log = tmp_path / "runs.log"
    app.task(name="tasks.add")(add).delay_many([(n, n) for n in range(3000)], priority=10)
    slow = {
        r.id for r in app.task(name="tasks.record")(record).delay_many([(str(log), 0.08)] * 400)
    }

    # When a worker with default settings drains them
    worker = workers("--burst", *FAST)
    assert worker.wait(timeout=180) == 0, worker.output

    # I expect it to have given back slow jobs from its buffer (a job taken again counts
    # a second take), and every job to have run once
    assert "gave back" in worker.output
    with app.engine.connect() as conn:
        retaken = conn.execute(
            sa.select(sa.func.count()).where(jobs.c.id.in_(slow), jobs.c.attempts > 1)
        ).scalar_one()
    assert retaken > 0
    assert count_jobs(app, "status = 'SUCCESS'") == 3400
    ran = [line.split()[0] for line in log.read_text().splitlines()]
    assert sorted(ran) == sorted(slow)
