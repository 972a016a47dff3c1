"""Celery's AsyncResult API: task.AsyncResult, state and info in every status, the row's
fields, wait, forget, then, equality and repr; revoke(terminate=True) stopping a running job
in real workers' thread and process pools."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import start_worker, stop_worker, wait_until, work_off

from sqlqueue import (
    AsyncResult,
    Ignore,
    InvalidOptionError,
    JobNotFinishedError,
    JobNotFoundError,
    Reject,
    SQLQueue,
    TaskFailedError,
    TaskRevokedError,
)


def test_a_result_shows_its_job_as_celery_names_it(app: SQLQueue, add: Any) -> None:
    before = datetime.now(UTC)
    result = add.apply_async((2, 3), queue="sums")
    handle = add.AsyncResult(result.id)
    assert (handle.state, handle.info, handle.date_done, handle.worker) == (
        "PENDING",
        None,
        None,
        None,
    )
    work_off(app, queues=["sums"])
    assert (handle.state, handle.info, handle.result, handle.wait(timeout=5)) == (
        "SUCCESS",
        5,
        5,
        5,
    )
    assert (handle.name, handle.args, handle.kwargs, handle.queue, handle.retries) == (
        "t.add",
        [2, 3],
        {},
        "sums",
        0,
    )
    assert handle.date_done is not None and handle.date_done >= before.replace(microsecond=0)
    assert handle.worker is not None and handle.worker.split(":")[1] == str(os.getpid())


def test_info_of_a_failure_or_a_revoke_is_the_exception_get_returns(app: SQLQueue) -> None:
    @app.task(name="t.breaks")
    def breaks() -> None:
        raise KeyError("missing")

    failed = breaks.delay()
    revoked = breaks.delay()
    assert revoked.revoke() is True
    work_off(app)
    assert isinstance(failed.info, TaskFailedError) and failed.info.exc_type == "KeyError"
    assert str(failed.info) == str(failed.get(propagate=False))
    assert isinstance(revoked.info, TaskRevokedError)
    assert revoked.date_done is not None
    with pytest.raises(TaskFailedError):
        failed.wait(timeout=5, interval=0.1)


def test_info_of_a_rejected_job_is_its_reject_and_of_an_ignored_one_a_revoke(
    app: SQLQueue,
) -> None:
    @app.task(name="t.rejects")
    def rejects() -> None:
        raise Reject("bad payload")

    @app.task(name="t.ignores")
    def ignores() -> None:
        raise Ignore()

    rejected, ignored = rejects.delay(), ignores.delay()
    work_off(app)
    assert (rejected.state, ignored.state) == ("REJECTED", "IGNORED")
    assert isinstance(rejected.info, TaskFailedError)
    assert (rejected.info.exc_type, rejected.info.exc_message) == (
        "sqlqueue.exceptions.Reject",
        "bad payload",
    )
    with pytest.raises(TaskFailedError, match="bad payload"):
        rejected.get(timeout=1)
    assert isinstance(ignored.info, TaskRevokedError)


def test_equality_hash_and_repr_are_celerys(app: SQLQueue) -> None:
    one, same, other = app.AsyncResult("a"), app.AsyncResult("a"), app.AsyncResult("b")
    assert one == same and one == "a" and one != other and one != "b"
    assert len({one, same, other}) == 2
    assert repr(one) == "<AsyncResult: a>"


def test_forget_deletes_a_finished_job_and_refuses_an_unfinished_one(
    app: SQLQueue, add: Any
) -> None:
    done, waiting = add.delay(1, 1), add.apply_async((1, 2), countdown=3600)
    work_off(app)
    done.forget()
    with pytest.raises(JobNotFoundError):
        done.state  # noqa: B018 (a read)
    done.forget()  # nothing left to forget: nothing happens
    with pytest.raises(JobNotFinishedError, match="revoke\\(\\) it first"):
        waiting.forget()
    assert waiting.state == "PENDING"


def test_then_calls_back_once_the_job_is_seen_finished(app: SQLQueue, add: Any) -> None:
    called: list[Any] = []
    errors: list[Exception] = []
    result = add.delay(2, 2)
    result.then(lambda r: called.append(r.result))
    assert called == []  # not finished: nothing yet
    work_off(app)
    assert result.get(timeout=5) == 4
    assert called == [4]
    result.get(timeout=5)
    assert called == [4]  # once only

    def broken(_result: AsyncResult) -> None:
        raise RuntimeError("callback broke")

    result.then(broken, on_error=errors.append)  # finished already: at once
    assert [str(error) for error in errors] == ["callback broke"]
    with pytest.raises(RuntimeError, match="callback broke"):
        result.then(broken)


def test_revoke_refuses_a_signal_it_does_not_know(app: SQLQueue, add: Any) -> None:
    result = add.delay(1, 1)
    with pytest.raises(InvalidOptionError, match="names no signal"):
        result.revoke(terminate=True, signal="SIGNOPE")
    assert result.state == "PENDING"
    assert result.revoke(terminate=True, signal="KILL") is True


def test_revoke_without_terminate_leaves_a_running_job_alone(app: SQLQueue, add: Any) -> None:
    result = add.delay(1, 1)
    app.store.claim_jobs(1, None, "w1:1:a", 30)
    assert result.revoke() is False
    assert result.state == "STARTED"


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_revoke_terminate_stops_a_running_job(
    app: SQLQueue, db_url: str, tmp_path: Path, pool: str
) -> None:
    worker = start_worker(db_url, "--pool", pool, "--concurrency", "1")
    try:
        running = app.send_task("tasks.run_until_terminated", args=[str(tmp_path)])
        marker = tmp_path / running.id
        wait_until(marker.exists, 60, "the job to start")
        runner_pid = int(marker.read_text())

        assert running.revoke(terminate=True) is True
        assert running.state == "REVOKED" and running.date_done is not None
        if pool == "thread":
            # Terminated was raised in the task, which could clean up.
            terminated = tmp_path / f"{running.id}.terminated"
            wait_until(terminated.exists, 60, "Terminated raised in the job's thread")
        else:
            wait_until(lambda: not alive(runner_pid), 60, "the job's child to be killed")
        # The worker carries on (a process pool on a new child), and the stopped run's late
        # outcome was refused: the job stays REVOKED.
        after = app.send_task("tasks.whose_pid")
        pid = after.get(timeout=60)
        assert pid != runner_pid if pool == "process" else pid == worker.pid
        with pytest.raises(TaskRevokedError):
            running.get(timeout=1)
        assert running.state == "REVOKED"
        assert running.revoke(terminate=True) is False  # finished: nothing to do
    finally:
        output = stop_worker(worker)
    assert "revoked while it ran: stopping it" in output, output


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child stays a zombie until its parent reaps it, which the worker does.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False
