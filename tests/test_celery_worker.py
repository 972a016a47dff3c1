"""A Celery project in the usual layout, run by real `sqlqueue worker -A proj` processes: the
app found in proj/celery.py, its settings read from proj/celeryconfig.py (the database URL,
routes, time limits, worker_concurrency, worker_max_tasks_per_child), its task modules
found by autodiscover_tasks, and command-line flags winning over the settings."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import sqlqueue_command

from sqlqueue import states

PROJECT = {
    "proj/__init__.py": "from .celery import app as celery_app\n",
    "proj/celery.py": """
        from sqlqueue import Celery

        app = Celery("proj")
        app.config_from_object("proj.celeryconfig")
        app.autodiscover_tasks(["proj.billing", "proj.empty"])
    """,
    "proj/celeryconfig.py": """
        import os

        broker_url = os.environ["PROJ_DATABASE_URL"]
        task_routes = {"proj.billing.*": {"queue": "billing"}}
        task_time_limit = 1
        worker_concurrency = 3
        worker_max_tasks_per_child = 2
    """,
    "proj/billing/__init__.py": "",
    "proj/billing/tasks.py": """
        import os
        import time

        from proj.celery import app

        @app.task
        def pid():
            return os.getpid()

        @app.task
        def sleepy():
            while True:  # short sleeps: a thread's time limit lands between two of them
                time.sleep(0.01)
    """,
    "proj/empty/__init__.py": "",
}


@pytest.fixture
def proj(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, Any]]:
    """The project written to a directory, and its app as this process imports it."""
    for name, text in PROJECT.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PROJ_DATABASE_URL", db_url)
    from proj.celery import app  # type: ignore[import-not-found]

    app.autodiscover_tasks(["proj.billing"], force=True)
    yield tmp_path, app
    app.engine.dispose()
    for name in [name for name in sys.modules if name == "proj" or name.startswith("proj.")]:
        del sys.modules[name]


def run_worker(project: Path, *args: str) -> str:
    """Run `sqlqueue worker -A proj --burst` in the project's directory; its log."""
    run = subprocess.run(
        [*sqlqueue_command(), "worker", "-A", "proj", "--burst", "--poll-interval", "0.1", *args],
        cwd=project,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stderr


def test_a_worker_takes_its_concurrency_and_the_tasks_routes_and_limits_from_the_settings(
    proj: tuple[Path, Any],
) -> None:
    project, app = proj
    pid, sleepy = app.tasks["proj.billing.tasks.pid"], app.tasks["proj.billing.tasks.sleepy"]
    sent, stopped = pid.delay(), sleepy.delay()
    log = run_worker(project)
    assert "concurrency=3 pool=thread" in log
    done, failed = app.store.get_job(sent.id), app.store.get_job(stopped.id)
    assert done.status == states.SUCCESS and done.queue == "billing"
    assert failed.status == states.FAILURE and failed.error_type.endswith("TimeLimitExceeded")

    log = run_worker(project, "--concurrency", "5")
    assert "concurrency=5 pool=thread" in log


def jobs_per_child(app: Any, results: list[Any]) -> list[int]:
    jobs = [app.store.get_job(result.id) for result in results]
    assert all(job.status == states.SUCCESS for job in jobs)
    return sorted(Counter(job.result for job in jobs).values())


def test_process_pool_children_are_replaced_after_worker_max_tasks_per_child(
    proj: tuple[Path, Any],
) -> None:
    project, app = proj
    pid, sleepy = app.tasks["proj.billing.tasks.pid"], app.tasks["proj.billing.tasks.sleepy"]
    results = [pid.delay() for _ in range(6)]
    stopped = sleepy.delay()
    run_worker(project, "--pool", "process", "--concurrency", "1")
    assert jobs_per_child(app, results) == [2, 2, 2]
    killed = app.store.get_job(stopped.id)  # task_time_limit: the child is killed
    assert killed.status == states.FAILURE and "the process was killed" in killed.error_message

    results = [pid.delay() for _ in range(6)]
    run_worker(project, "--pool", "process", "--concurrency", "1", "--max-tasks-per-child", "3")
    assert jobs_per_child(app, results) == [3, 3]
