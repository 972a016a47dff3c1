"""Celery's task API (API.md §14, Tasks): shared_task, base= with class options and hooks,
ignore_result, autoretry and backoff options, self.retry(...), Reject, Ignore, apply().

Jobs run on real worker processes (`sqlqueue worker -A celery_worker`, both pools) where a
worker is involved, on SQLite and PostgreSQL; the tasks are in celery_shared.py.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import TESTS_DIR, count_jobs, sqlqueue_command, work_off

import sqlqueue.shared
from sqlqueue import (
    CeleryCompatibilityWarning,
    ConfigurationError,
    EagerResult,
    Ignore,
    InvalidOptionError,
    Reject,
    SQLQueue,
    Task,
    TaskFailedError,
    TaskRevokedError,
    current_app,
    shared_task,
)


@pytest.fixture
def celery_shared(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The shared tasks of celery_shared.py, defined anew for this test: registered in the
    apps made so far and in those the test makes, and forgotten after it, so that the apps of
    other tests keep only their own tasks."""
    monkeypatch.setattr(sqlqueue.shared, "_shared", [])
    if "celery_shared" in sys.modules:
        return importlib.reload(sys.modules["celery_shared"])
    return importlib.import_module("celery_shared")


def run_worker(db_url: str, pool: str) -> None:
    """A real worker process on the test's database, until no ready job is left."""
    done = subprocess.run(
        [
            *sqlqueue_command(),
            *("worker", "-A", "celery_worker", "--burst", "-c", "2", "--pool", pool),
            *("--poll-interval", "0.05"),
        ],
        cwd=TESTS_DIR,
        env={**os.environ, "SQLQUEUE_DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def hooks_called(log: Path, job_id: str) -> list[dict[str, Any]]:
    """The hook calls of one job, in order, without its id."""
    if not log.exists():
        return []
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    return [{k: v for k, v in e.items() if k != "id"} for e in entries if e["id"] == job_id]


def row(app: SQLQueue, job_id: str) -> Any:
    job = app.store.get_job(job_id)
    assert job is not None
    return job


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_a_celery_style_task_module_runs_on_worker_processes(
    app: SQLQueue, celery_shared: ModuleType, tmp_path: Path, pool: str
) -> None:
    # Given shared tasks on a Task base class (retries, hooks), sent through the current
    # app, which is the test's: the last one made
    log = str(tmp_path / "hooks.log")
    sent = {
        "flaky": celery_shared.flaky.delay(2, log=log),
        "missing_file": celery_shared.missing_file.delay(log=log),
        "big_report": celery_shared.big_report.delay(log=log),
        "reject": celery_shared.rejects.delay(False, log=log),
        "requeue": celery_shared.rejects.delay(True, log=log),
        "ignores": celery_shared.ignores.delay(log=log),
        "new_args": celery_shared.retry_with_new_args.delay(1, log=log),
        "no_throw": celery_shared.retry_without_throw.delay(log=log),
        "gives_up": celery_shared.gives_up.delay(log=log),
        "notifies": celery_shared.notifies.delay(log=log),
    }
    assert count_jobs(app) == len(sent)

    # When a worker process (of either pool) has run them all
    run_worker(app.engine.url.render_as_string(hide_password=False), pool)
    ids = {name: result.id for name, result in sent.items()}

    def calls(name: str) -> list[dict[str, Any]]:
        return hooks_called(tmp_path / "hooks.log", ids[name])

    # I expect autoretry_for=(IOError,) from the base class to retry an OSError, at once
    # (its default_retry_delay is 0), and each hook to be called with Celery's arguments
    flaky = row(app, ids["flaky"])
    assert (flaky.status, flaky.retries, flaky.result) == ("SUCCESS", 2, 2)
    retry = {"hook": "on_retry", "exc": "OSError", "args": [2]}
    assert calls("flaky") == [
        {"hook": "before_start"},
        retry,
        {"hook": "before_start"},
        retry,
        {"hook": "before_start"},
        {"hook": "on_success", "retval": 2},
        {"hook": "after_return", "status": "SUCCESS"},
    ]

    # ... dont_autoretry_for to win over autoretry_for, and on_failure to get an einfo
    missing = row(app, ids["missing_file"])
    assert (missing.status, missing.retries, missing.error_type) == (
        "FAILURE",
        0,
        "FileNotFoundError",
    )
    assert calls("missing_file")[1:] == [
        {
            "hook": "on_failure",
            "exc": "FileNotFoundError",
            "einfo_type": "FileNotFoundError",
            "einfo_is_exc": True,
            "traceback_names_it": True,
        },
        {"hook": "after_return", "status": "FAILURE"},
    ]

    # ... ignore_result to keep no result (nor encode it: it is no JSON), but SUCCESS
    assert (row(app, ids["big_report"]).status, row(app, ids["big_report"]).result) == (
        "SUCCESS",
        None,
    )
    assert sent["big_report"].get(timeout=1) is None
    assert [c["hook"] for c in calls("big_report")] == [
        "before_start",
        "on_success",
        "after_return",
    ]

    # ... Reject to end the job at once, though autoretry_for=(Exception,), with no hook
    rejected = row(app, ids["reject"])
    assert (rejected.status, rejected.retries, rejected.error_type, rejected.error_message) == (
        "REJECTED",
        0,
        "sqlqueue.exceptions.Reject",
        "bad payload",
    )
    assert calls("reject") == [{"hook": "before_start"}]

    # ... Reject(requeue=True) to put the job back, not as a retry, and the next take to run
    requeued = row(app, ids["requeue"])
    assert (requeued.status, requeued.retries, requeued.attempts, requeued.result) == (
        "SUCCESS",
        0,
        2,
        "second take",
    )

    # ... Ignore to end the job IGNORED, with no hook called
    ignored = row(app, ids["ignores"])
    assert (ignored.status, ignored.error_type) == ("IGNORED", "sqlqueue.exceptions.Ignore")
    with pytest.raises(TaskRevokedError, match="raised Ignore"):
        sent["ignores"].get(timeout=1)
    assert calls("ignores") == [{"hook": "before_start"}]

    # ... retry(args=...) to run the next try with the new arguments, stored in the row
    new_args = row(app, ids["new_args"])
    assert (new_args.status, new_args.result, new_args.args, new_args.retries) == (
        "SUCCESS",
        2,
        [2],
        1,
    )
    assert calls("new_args")[1] == {"hook": "on_retry", "exc": "NoneType", "args": [1]}

    # ... retry(throw=False) to retry the job even though the run returned
    no_throw = row(app, ids["no_throw"])
    assert (no_throw.status, no_throw.retries, no_throw.result) == ("SUCCESS", 1, "second run")

    # ... retry(exc=...) past max_retries to fail with that exception itself
    gave_up = row(app, ids["gives_up"])
    assert (gave_up.status, gave_up.retries, gave_up.error_type) == ("FAILURE", 1, "KeyError")

    # ... and an on_success that raises to fail the job with its error, on_failure told
    notified = row(app, ids["notifies"])
    assert (notified.status, notified.error_type, notified.error_message) == (
        "FAILURE",
        "ValueError",
        "could not notify",
    )
    assert [c["hook"] for c in calls("notifies")] == ["before_start", "on_success", "on_failure"]


def test_shared_tasks_have_a_copy_in_every_app_and_follow_the_current_one(
    db_url: str, celery_shared: ModuleType
) -> None:
    # Given two apps, made after the shared tasks were defined
    first, second = SQLQueue(db_url), SQLQueue(db_url)
    try:
        # I expect each to have registered its own copy, and the last made to be current
        name = "celery_shared.flaky"
        assert first.tasks[name] is not second.tasks[name]
        assert celery_shared.flaky.app is second
        assert isinstance(celery_shared.flaky, Task)

        # ... until another is made current, which current_app stands for too
        first.set_current()
        assert celery_shared.flaky.app is first
        assert current_app.tasks is first.tasks
        assert celery_shared.flaky.delay(0, log="unused").app is first

        # ... and a shared task defined now to be registered in both at once
        @shared_task(name="t.late")
        def late(x: int) -> int:
            return x * 2

        assert late.name == "t.late"
        assert "t.late" in first.tasks and "t.late" in second.tasks
        assert late(4) == 8  # a direct call, as any task's
    finally:
        first.engine.dispose()
        second.engine.dispose()


def test_a_shared_task_used_with_no_app_says_to_make_one(
    celery_shared: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlqueue.shared, "_current", None)
    with pytest.raises(ConfigurationError, match="no sqlqueue app exists"):
        celery_shared.flaky.delay(0, log="unused")


def test_class_attributes_are_defaults_and_decorator_options_win(app: SQLQueue) -> None:
    # Given a base class with options, and a project's own option
    class Slow(Task):
        queue = "slow"
        priority = 3
        max_retries = 5
        expires = 3600.0
        notify_channel = "ops"

    # When a task takes the class and overrides one option and the project's own
    @app.task(base=Slow, priority=7, notify_channel="billing")
    def report(n: int) -> int:
        return n

    # I expect the class's options where the decorator gave none
    assert isinstance(report, Slow)
    assert (report.queue, report.priority, report.max_retries) == ("slow", 7, 5)
    assert report.notify_channel == "billing"
    job = row(app, report.delay(1).id)
    assert (job.queue, job.priority) == ("slow", 7)
    assert job.expires_at is not None
    assert job.expires_at - job.created_at == timedelta(seconds=3600)


def test_an_unknown_task_option_is_refused_with_the_nearest_name(app: SQLQueue) -> None:
    with pytest.raises(InvalidOptionError, match="did you mean max_retries="):

        @app.task(max_retry=3)
        def typo() -> None: ...

    assert "typo" not in str(list(app.tasks))


def test_celery_options_without_effect_are_accepted_with_a_warning(app: SQLQueue) -> None:
    with pytest.warns(CeleryCompatibilityWarning, match="acks_late= has no effect in sqlqueue"):

        @app.task(acks_late=True)
        def late_ack() -> None: ...

    assert late_ack.name in app.tasks


def test_a_base_class_call_wraps_each_run_as_flask_projects_do(app: SQLQueue) -> None:
    # Given Flask's documented pattern: a base class whose __call__ sets up a context and
    # calls self.run
    entered: list[str] = []

    class ContextTask(Task[..., Any]):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            entered.append(self.name)
            return self.run(*args, **kwargs)

    @app.task(base=ContextTask, bind=True, name="t.ctx")
    def whoami(self: Any) -> str:
        return str(self.request.id)

    # When a worker runs it, I expect the base's __call__ around the run
    result = whoami.delay()
    work_off(app)
    assert result.get(timeout=1) == result.id
    assert entered == ["t.ctx"]


def test_self_retry_waits_default_retry_delay_and_autoretry_backs_off(app: SQLQueue) -> None:
    # Given tasks with backoff, whose default_retry_delay is far above the backoff's cap
    options: dict[str, Any] = {
        "retry_backoff": True,
        "retry_backoff_max": 60,
        "default_retry_delay": 3600,
    }

    @app.task(name="t.manual", bind=True, **options)
    def manual(self: Any) -> None:
        raise self.retry()

    @app.task(name="t.auto", autoretry_for=(ConnectionError,), **options)
    def auto() -> None:
        raise ConnectionError("refused")

    @app.task(name="t.kw", autoretry_for=(TimeoutError,), retry_kwargs={"countdown": 3600})
    def kw() -> None:
        raise TimeoutError("slow")

    manual_id, auto_id, kw_id = manual.delay().id, auto.delay().id, kw.delay().id
    work_off(app)
    now = datetime.now(UTC)

    # I expect self.retry() without countdown to wait default_retry_delay, as in Celery
    assert row(app, manual_id).scheduled_at > now + timedelta(seconds=3000)
    # ... autoretry to back off (at most retry_backoff_max)
    assert row(app, auto_id).scheduled_at <= now + timedelta(seconds=61)
    # ... and without backoff, to wait retry_kwargs' countdown
    assert row(app, kw_id).scheduled_at > now + timedelta(seconds=3000)
    assert [row(app, i).status for i in (manual_id, auto_id, kw_id)] == ["RETRY"] * 3


def test_retry_kwargs_max_retries_bounds_autoretry(app: SQLQueue) -> None:
    @app.task(
        name="t.bounded",
        autoretry_for=(ValueError,),
        retry_kwargs={"max_retries": 1, "countdown": 0},
        max_retries=10,
    )
    def bounded() -> None:
        raise ValueError("bad value")

    result = bounded.delay()
    work_off(app)

    job = row(app, result.id)
    assert (job.status, job.retries, job.error_type) == ("FAILURE", 1, "ValueError")


def test_task_ignore_result_setting_applies_to_tasks_that_do_not_say(app: SQLQueue) -> None:
    app.conf.task_ignore_result = True

    @app.task(name="t.quiet")
    def quiet() -> int:
        return 1

    @app.task(name="t.loud", ignore_result=False)
    def loud() -> int:
        return 2

    quiet_result, loud_result = quiet.delay(), loud.delay()
    work_off(app)
    assert (quiet_result.get(timeout=1), loud_result.get(timeout=1)) == (None, 2)
    assert quiet_result.status == "SUCCESS"


def test_apply_runs_inline_with_hooks_and_retries_and_writes_nothing(
    app: SQLQueue, celery_shared: ModuleType, tmp_path: Path
) -> None:
    log = str(tmp_path / "hooks.log")

    # A retry with new arguments runs at once, and hooks are called
    result = celery_shared.retry_with_new_args.apply((5,), {"log": log}, task_id="mine")
    assert isinstance(result, EagerResult)
    assert (result.id, result.status, result.get()) == ("mine", "SUCCESS", 6)
    assert [c["hook"] for c in hooks_called(tmp_path / "hooks.log", "mine")] == [
        "before_start",
        "on_retry",
        "before_start",
        "on_success",
        "after_return",
    ]

    # A failure is returned, or raised with throw=True
    failed = celery_shared.missing_file.apply(kwargs={"log": log})
    assert failed.failed() and "FileNotFoundError" in str(failed.result)
    with pytest.raises(TaskFailedError, match="FileNotFoundError"):
        celery_shared.missing_file.apply(kwargs={"log": log}, throw=True)

    # Reject and Ignore end as a worker (and Celery's apply) ends them; ignore_result: None
    rejected = celery_shared.rejects.apply((True,), {"log": log})  # requeue=True: nobody to take it
    assert (rejected.status, rejected.state, rejected.failed()) == ("REJECTED", "REJECTED", False)
    with pytest.raises(TaskFailedError, match="Reject"):
        rejected.get()
    ignored = celery_shared.ignores.apply(kwargs={"log": log})
    assert (ignored.status, ignored.ready(), ignored.successful()) == ("IGNORED", True, False)
    assert celery_shared.big_report.apply(kwargs={"log": log}).get() is None
    assert count_jobs(app) == 0


def test_retry_when_called_directly_raises_the_exception_given(app: SQLQueue) -> None:
    @app.task(name="t.direct", bind=True)
    def direct(self: Any) -> None:
        raise self.retry(exc=KeyError("k"))

    with pytest.raises(KeyError):
        direct()


def test_retry_refuses_arguments_the_task_cannot_take(app: SQLQueue) -> None:
    @app.task(name="t.bad_retry", bind=True)
    def bad_retry(self: Any, x: int) -> None:
        raise self.retry(args=(1, 2), countdown=0)

    result = bad_retry.delay(1)
    work_off(app)
    job = row(app, result.id)
    assert (job.status, job.error_type, job.args) == (
        "FAILURE",
        "sqlqueue.exceptions.TaskArgumentsError",
        [1],
    )


def test_reject_and_ignore_are_importable_as_celery_names() -> None:
    assert repr(Reject("why", requeue=True)) == "reject requeue=True: why"
    assert issubclass(Ignore, Exception)


TYPED_PROJECT = """
from typing import Any
from sqlqueue import SQLQueue, Task, current_app, shared_task

app = SQLQueue("sqlite://")

class Base(Task):
    max_retries = 5
    autoretry_for = (IOError,)

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        print(einfo.traceback)

@app.task(base=Base, ignore_result=True, retry_backoff=2)
def add(x: int, y: int) -> int:
    return x + y

@shared_task(bind=True, autoretry_for=(ConnectionError,))
def fetch(self: Any, url: str) -> str:
    return url

add.delay(1, 2)
fetch.delay("https://example.com")
r: int = add(1, 2)
current_app.send_task("proj.add", args=(1, 2))
add.delay("1", 2)
"""


def test_celery_style_tasks_type_check_under_mypy_strict(tmp_path: Path) -> None:
    project = tmp_path / "project.py"
    project.write_text(TYPED_PROJECT)
    done = subprocess.run(
        [str(Path(sqlqueue_command()[0]).parent / "mypy"), "--strict", str(project)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    # Only the call with a str where an int goes is an error
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, done.stdout
    wrong_line = TYPED_PROJECT.splitlines().index('add.delay("1", 2)') + 1
    assert f'project.py:{wrong_line}: error: Argument 1 to "delay"' in errors[0]


def test_a_retry_with_eta_waits_until_then(app: SQLQueue) -> None:
    eta = datetime.now(UTC) + timedelta(hours=2)

    @app.task(name="t.eta", bind=True)
    def later(self: Any) -> None:
        raise self.retry(eta=eta)

    result = later.delay()
    work_off(app)
    job = row(app, result.id)
    assert job.status == "RETRY"
    assert abs((job.scheduled_at - eta).total_seconds()) < 60
