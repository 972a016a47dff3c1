"""Tasks that the tests' worker processes run (`sqlqueue worker -A tasks`, from tests/).

The app reads $SQLQUEUE_DATABASE_URL, which each test sets for its workers. Tests send
jobs by name (`app.send_task("tasks.add", ...)`) from their own app on the same database.
"""

from __future__ import annotations

import ctypes
import os
import random
import time
from pathlib import Path
from typing import Any

from sqlqueue import SoftTimeLimitExceeded, SQLQueue, Terminated

app = SQLQueue()


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def add_slowly(x: int, y: int, seconds: float) -> int:
    """``add``, after ``seconds`` of sleep: a chord header job a test can kill workers under."""
    time.sleep(seconds)
    return x + y


@app.task
def record_results(results: list[int], log_path: str) -> list[int]:
    """A chord body that appends one line per run, so a test can count how often it ran."""
    with open(log_path, "a") as log:
        log.write(f"{os.getpid()}\n")
    return results


@app.task
def tsum(numbers: list[int]) -> int:
    """A chord's body: the sum of its header's results."""
    return sum(numbers)


@app.task
def echo(*args: Any) -> list[Any]:
    """What it was called with (a link_error callback: the failed job's id first)."""
    return list(args)


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


def _announce(marker: Path) -> None:
    """Write this process's pid to ``marker``: aside first, then renamed, so that a test that
    sees the file reads the whole pid (a test once read it empty)."""
    staged = marker.with_name(f"{marker.name}.staged")
    staged.write_text(str(os.getpid()))
    staged.rename(marker)


@app.task(bind=True)
def hang_first_time(self: Any, marker_dir: str) -> int:
    """The first run announces itself and then hangs (for a test to kill its worker); any
    later run returns at once with the attempt it ran in."""
    marker = Path(marker_dir) / self.request.id
    if not marker.exists():
        _announce(marker)
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
    _announce(Path(marker_dir) / self.request.id)
    time.sleep(300)


@app.task(bind=True)
def announce_then_sleep(self: Any, marker_dir: str, seconds: float) -> int:
    """Write this process's pid to ``marker_dir/<job id>``, sleep, and return the pid: for a
    test that stops a worker while the job runs."""
    _announce(Path(marker_dir) / self.request.id)
    time.sleep(seconds)
    return os.getpid()


@app.task(bind=True)
def long_task(self: Any, seconds_per_step: float = 1.0) -> dict[str, Any]:
    """Background task that runs a long function with progress reports.

    The long_task of Miguel Grinberg's "Using Celery with Flask", as written there but for
    its pace (a step of ``seconds_per_step`` rather than 1 s)."""
    verb = ["Starting up", "Booting", "Repairing", "Loading", "Checking"]
    adjective = ["master", "radiant", "silent", "harmonic", "fast"]
    noun = ["solar array", "particle reshaper", "cosmic ray", "orbiter", "bit"]
    message = ""
    total = random.randint(10, 50)  # noqa: S311 (a progress bar's pace, not a secret)
    for i in range(total):
        if not message or random.random() < 0.25:  # noqa: S311
            message = f"{random.choice(verb)} {random.choice(adjective)} {random.choice(noun)}..."  # noqa: S311
        self.update_state(state="PROGRESS", meta={"current": i, "total": total, "status": message})
        time.sleep(seconds_per_step)
    return {"current": 100, "total": 100, "status": "Task completed!", "result": 42}


@app.task(bind=True)
def long_task_that_fails(self: Any) -> None:
    self.update_state(state="PROGRESS", meta={"current": 1, "total": 2, "status": "halfway"})
    raise ValueError("the particle reshaper broke")


@app.task(bind=True)
def progress_then_wait(self: Any, marker_dir: str) -> str:
    """Report progress, then wait for ``marker_dir/go`` before returning: a test reads the
    progress of a running job from another process."""
    self.update_state(state="PROGRESS", meta={"done": 1, "total": 2, "pid": os.getpid()})
    go = Path(marker_dir) / "go"
    while not go.exists():
        time.sleep(0.02)
    return "finished"


@app.task(bind=True)
def run_until_terminated(self: Any, marker_dir: str) -> str:
    """Write this process's pid to ``marker_dir/<job id>``, then run (in short sleeps, so that
    an exception raised in its thread lands) until stopped; a thread that gets ``Terminated``
    writes ``<job id>.terminated``."""
    _announce(Path(marker_dir) / self.request.id)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(0.02)
    except Terminated:
        (Path(marker_dir) / f"{self.request.id}.terminated").write_text("")
        raise
    return "never stopped"


def _log_line(log_path: str, *fields: Any) -> None:
    # One write of one line, in append mode: lines of several processes never interleave.
    with open(log_path, "a") as log:
        log.write(" ".join(str(field) for field in fields) + "\n")


@app.task(bind=True, concurrency_limit=2)
def two_at_a_time(self: Any, log_path: str, seconds: float) -> None:
    """Log its start and end (wall clock, pid): at most two run at once, across workers."""
    _log_line(log_path, "start", self.request.id, time.time(), os.getpid())
    time.sleep(seconds)
    _log_line(log_path, "end", self.request.id, time.time(), os.getpid())


@app.task(
    bind=True,
    concurrency_limit=1,
    concurrency_key=lambda log_path, account, seconds: f"account:{account}",
)
def one_per_account(self: Any, log_path: str, account: str, seconds: float) -> None:
    """``two_at_a_time``, one at a time per account."""
    _log_line(log_path, "start", self.request.id, time.time(), account)
    time.sleep(seconds)
    _log_line(log_path, "end", self.request.id, time.time(), account)


@app.task(bind=True, rate_limit="10/s")
def ten_per_second(self: Any, log_path: str) -> None:
    """Log its start: at most ten a second (and the burst), across workers."""
    _log_line(log_path, "start", self.request.id, time.time(), os.getpid())


@app.task
def fails_until(marker: str) -> str:
    """Fails until the file ``marker`` exists (for a test to retry it once it would pass)."""
    if not Path(marker).exists():
        raise RuntimeError(f"{marker} does not exist yet")
    return "done"


@app.task(bind=True)
def run_on_host(self: Any, log_path: str, seconds: float) -> str:
    """Log the run's start (job id, attempt, the host named by $SQLQUEUE_TEST_HOST, the
    machine's monotonic clock), sleep, and return ``host:attempt``: tests/test_hosts.py."""
    host = os.environ.get("SQLQUEUE_TEST_HOST", "?")
    _log_line(log_path, self.request.id, self.request.attempts, host, time.monotonic())
    time.sleep(seconds)
    return f"{host}:{self.request.attempts}"
