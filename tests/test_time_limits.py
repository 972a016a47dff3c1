"""Time limits and the process pool: soft and hard limits in threads and in child processes,
and children that crash."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from conftest import start_worker, work_off

from sqlqueue import SoftTimeLimitExceeded, SQLQueue, WorkerOptions, timelimits
from sqlqueue.exceptions import InvalidOptionError, TaskFailedError
from sqlqueue.execution import run_task
from sqlqueue.outcomes import Outcome
from sqlqueue.request import Request
from sqlqueue.timelimits import thread_time_limits


def busy(seconds: float) -> None:
    """Pure-Python work in short steps (a thread's limit is delivered between bytecodes)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)


def test_in_a_thread_the_soft_limit_lets_the_task_clean_up(app: SQLQueue) -> None:
    @app.task(name="t.tidy", soft_time_limit=0.2)
    def tidy() -> str:
        try:
            busy(10)
        except SoftTimeLimitExceeded:
            return "cleaned up"
        return "finished"

    result = tidy.delay()
    work_off(app)
    assert result.get(timeout=5) == "cleaned up"


def test_in_a_thread_the_hard_limit_fails_the_job_and_frees_the_slot(app: SQLQueue) -> None:
    @app.task(name="t.endless", time_limit=0.2)
    def endless() -> None:
        busy(10)

    @app.task(name="t.next")
    def next_job() -> str:
        return "ran"

    stuck, after = endless.delay(), next_job.delay()
    started = time.monotonic()
    work_off(app, concurrency=1)

    assert time.monotonic() - started < 5
    with pytest.raises(
        TaskFailedError, match="TimeLimitExceeded: The task ran past its time_limit"
    ):
        stuck.get(timeout=1)
    assert after.get(timeout=1) == "ran"


def test_a_limit_that_was_not_reached_never_fires_later(app: SQLQueue) -> None:
    @app.task(name="t.quick", time_limit=0.2, soft_time_limit=0.1)
    def quick() -> str:
        return "done"

    @app.task(name="t.later")
    def later() -> str:
        busy(0.4)  # runs in the same thread after the limits of quick() would have passed
        return "undisturbed"

    first, second = quick.delay(), later.delay()
    work_off(app, concurrency=1)
    assert (first.get(timeout=1), second.get(timeout=1)) == ("done", "undisturbed")


def test_limits_must_be_positive_numbers(app: SQLQueue) -> None:
    with pytest.raises(InvalidOptionError, match="time_limit must be more than 0"):
        app.task(name="t.zero", time_limit=0)(lambda: None)
    with pytest.raises(InvalidOptionError, match="soft_time_limit must be a number"):
        app.task(name="t.word", soft_time_limit="soon")(lambda: None)


def test_a_process_pool_needs_to_know_how_to_import_the_app() -> None:
    with pytest.raises(InvalidOptionError, match="app_spec"):
        WorkerOptions(pool="process")


@pytest.mark.slow
def test_the_process_pool_survives_crashes_and_kills_tasks_past_their_hard_limit(
    app: SQLQueue, db_url: str
) -> None:
    sent: dict[str, Any] = {
        "exit": app.send_task("tasks.crash", args=["exit"]),
        "segfault": app.send_task("tasks.crash", args=["segfault"]),
        "endless": app.send_task("tasks.never_returns"),
        "soft": app.send_task("tasks.cleans_up"),
    }
    after = [app.send_task("tasks.whose_pid") for _ in range(4)]

    worker = start_worker(
        db_url, "--burst", "--pool", "process", "-c", "2", "--poll-interval", "0.1"
    )
    output, _ = worker.communicate(timeout=120)

    assert worker.returncode == 0, output
    with pytest.raises(TaskFailedError, match=r"WorkerLostError: .* exited with code 3"):
        sent["exit"].get(timeout=1)
    with pytest.raises(TaskFailedError, match=r"WorkerLostError: .* exited with signal SIGSEGV"):
        sent["segfault"].get(timeout=1)
    with pytest.raises(TaskFailedError, match=r"TimeLimitExceeded: time limit \(1s\) exceeded"):
        sent["endless"].get(timeout=1)
    assert sent["soft"].get(timeout=1) == "cleaned up"
    # The jobs after the crashes ran, in child processes, not in the worker itself.
    pids = {result.get(timeout=1) for result in after}
    assert worker.pid not in pids


def starts_threads_until_stopped() -> str:
    """Start and join threads until the soft limit stops it, the way a task using a thread
    pool or a client library that starts threads would."""
    try:
        while True:
            thread = threading.Thread(target=lambda: None)
            thread.start()
            thread.join()
    except SoftTimeLimitExceeded:
        return "stopped"


def test_a_limit_lands_in_its_task_even_while_the_task_starts_threads() -> None:
    # Given a task with a short soft limit that does nothing but start threads
    task = SQLQueue("sqlite://").task(name="t.threads", soft_time_limit=0.02)(
        starts_threads_until_stopped
    )
    request = Request(id="r", task=task.name, args=(), kwargs={}, retries=0, attempts=1, queue="q")
    outcomes: list[Outcome] = []

    def run_many() -> None:
        for _ in range(50):
            outcomes.append(run_task(task, request, thread_time_limits))

    # When it runs many times under the thread pool's limits
    runner = threading.Thread(target=run_many, daemon=True)
    runner.start()
    runner.join(timeout=30)

    # I expect every run to be stopped by its limit and to return: none stuck in
    # Thread.start() because the limit killed the thread it was starting
    assert not runner.is_alive(), f"a run never returned after {len(outcomes)} run(s)"
    assert outcomes == [Outcome.succeeded('"stopped"')] * 50


def test_a_limit_that_fires_as_the_task_returns_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a task that returns at once, and a soft limit that passes after it returned and
    # before the limits are lifted: the watcher raises it only once the task has returned,
    # and the first lift waits, in Python code, until it has been raised
    task = SQLQueue("sqlite://").task(name="t.quick", soft_time_limit=0.05)(lambda: "done")
    returned, raised = threading.Event(), threading.Event()
    real_raise, real_lift = timelimits._Watch._raise, timelimits._Watch.lift
    landed: list[str] = []

    def raise_once_returned(watch: Any, error: type[BaseException]) -> bool:
        returned.wait(30)
        done = real_raise(watch, error)
        if done:
            raised.set()
        return done

    def late_lift(watch: Any) -> None:
        if not returned.is_set():
            returned.set()
            try:
                raised.wait(30)
                busy(0.05)  # bytecodes, between which the limit lands
            except SoftTimeLimitExceeded:
                landed.append("in the first lift")
                raise
        real_lift(watch)

    monkeypatch.setattr(timelimits._Watch, "_raise", raise_once_returned)
    monkeypatch.setattr(timelimits._Watch, "lift", late_lift)

    # When it runs under the thread pool's limits
    result = thread_time_limits(task, task)

    # I expect its return value, the limit dropped where it landed, and no limit raised in
    # this thread afterwards
    assert result == "done"
    assert landed == ["in the first lift"]
    busy(0.3)
