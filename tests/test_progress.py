"""Celery's update_state: progress written by a running job, read from any process, fenced
by the job's take, cleared when the job leaves STARTED; thread and process pools, eager mode,
and the progress-bar pattern of "Using Celery with Flask" run as written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from conftest import start_worker, stop_worker, wait_until, work_off

from sqlqueue import (
    InvalidOptionError,
    NotRunningError,
    SerializationError,
    SQLQueue,
    TaskFailedError,
)
from sqlqueue.jobs import JobStatus


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_progress_of_a_running_job_is_read_from_another_process(
    app: SQLQueue, db_url: str, tmp_path: Path, pool: str
) -> None:
    worker = start_worker(db_url, "--pool", pool, "--concurrency", "1")
    try:
        result = app.send_task("tasks.progress_then_wait", args=[str(tmp_path)])
        wait_until(lambda: result.state == "PROGRESS", 60, "the job's progress")
        info = result.info
        assert (result.status, info["done"], info["total"]) == ("STARTED", 1, 2)
        if pool == "process":  # written by the child, through its own connection
            assert info["pid"] != worker.pid
        (tmp_path / "go").write_text("")
        assert result.get(timeout=60) == "finished"
        # Once finished, the outcome shows, as in Celery; the progress is gone from the row.
        assert (result.state, result.info) == ("SUCCESS", "finished")
        assert app.store.get_job(result.id).progress is None  # type: ignore[union-attr]
    finally:
        output = stop_worker(worker)
    assert "Traceback" not in output, output


def test_a_retry_clears_the_progress(app: SQLQueue) -> None:
    @app.task(name="t.retries", bind=True)
    def retries(self: Any) -> None:
        self.update_state(state="PROGRESS", meta={"step": 1})
        raise self.retry(countdown=3600)

    result = retries.delay()
    work_off(app)
    job = app.store.get_job(result.id)
    assert job is not None and (job.status, job.progress) == (JobStatus.RETRY, None)
    assert (result.state, result.info) == ("RETRY", None)


def test_a_job_given_back_or_rescued_loses_its_progress(app: SQLQueue, add: Any) -> None:
    result = add.delay(1, 2)
    [job] = app.store.claim_jobs(1, None, "w1", 30)
    assert app.store.update_progress((job.id, job.attempts), {"state": "P", "meta": 1})
    assert result.state == "P"
    assert app.store.release_jobs([(job.id, job.attempts)]) == 1
    assert (result.state, app.store.get_job(job.id).progress) == ("PENDING", None)  # type: ignore[union-attr]
    [job] = app.store.claim_jobs(1, None, "w1", 0.001)
    assert app.store.update_progress((job.id, job.attempts), {"state": "P", "meta": 2})
    wait_until(lambda: app.store.rescue_expired_jobs(3) == 1, 10, "the lease to run out")
    assert (result.state, app.store.get_job(job.id).progress) == ("PENDING", None)  # type: ignore[union-attr]


def test_a_run_that_lost_its_job_writes_no_progress(app: SQLQueue, add: Any) -> None:
    result = add.delay(1, 2)
    [job] = app.store.claim_jobs(1, None, "w1", 30)
    assert app.store.update_progress((job.id, job.attempts), {"state": "A", "meta": 1})
    # A later take of the job (the lease ran out, another worker took it): the old one is
    # fenced off.
    assert not app.store.update_progress((job.id, job.attempts - 1), {"state": "B", "meta": 2})
    assert app.store.revoke_jobs([job.id], terminate=True) == 1
    assert not app.store.update_progress((job.id, job.attempts), {"state": "C", "meta": 3})
    assert (result.state, app.store.get_job(job.id).progress) == ("REVOKED", None)  # type: ignore[union-attr]


def test_update_state_refuses_what_it_cannot_write(app: SQLQueue) -> None:
    refusals: dict[str, str] = {}

    @app.task(name="t.says", bind=True)
    def says(self: Any) -> None:
        for name, call in (
            ("finished state", lambda: self.update_state(state="SUCCESS", meta={})),
            ("no state", lambda: self.update_state(meta={"a": 1})),
            ("other job", lambda: self.update_state(task_id="other", state="PROGRESS")),
            ("not JSON", lambda: self.update_state(state="PROGRESS", meta={"a": object()})),
            ("backend option", lambda: self.update_state(state="P", request=None)),
        ):
            try:
                call()
            except (InvalidOptionError, SerializationError) as exc:
                refusals[name] = f"{type(exc).__name__}: {exc}"
        # The running job's own id, given as Celery code often does, and STARTED, are fine.
        self.update_state(task_id=self.request.id, state="STARTED", meta={"ok": True})

    result = says.delay()
    work_off(app)
    result.get(timeout=10)
    assert set(refusals) == {
        "finished state",
        "no state",
        "other job",
        "not JSON",
        "backend option",
    }
    assert "a name of your own, such as 'PROGRESS'" in refusals["finished state"]
    assert refusals["not JSON"].startswith("SerializationError")


def test_update_state_outside_a_running_job_says_so(app: SQLQueue) -> None:
    @app.task(name="t.direct", bind=True)
    def direct(self: Any) -> None:
        self.update_state(state="PROGRESS", meta={})

    with pytest.raises(NotRunningError, match="from a bind=True task while a worker"):
        direct()
    with pytest.raises(NotRunningError):
        direct.update_state(state="PROGRESS")


def test_update_state_in_eager_mode_and_apply_is_checked_and_the_result_is_the_outcome(
    app: SQLQueue,
) -> None:
    app.conf.task_always_eager = True
    seen: list[str] = []

    @app.task(name="t.eager", bind=True)
    def eager(self: Any) -> int:
        self.update_state(state="PROGRESS", meta={"current": 1})
        try:
            self.update_state(state="FAILURE")
        except InvalidOptionError:
            seen.append("refused")
        return 7

    result = eager.delay()
    assert (result.state, result.info, result.get(), seen) == ("SUCCESS", 7, 7, ["refused"])
    applied = eager.apply()
    assert (applied.state, applied.info, seen) == ("SUCCESS", 7, ["refused", "refused"])


# The status view of "Using Celery with Flask" (Miguel Grinberg), as written there, with
# Flask's jsonify left out: it returns the dict the view would send.
def taskstatus(long_task: Any, task_id: str) -> dict[str, Any]:
    task = long_task.AsyncResult(task_id)
    if task.state == "PENDING":
        # job did not start yet
        response = {"state": task.state, "current": 0, "total": 1, "status": "Pending..."}
    elif task.state != "FAILURE":
        response = {
            "state": task.state,
            "current": task.info.get("current", 0),
            "total": task.info.get("total", 1),
            "status": task.info.get("status", ""),
        }
        if "result" in task.info:
            response["result"] = task.info["result"]
    else:
        # something went wrong in the background job
        response = {
            "state": task.state,
            "current": 1,
            "total": 1,
            "status": str(task.info),  # this is the exception raised
        }
    return response


def test_the_flask_progress_bar_pattern_works_as_written(app: SQLQueue, db_url: str) -> None:
    # The web process's handle on the task: sent by name, as a web app that imports the
    # task's module would with long_task.apply_async().
    long_task = app.task(name="tasks.long_task", bind=True)(lambda self, seconds_per_step=1.0: None)
    failing = app.task(name="tasks.long_task_that_fails", bind=True)(lambda self: None)
    worker = start_worker(db_url, "--concurrency", "2")
    try:
        task = long_task.apply_async(kwargs={"seconds_per_step": 0.05})
        responses = [taskstatus(long_task, task.id)]
        while responses[-1]["state"] not in ("SUCCESS", "FAILURE"):
            responses.append(taskstatus(long_task, task.id))
        failed = failing.apply_async()
        # The view reads the row three times; a job that fails between its state check and
        # its info read gives the view an exception where it wants a dict, in Celery too.
        wait_until(failed.ready, 60, "the failing job's end")
        failed_response = taskstatus(failing, failed.id)
    finally:
        stop_worker(worker)
    # The view reads the row up to six times, as it reads Celery's backend: a response may
    # mix reads from either side of a change (the job's last progress with its result). The
    # others show the task's progress, in order.
    progress = [
        r
        for r in responses
        if r["state"] == "PROGRESS" and 10 <= r["total"] <= 50 and r["status"].endswith("...")
    ]
    assert len(progress) >= 2, responses
    currents = [r["current"] for r in progress]
    assert currents == sorted(currents), responses
    # Before the first report the job may be PENDING, or STARTED with no progress, whose
    # info is a dict too, so that the view's .get() works.
    assert {r["state"] for r in responses} <= {"PENDING", "STARTED", "PROGRESS", "SUCCESS"}
    assert responses[-1] == {
        "state": "SUCCESS",
        "current": 100,
        "total": 100,
        "status": "Task completed!",
        "result": 42,
    }
    assert failed_response["state"] == "FAILURE"
    assert "ValueError: the particle reshaper broke" in failed_response["status"]
    with pytest.raises(TaskFailedError):
        failed.get(timeout=1)


def test_a_started_job_without_progress_shows_its_worker(app: SQLQueue, add: Any) -> None:
    result = add.delay(1, 2)
    app.store.claim_jobs(1, None, f"web-1:{os.getpid()}:abc123", 30)
    assert (result.state, result.info) == (
        "STARTED",
        {"worker": f"web-1:{os.getpid()}:abc123", "hostname": "web-1", "pid": os.getpid()},
    )
