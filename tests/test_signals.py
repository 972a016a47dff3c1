"""Celery's signals (``sqlqueue.signals``): their names, arguments and order, sent by the
process that runs the task: a worker's thread, a process-pool child, an eager call."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TESTS_DIR, sqlqueue_command, work_off

from sqlqueue import DatabaseError, SQLQueue, signals
from sqlqueue.hooks import ExceptionInfo
from sqlqueue.worker import Worker
from sqlqueue.worker_options import WorkerOptions

ALL = (
    signals.task_prerun,
    signals.task_postrun,
    signals.task_success,
    signals.task_failure,
    signals.task_retry,
    signals.worker_ready,
    signals.worker_shutdown,
)


@pytest.fixture
def heard() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every signal sent in this process while the test runs: (name, arguments)."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def receiver(signal: signals.Signal, **named: Any) -> None:
        calls.append((signal.name, named))

    for signal in ALL:
        signal.connect(receiver)
    yield calls
    for signal in ALL:
        assert signal.disconnect(receiver)


def tasks(app: SQLQueue) -> Any:
    class Tasks:
        @staticmethod
        @app.task(name="t.add")
        def add(x: int, y: int) -> int:
            return x + y

        @staticmethod
        @app.task(name="t.fail")
        def fail(message: str) -> None:
            raise ValueError(message)

        @staticmethod
        @app.task(name="t.again", bind=True, max_retries=1)
        def again(self: Any) -> None:
            raise self.retry(exc=KeyError("later"), countdown=0)

    return Tasks


def test_a_worker_on_a_database_never_migrated_is_never_ready(
    tmp_path: Path, heard: list[tuple[str, dict[str, Any]]]
) -> None:
    # Given a database without sqlqueue's tables, when a worker starts on it
    bare = SQLQueue(f"sqlite:///{tmp_path / 'bare.db'}")
    with pytest.raises(DatabaseError, match="run `sqlqueue migrate`"):
        Worker(bare, WorkerOptions(poll_interval=0.05)).run()
    bare.engine.dispose()

    # I expect no worker_ready: it stopped before its first claim answered
    assert "worker_ready" not in [name for name, _ in heard]


def test_a_success_sends_prerun_success_postrun_in_a_worker_thread(
    app: SQLQueue, heard: list[tuple[str, dict[str, Any]]]
) -> None:
    add = tasks(app).add
    job = add.delay(2, 3)
    work_off(app, concurrency=1)

    task_signals = [(name, named) for name, named in heard if name.startswith("task_")]
    assert [name for name, _ in task_signals] == ["task_prerun", "task_success", "task_postrun"]
    prerun, success, postrun = (named for _, named in task_signals)
    assert prerun == {"sender": add, "task_id": job.id, "task": add, "args": [2, 3], "kwargs": {}}
    assert success == {"sender": add, "result": 5}
    assert postrun == {**prerun, "retval": 5, "state": "SUCCESS"}
    worker_signals = [name for name, _ in heard if name.startswith("worker_")]
    assert worker_signals == ["worker_ready", "worker_shutdown"]


def test_a_failure_sends_the_exception_and_its_traceback(
    app: SQLQueue, heard: list[tuple[str, dict[str, Any]]]
) -> None:
    fail = tasks(app).fail
    job = fail.delay("broken")
    work_off(app, concurrency=1)

    failures = [named for name, named in heard if name == "task_failure"]
    (failure,) = failures
    assert failure["sender"] is fail
    assert failure["task_id"] == job.id
    assert (failure["args"], failure["kwargs"]) == (["broken"], {})
    assert isinstance(failure["exception"], ValueError)
    assert failure["traceback"] is failure["exception"].__traceback__
    assert isinstance(failure["einfo"], ExceptionInfo)
    assert "ValueError: broken" in failure["einfo"].traceback
    (postrun,) = [named for name, named in heard if name == "task_postrun"]
    assert (postrun["state"], postrun["retval"]) == ("FAILURE", failure["exception"])


def test_a_retry_sends_its_request_and_reason(
    app: SQLQueue, heard: list[tuple[str, dict[str, Any]]]
) -> None:
    again = tasks(app).again
    job = again.delay()
    work_off(app, concurrency=1)

    (retry,) = [named for name, named in heard if name == "task_retry"]
    assert retry["sender"] is again
    assert retry["request"].id == job.id
    assert isinstance(retry["reason"], KeyError)
    states = [named["state"] for name, named in heard if name == "task_postrun"]
    assert states == ["RETRY", "FAILURE"]  # max_retries=1: the second run fails


def test_a_receiver_for_one_sender_hears_only_that_tasks_jobs(app: SQLQueue) -> None:
    both = tasks(app)
    by_object: list[Any] = []
    by_name: list[Any] = []

    def on_object(sender: Any, **_: Any) -> None:
        by_object.append(sender.name)

    def on_name(sender: Any, **_: Any) -> None:
        by_name.append(sender.name)

    signals.task_prerun.connect(on_object, sender=both.add)
    signals.task_prerun.connect(sender="t.fail")(on_name)
    try:
        both.add.delay(1, 1)
        both.fail.delay("x")
        work_off(app, concurrency=1)
    finally:
        assert signals.task_prerun.disconnect(on_object, sender=both.add)
        assert signals.task_prerun.disconnect(on_name, sender="t.fail")
    assert (by_object, by_name) == (["t.add"], ["t.fail"])
    assert on_object not in signals.task_prerun.receivers


def test_connect_as_a_decorator_and_once_per_dispatch_uid() -> None:
    calls: list[int] = []

    @signals.worker_ready.connect
    def first(**_: Any) -> None:
        calls.append(1)

    for _ in range(2):
        signals.worker_ready.connect(lambda **_: calls.append(2), dispatch_uid="only-once")
    try:
        signals.worker_ready.send(sender=None)
    finally:
        signals.worker_ready.disconnect(first)
        assert signals.worker_ready.disconnect(dispatch_uid="only-once")
    assert calls == [1, 2]
    assert not signals.worker_ready.disconnect(first)


def test_a_receiver_that_raises_is_logged_and_the_job_succeeds(
    app: SQLQueue, caplog: pytest.LogCaptureFixture
) -> None:
    add = tasks(app).add

    def broken(**_: Any) -> None:
        raise RuntimeError("receiver bug")

    heard_after: list[str] = []
    signals.task_prerun.connect(broken)
    signals.task_success.connect(broken)
    signals.task_prerun.connect(
        lambda **_: heard_after.append("still called"), dispatch_uid="after"
    )
    try:
        job = add.delay(1, 2)
        with caplog.at_level(logging.ERROR, logger="sqlqueue.signals"):
            work_off(app, concurrency=1)
    finally:
        signals.task_prerun.disconnect(broken)
        signals.task_prerun.disconnect(dispatch_uid="after")
        signals.task_success.disconnect(broken)
    assert job.get(timeout=5) == 3
    assert heard_after == ["still called"]
    messages = [record.getMessage() for record in caplog.records]
    assert any("task_prerun" in message and "broken" in message for message in messages)
    assert any("receiver bug" in (record.exc_text or "") for record in caplog.records)


def test_an_eager_run_sends_the_task_signals_in_the_caller(
    app: SQLQueue, heard: list[tuple[str, dict[str, Any]]]
) -> None:
    app.conf.task_always_eager = True
    add = tasks(app).add

    assert add.delay(4, 4).get() == 8

    assert [name for name, _ in heard] == ["task_prerun", "task_success", "task_postrun"]


def run_worker(db_url: str, log: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*sqlqueue_command(), "worker", "-A", "signal_tasks", "--burst", *options],
        cwd=TESTS_DIR,
        env={**os.environ, "SQLQUEUE_DATABASE_URL": db_url, "SIGNAL_LOG": str(log)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_a_worker_process_sends_task_signals_where_the_task_runs(
    db_url: str, app: SQLQueue, tmp_path: Path, pool: str
) -> None:
    log = tmp_path / "signals.jsonl"
    ok = app.send_task("tasks.add", args=[1, 2])
    bad = app.send_task("tasks.fail", args=["nope"])

    completed = run_worker(db_url, log, "--pool", pool, "-c", "1")

    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    by_job = {
        job_id: [line["signal"] for line in lines if line.get("task_id") == job_id]
        for job_id in (ok.id, bad.id)
    }
    assert by_job == {
        ok.id: ["task_prerun", "task_postrun"],  # (task_success has no task_id)
        bad.id: ["task_prerun", "task_failure", "task_postrun"],
    }
    assert [line["result"] for line in lines if line["signal"] == "task_success"] == [3]
    (failure,) = [line for line in lines if line["signal"] == "task_failure"]
    assert failure["exception"] == "ValueError('nope')" and failure["args"] == ["nope"]
    worker = [line for line in lines if line["signal"].startswith("worker_")]
    assert [line["signal"] for line in worker] == ["worker_ready", "worker_shutdown"]
    assert {line["sender"] for line in worker} == {"Worker"}
    task_pids = {line["pid"] for line in lines if line["signal"].startswith("task_")}
    worker_pid = worker[0]["pid"]
    if pool == "process":
        assert worker_pid not in task_pids  # sent in the child that ran the task
    else:
        assert task_pids == {worker_pid}
