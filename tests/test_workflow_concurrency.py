"""A chord's body runs exactly once, however many workers finish its header at once, and
whichever of them is killed: the count that releases it lives in the database.

Real ``sqlqueue worker`` processes on both databases.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import test_worker_processes
from conftest import count_jobs, wait_until
from test_worker_processes import FAST, StartWorker

from sqlqueue import SQLQueue, chord

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
    for _ in range(4):
        workers(*FAST)

    assert_ran_once_with_every_result(app, body_id, log_path)


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
