"""Workers without LISTEN/NOTIFY (SQLite, MySQL) poll: quickly while jobs keep coming, slower
when idle (issue 17), and say so at start."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest
from conftest import start_worker, stop_worker, wait_until

from sqlqueue import SQLQueue

POLL_INTERVAL = 4.0
TRICKLE = 20
"""Jobs sent one every ``GAP`` seconds, while the worker runs."""
GAP = 0.15


@pytest.mark.slow
@pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)], indirect=True
)
def test_a_polling_worker_starts_a_trickle_of_jobs_soon_and_says_it_polls(
    app: SQLQueue, db_url: str, tmp_path: Path
) -> None:
    # Given a worker that polls every 4 s and has just found a job, and then jobs sent one
    # every 0.15 s, I expect them to start within a quarter of a poll interval of their send
    # (the worker looks again soon after each claim that found a job); a worker that waited
    # its whole interval after each claim that found none left them 2.5 s (the median).
    log = tmp_path / "runs.log"

    def ran() -> int:
        return len(log.read_text().splitlines()) if log.exists() else 0

    worker = start_worker(db_url, "-c", "2", "--poll-interval", str(POLL_INTERVAL))
    try:
        wait_until(lambda: count_workers(app) == 1, 60, "the worker to start")
        app.send_task("tasks.record", args=[str(log)])
        wait_until(lambda: ran() == 1, 30, "the first job to run")
        ids = []
        for _ in range(TRICKLE):
            ids.append(app.send_task("tasks.record", args=[str(log)]).id)
            time.sleep(GAP)
        wait_until(lambda: ran() == 1 + TRICKLE, 30, "the jobs to run")
    finally:
        output = stop_worker(worker)

    name = app.dialect.name
    assert f"new jobs: polling every 4s, sooner while jobs keep coming ({name} has no" in output
    waits = [
        (job.started_at - job.created_at).total_seconds()
        for job in (app.store.get_job(job_id) for job_id in ids)
        if job is not None and job.started_at is not None and job.created_at is not None
    ]
    assert len(waits) == TRICKLE
    assert statistics.median(waits) < 1.0, waits


def count_workers(app: SQLQueue) -> int:
    with app.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM sqlqueue_workers").scalar_one())
