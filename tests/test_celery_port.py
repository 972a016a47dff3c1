"""examples/celery_port: a Celery project in the usual layout, moved over by its imports and
URL, run as its README says (a worker, then its client) on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from conftest import TESTS_DIR, sqlqueue_command

EXAMPLE = TESTS_DIR.parent / "examples" / "celery_port"
TIMEOUT = 120.0
"""Seconds the client may take: the retried charge waits one second of backoff."""


def test_the_celery_project_moved_over_runs_as_its_readme_says(db_url: str, tmp_path: Path) -> None:
    project = tmp_path / "celery_port"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("*.db*", "__pycache__"))
    env = {**os.environ, "PROJ_DATABASE_URL": db_url}
    migrate = [*sqlqueue_command(), "migrate", "-A", "proj"]
    subprocess.run(migrate, cwd=project, env=env, check=True, timeout=TIMEOUT)

    worker = subprocess.Popen(
        [*sqlqueue_command(), "worker", "-A", "proj", "--queues", "default,emails"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        client = subprocess.run(
            [sys.executable, "client.py"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker_log, _ = worker.communicate(timeout=TIMEOUT)

    assert client.returncode == 0, client.stdout + client.stderr + worker_log
    assert worker.returncode == 0, worker_log
    printed = client.stdout.splitlines()
    assert "second charge of order 42 refused" in printed
    assert "charged inline: {'order': 44, 'charged': 100}" in printed
    assert "charge: {'order': 42, 'charged': 1250} after 1 retry" in printed
    assert "receipt: receipt for order 42 sent to ann@example.com from queue emails" in printed
    assert "month: {'closed': 3} SUCCESS" in printed
    assert "order 43: REJECTED True" in printed
    assert "order 42: SUCCESS {'order': 42, 'charged': 1250} True" in printed
    # The worker: settings from celeryconfig.py, the base class's hooks, the ignored result.
    assert re.search(r"worker started .* queues=default,emails concurrency=4", worker_log)
    assert "[audit] proj.billing.tasks.charge(42, 1250) will retry" in worker_log
    assert "[event] month closed" in worker_log
