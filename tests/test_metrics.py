"""Prometheus metrics from a real worker process (``--metrics-port``): the queue's gauges read
from the database, the worker's counts of what it ran, and no ids in any label."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest
from conftest import start_worker, stop_worker, wait_until
from test_cli import unused_port

from sqlqueue import SQLQueue, Worker, WorkerOptions
from sqlqueue.exceptions import InvalidOptionError


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def value(text: str, sample: str) -> float | None:
    """The value of one sample line (name and labels exactly as exposed), or None."""
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def test_a_worker_serves_the_queues_gauges_and_its_own_counts(
    db_url: str, app: SQLQueue, tmp_path: Path
) -> None:
    port = unused_port()
    for n in range(3):
        app.send_task("tasks.add", args=[n, n])
    failed = app.send_task("tasks.fail", args=["no"])
    app.send_task("tasks.add", args=[1, 1], queue="later", countdown=600)
    worker = start_worker(db_url, "--metrics-port", str(port), "-Q", "default")
    try:
        wait_until(lambda: failed.ready(), 30, "the jobs to run")
        blocker = app.send_task("tasks.progress_then_wait", args=[str(tmp_path)])
        wait_until(lambda: blocker.status == "STARTED", 30, "a running job")

        def counted() -> bool:
            return (
                value(
                    scrape(port), 'sqlqueue_jobs_finished_total{outcome="SUCCESS",task="tasks.add"}'
                )
                == 3.0
            )

        wait_until(counted, 30, "the outcomes to be counted")
        text = scrape(port)
        (tmp_path / "go").touch()
    finally:
        output = stop_worker(worker)
    assert worker.returncode == 0, output

    assert value(text, 'sqlqueue_jobs_finished_total{outcome="FAILURE",task="tasks.fail"}') == 1.0
    assert value(text, 'sqlqueue_job_duration_seconds_count{task="tasks.add"}') == 3.0
    assert value(text, 'sqlqueue_job_duration_seconds_bucket{le="+Inf",task="tasks.add"}') == 3.0
    assert value(text, 'sqlqueue_jobs{queue="default",status="running"}') == 1.0
    assert value(text, 'sqlqueue_jobs{queue="default",status="ready"}') == 0.0
    assert value(text, 'sqlqueue_jobs{queue="later",status="scheduled"}') == 1.0
    assert value(text, 'sqlqueue_oldest_ready_age_seconds{queue="later"}') == 0.0
    assert value(text, "sqlqueue_workers") == 1.0
    # No label holds an id: not a job's, not the worker's.
    labels = " ".join(re.findall(r"\{([^}]*)\}", text))
    assert failed.id not in labels and blocker.id not in labels
    assert ":" not in labels.replace('le="', "")  # worker ids are host:pid:random


def test_the_port_must_be_a_port() -> None:
    with pytest.raises(InvalidOptionError, match="metrics_port must be a TCP port"):
        WorkerOptions(metrics_port=70000)


def test_a_port_in_use_stops_the_worker_with_a_clear_error(db_url: str, app: SQLQueue) -> None:
    port = unused_port()
    first = Worker(app, WorkerOptions(metrics_port=port, burst=True))
    first._metrics.start()  # type: ignore[union-attr]
    try:
        worker = start_worker(db_url, "--metrics-port", str(port), "--burst")
        output, _ = worker.communicate(timeout=60)
    finally:
        first._metrics.stop()  # type: ignore[union-attr]
    assert worker.returncode == 1, output
    assert "Traceback" not in output
    assert f"Cannot serve metrics at port {port}" in output
