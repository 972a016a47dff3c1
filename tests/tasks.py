"""Tasks that the tests' worker processes run (`sqlqueue worker -A tasks`, from tests/).

The app reads $SQLQUEUE_DATABASE_URL, which each test sets for its workers. Tests send
jobs by name (`app.send_task("tasks.add", ...)`) from their own app on the same database.
"""

from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path
from typing import Any

from sqlqueue import SoftTimeLimitExceeded, SQLQueue

app = SQLQueue()


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def fail(message: str) -> None:
    raise ValueError(message)


@app.task
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.task(bind=True)
def record(self: Any, log_path: str, seconds: float = 0.0) -> str:
    """Append one line per run (job id, pid) so a test can count how often each job ran;
    after ``seconds`` of sleep, for a test that needs its workers busy for a while."""
    time.sleep(seconds)
    with open(log_path, "a") as log:
        log.write(f"{self.request.id} {os.getpid()}\n")
    return self.request.id


@app.task(bind=True)
def hang_first_time(self: Any, marker_dir: str) -> int:
    """The first run announces itself and then hangs (for a test to kill its worker); any
    later run returns at once with the attempt it ran in."""
    marker = Path(marker_dir) / self.request.id
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(300)
    return self.request.attempts


@app.task
def crash(how: str) -> None:
    """Die the way a task can take its process down with it."""
    if how == "exit":
        os._exit(3)
    ctypes.string_at(0)  # a segmentation fault


@app.task(time_limit=1)
def never_returns() -> None:
    while True:
        time.sleep(0.05)


@app.task(soft_time_limit=0.5)
def cleans_up() -> str:
    try:
        time.sleep(30)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "slept"


@app.task
def whose_pid() -> int:
    return os.getpid()


@app.task(bind=True)
def announce_then_hang(self: Any, marker_dir: str) -> None:
    """Write this process's pid to ``marker_dir/<job id>`` and hang: for a test that kills
    the worker while a process-pool child runs the job."""
    (Path(marker_dir) / self.request.id).write_text(str(os.getpid()))
    time.sleep(300)


@app.task(bind=True)
def announce_then_sleep(self: Any, marker_dir: str, seconds: float) -> int:
    """Write this process's pid to ``marker_dir/<job id>``, sleep, and return the pid: for a
    test that stops a worker while the job runs."""
    (Path(marker_dir) / self.request.id).write_text(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()
