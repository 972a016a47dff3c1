"""A chord's body runs exactly once, however many workers finish its header at once, and
whichever of them is killed: the count that releases it lives in the database.

Real ``sqlqueue worker`` processes on every database.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import test_worker_processes
from conftest import count_jobs, wait_until
from test_worker_processes import FAST, StartWorker

from sqlqueue import (
    ChordError,
    GroupResult,
    Signature,
    SQLQueue,
    TaskFailedError,
    chain,
    chord,
    group,
)
from sqlqueue.schema import jobs

workers = test_worker_processes.workers
"""The fixture starting real worker processes, shared with test_worker_processes."""

HEADER = 1000


def send_chord(app: SQLQueue, log_path: Path, seconds: float) -> str:
    """A chord of HEADER ``tasks.add_slowly(n, 0)`` jobs whose body records each run."""
    header = (app.signature("tasks.add_slowly", args=(n, 0, seconds)) for n in range(HEADER))
    body = app.signature("tasks.record_results", args=(str(log_path),))
    return chord(header, body).apply_async().id


def assert_ran_once_with_every_result(app: SQLQueue, body_id: str, log_path: Path) -> None:
    assert app.AsyncResult(body_id).get(timeout=120) == list(range(HEADER))
    time.sleep(0.5)  # a second run, were there one, would have time to show
    assert len(log_path.read_text().splitlines()) == 1
    assert count_jobs(app, "status = 'SUCCESS'") == HEADER + 1


@pytest.mark.parametrize("turn", range(2))
def test_a_chord_body_runs_once_when_four_workers_finish_its_header(
    app: SQLQueue, workers: StartWorker, tmp_path: Path, turn: int
) -> None:
    log_path = tmp_path / "body.log"
    body_id = send_chord(app, log_path, seconds=0.0)
    started = [workers(*FAST) for _ in range(4)]

    assert_ran_once_with_every_result(app, body_id, log_path)
    # The finishers lock their own jobs, then the body, so none deadlocked another: no
    # transaction was run again (MySQL's would say so in the log).
    assert not [worker.name for worker in started if "lock conflict" in worker.output]


def test_a_chord_body_runs_once_when_workers_are_killed_mid_header(
    app: SQLQueue, workers: StartWorker, tmp_path: Path
) -> None:
    log_path = tmp_path / "body.log"
    body_id = send_chord(app, log_path, seconds=0.01)
    # A short lease, so the killed workers' jobs come back soon.
    started = [workers(*FAST, "--lease", "2", "-c", "4") for _ in range(4)]
    wait_until(
        lambda: count_jobs(app, "status = 'SUCCESS'") >= HEADER // 4,
        60,
        "a quarter of the header to finish",
    )
    for worker in started[:2]:
        worker.send_signal(signal.SIGKILL)
        assert worker.wait() == -signal.SIGKILL
    wait_until(
        lambda: count_jobs(app, "status = 'SUCCESS'") >= HEADER // 2,
        60,
        "half of the header to finish",
    )
    started[2].send_signal(signal.SIGKILL)
    assert started[2].wait() == -signal.SIGKILL
    workers(*FAST, "--lease", "2")

    assert_ran_once_with_every_result(app, body_id, log_path)
    # The killed workers' jobs ran again (their leases ran out), each recorded once.
    assert count_jobs(app, "expired_leases > 0") > 0


def test_every_kind_of_workflow_runs_on_worker_processes(
    app: SQLQueue, workers: StartWorker
) -> None:
    def task(name: str, *args: Any) -> Signature:
        return app.signature(f"tasks.{name}", args=args)

    chained = (task("add", 2, 2) | task("add", 4) | task("add", 8)).apply_async()
    grouped = group(task("add", n, n) for n in range(5)).apply_async()
    chorded = chord((task("add", n, n) for n in range(5)), task("tsum")).apply_async()
    nested = (
        task("add", 1, 1) | group(task("add", 1), task("add", 2) | task("add", 3)) | task("tsum")
    ).apply_async()
    broken = chain(task("fail", "boom"), task("add", 1)).apply_async(
        link_error=task("echo", "failed")
    )
    header_failed = chord([task("add", 1, 1), task("fail", "bad")], task("tsum")).apply_async()
    linked = task("add", 2, 2).apply_async(link=task("add", 16))
    for _ in range(2):
        workers(*FAST, "--burst")

    assert chained.get(timeout=60) == 16
    assert chained.parent.get(timeout=1) == 8  # type: ignore[union-attr]
    assert GroupResult.restore(grouped.id, app=app).get(timeout=60) == [0, 2, 4, 6, 8]
    assert chorded.get(timeout=60) == 20
    assert nested.get(timeout=60) == 3 + 7  # tsum([2 + 1, (2 + 2) + 3])
    with pytest.raises(TaskFailedError, match="ValueError: boom"):
        broken.get(timeout=60)
    with app.engine.connect() as conn:
        errback = conn.execute(
            sa.select(jobs.c.id).where(jobs.c.task_name == "tasks.echo")
        ).scalar_one()
    assert app.AsyncResult(errback).get(timeout=60) == [broken.parent.id, "failed"]  # type: ignore[union-attr]
    with pytest.raises(ChordError, match="raised ValueError: bad"):
        header_failed.get(timeout=60)
    assert linked.get(timeout=60) == 4
    with app.engine.connect() as conn:
        callback = conn.execute(
            sa.select(jobs.c.id).where(jobs.c.parent_id == linked.id)
        ).scalar_one()
    assert app.AsyncResult(callback).get(timeout=60) == 20
