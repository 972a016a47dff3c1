"""The public API end to end, in process, on every database: send, run, read back."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import count_jobs, work_off

import sqlqueue
from sqlqueue import SQLQueue, Worker, WorkerOptions
from sqlqueue.conf import EAGER_MAX_RETRIES
from sqlqueue.exceptions import (
    MaxRetriesExceededError,
    TaskFailedError,
    TaskRegistrationError,
    TaskRevokedError,
)


@pytest.fixture
def tasks(app: SQLQueue) -> SimpleNamespace:
    """A few tasks registered on the test's app; ``runs`` records every call."""
    runs: list[tuple[str, Any]] = []

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        runs.append(("add", (x, y)))
        return x + y

    @app.task(name="t.fail")
    def fail(message: str) -> None:
        raise ValueError(message)

    @app.task(name="t.whoami", bind=True)
    def whoami(self: Any) -> dict[str, Any]:
        return {"id": self.request.id, "retries": self.request.retries}

    @app.task(name="t.flaky", bind=True, max_retries=2)
    def flaky(self: Any, succeed_on: int) -> int:
        if self.request.retries < succeed_on:
            raise self.retry(countdown=0)
        return self.request.retries

    @app.task(name="t.auto", autoretry_for=(ConnectionError,), max_retries=1, default_retry_delay=0)
    def auto() -> None:
        runs.append(("auto", ()))
        raise ConnectionError("smtp down")

    @app.task(name="t.bad_result")
    def bad_result() -> object:
        return object()

    return SimpleNamespace(
        add=add, fail=fail, whoami=whoami, flaky=flaky, auto=auto, bad_result=bad_result, runs=runs
    )


def test_delay_then_a_worker_runs_it_and_get_returns_the_result(
    app: SQLQueue, tasks: SimpleNamespace
) -> None:
    result = tasks.add.delay(5, 7)
    assert result.status == "PENDING"
    assert not result.ready()

    work_off(app)

    assert result.get(timeout=5) == 12
    assert result.status == "SUCCESS"
    assert result.ready() and result.successful() and not result.failed()
    assert result.result == 12


def test_a_result_is_readable_by_id_from_another_app_on_the_same_database(
    app: SQLQueue, tasks: SimpleNamespace, db_url: str
) -> None:
    job_id = tasks.add.delay(1, 2).id
    work_off(app)

    other = SQLQueue(db_url)  # as another process would: same database, no tasks imported
    try:
        assert other.AsyncResult(job_id).get(timeout=5) == 3
    finally:
        other.engine.dispose()


def test_a_failed_task_stores_its_error_as_data_and_get_raises_it(
    app: SQLQueue, tasks: SimpleNamespace
) -> None:
    result = tasks.fail.delay("card declined")
    work_off(app)

    assert result.status == "FAILURE"
    assert result.failed()
    with pytest.raises(TaskFailedError, match=r"t\.fail.*ValueError: card declined") as caught:
        result.get(timeout=5)
    assert caught.value.exc_type == "ValueError"
    assert "raise ValueError(message)" in (result.traceback or "")
    assert isinstance(result.get(propagate=False), TaskFailedError)
    assert isinstance(result.result, TaskFailedError)


def test_get_times_out_with_a_timeout_error_when_no_worker_runs(
    app: SQLQueue, tasks: SimpleNamespace
) -> None:
    result = tasks.add.delay(1, 1)
    with pytest.raises(sqlqueue.TimeoutError, match="still PENDING") as caught:
        result.get(timeout=0.2)
    assert isinstance(caught.value, TimeoutError)


def test_revoke_before_start_means_it_never_runs(app: SQLQueue, tasks: SimpleNamespace) -> None:
    result = tasks.add.delay(2, 2)
    assert result.revoke() is True

    work_off(app)

    assert result.status == "REVOKED"
    assert tasks.runs == []
    with pytest.raises(TaskRevokedError):
        result.get(timeout=1)


def test_revoke_after_the_job_finished_changes_nothing(
    app: SQLQueue, tasks: SimpleNamespace
) -> None:
    result = tasks.add.delay(2, 2)
    work_off(app)
    assert result.revoke() is False
    assert result.status == "SUCCESS"


def test_countdown_and_future_eta_keep_a_job_waiting(app: SQLQueue, tasks: SimpleNamespace) -> None:
    later = tasks.add.apply_async(args=(1, 2), countdown=30)
    at = tasks.add.apply_async(args=(1, 3), eta=datetime.now(UTC) + timedelta(hours=1))
    past = tasks.add.apply_async(args=(1, 4), eta=datetime.now(UTC) - timedelta(seconds=1))

    work_off(app)

    assert later.status == "PENDING"
    assert at.status == "PENDING"
    assert past.get(timeout=5) == 5
    assert tasks.runs == [("add", (1, 4))]


def test_a_short_countdown_runs_once_it_is_due(app: SQLQueue, tasks: SimpleNamespace) -> None:
    result = tasks.add.apply_async(args=(3, 4), countdown=0.3)
    work_off(app)
    assert result.status == "PENDING"
    time.sleep(0.4)
    work_off(app)
    assert result.get(timeout=5) == 7


def test_higher_priority_runs_first(app: SQLQueue, tasks: SimpleNamespace) -> None:
    tasks.add.apply_async(args=(0, 1), priority=0)
    tasks.add.apply_async(args=(0, 2), priority=9)
    tasks.add.apply_async(args=(0, 3), priority=-5)
    tasks.add.apply_async(args=(0, 4), priority=9)

    work_off(app, concurrency=1)

    assert [args for _, args in tasks.runs] == [(0, 2), (0, 4), (0, 1), (0, 3)]


def test_a_worker_with_queues_takes_only_those(app: SQLQueue, tasks: SimpleNamespace) -> None:
    emails = tasks.add.apply_async(args=(1, 1), queue="emails")
    bulk = tasks.add.apply_async(args=(2, 2), queue="bulk")

    work_off(app, queues=["emails"])

    assert emails.status == "SUCCESS"
    assert bulk.status == "PENDING"


def test_task_level_queue_and_priority_are_the_defaults(app: SQLQueue) -> None:
    @app.task(name="t.mail", queue="emails", priority=5)
    def mail() -> str:
        return "sent"

    result = mail.delay()
    job = app.store.get_job(result.id)
    assert job is not None and (job.queue, job.priority) == ("emails", 5)
    overridden = app.store.get_job(mail.apply_async(queue="bulk", priority=1).id)
    assert overridden is not None and (overridden.queue, overridden.priority) == ("bulk", 1)
    (many,) = mail.delay_many([()])
    bulk = app.store.get_job(many.id)
    assert bulk is not None and (bulk.queue, bulk.priority) == ("emails", 5)


def test_send_task_by_name_runs_the_registered_task(app: SQLQueue, tasks: SimpleNamespace) -> None:
    result = app.send_task("t.add", args=(1, 2))
    work_off(app)
    assert result.get(timeout=5) == 3


def test_a_job_for_an_unknown_task_fails_naming_it_and_the_worker_goes_on(
    app: SQLQueue, tasks: SimpleNamespace
) -> None:
    unknown = app.send_task("t.not_here", args=(1,))
    known = tasks.add.delay(1, 1)

    work_off(app, concurrency=1)

    assert unknown.status == "FAILURE"
    with pytest.raises(
        TaskFailedError, match=r"UnknownTaskError: Task 't\.not_here' is not registered"
    ):
        unknown.get(timeout=1)
    assert known.get(timeout=1) == 2


def test_bound_task_sees_its_own_job_id(app: SQLQueue, tasks: SimpleNamespace) -> None:
    result = tasks.whoami.delay()
    work_off(app)
    assert result.get(timeout=5) == {"id": result.id, "retries": 0}


def test_retry_requeues_until_the_task_succeeds(app: SQLQueue, tasks: SimpleNamespace) -> None:
    result = tasks.flaky.delay(2)

    work_off(app)

    assert result.get(timeout=5) == 2
    job = app.store.get_job(result.id)
    assert job is not None and (job.retries, job.attempts) == (2, 3)


def test_retry_beyond_max_retries_fails_the_job(app: SQLQueue, tasks: SimpleNamespace) -> None:
    result = tasks.flaky.delay(5)

    work_off(app)

    assert result.status == "FAILURE"
    with pytest.raises(TaskFailedError, match="MaxRetriesExceededError"):
        result.get(timeout=1)


def test_autoretry_for_retries_then_keeps_the_last_error(
    app: SQLQueue, tasks: SimpleNamespace
) -> None:
    result = tasks.auto.delay()

    work_off(app)

    assert len(tasks.runs) == 2
    with pytest.raises(TaskFailedError, match="ConnectionError: smtp down"):
        result.get(timeout=1)


def test_a_result_that_is_not_json_fails_the_job_clearly(
    app: SQLQueue, tasks: SimpleNamespace
) -> None:
    result = tasks.bad_result.delay()
    work_off(app)
    with pytest.raises(
        TaskFailedError, match=r"SerializationError: The return value of task 't\.bad_result'"
    ):
        result.get(timeout=1)


def test_a_direct_call_runs_inline_and_writes_nothing(
    app: SQLQueue, tasks: SimpleNamespace
) -> None:
    assert tasks.add(2, 3) == 5
    assert tasks.whoami() == {"id": "", "retries": 0}
    assert count_jobs(app) == 0


def test_always_eager_runs_in_delay_and_writes_nothing(
    app: SQLQueue, tasks: SimpleNamespace
) -> None:
    app.conf.task_always_eager = True

    result = tasks.add.delay(2, 3)
    failed = tasks.fail.delay("nope")
    retried = tasks.flaky.delay(1)

    assert result.get() == 5 and result.status == "SUCCESS"
    assert failed.failed()
    with pytest.raises(TaskFailedError, match="ValueError: nope"):
        failed.get()
    assert retried.get() == 1
    assert count_jobs(app) == 0


def test_always_eager_with_propagation_raises_from_delay(
    app: SQLQueue, tasks: SimpleNamespace
) -> None:
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    with pytest.raises(TaskFailedError, match="ValueError: boom"):
        tasks.fail.delay("boom")


RUNAWAY = 5000
"""Runs after which the eager tests' retrying tasks give up on their own, so that code
that retries without end fails those tests instead of hanging them."""


def test_eager_retries_of_a_task_without_a_limit_end(app: SQLQueue) -> None:
    # Eager retries run at once, in delay(); a task that always asks for one must still end.
    runs: list[int] = []

    @app.task(name="t.forever", bind=True, max_retries=None)
    def forever(self: Any) -> str:
        runs.append(self.request.retries)
        if len(runs) >= RUNAWAY:
            return "ran away"
        raise self.retry(countdown=3600, exc=ConnectionError("smtp down"))

    app.conf.task_always_eager = True
    started = time.monotonic()
    result = forever.delay()

    assert time.monotonic() - started < 5  # the countdown is not waited for
    assert runs == list(range(EAGER_MAX_RETRIES + 1))
    with pytest.raises(
        TaskFailedError,
        match=r"MaxRetriesExceededError: .* 100 times .* ConnectionError: smtp down",
    ):
        result.get()


def test_eager_retries_with_backoff_end_without_overflowing(app: SQLQueue) -> None:
    runs: list[int] = []

    @app.task(
        name="t.backoff", autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=None
    )
    def backoff() -> str:
        runs.append(1)
        if len(runs) >= RUNAWAY:
            return "ran away"
        raise ConnectionError("smtp down")

    app.conf.task_always_eager = True
    result = backoff.delay()

    assert len(runs) == EAGER_MAX_RETRIES + 1
    with pytest.raises(TaskFailedError, match="MaxRetriesExceededError"):
        result.get()


def test_a_worker_backs_off_after_a_thousand_retries_and_more(app: SQLQueue) -> None:
    @app.task(
        name="t.backoff",
        autoretry_for=(ConnectionError,),
        retry_backoff=True,
        retry_backoff_max=600,
        max_retries=None,
    )
    def backoff() -> None:
        raise ConnectionError("smtp down")

    result = backoff.delay()
    with app.engine.begin() as conn:  # a job that has been failing for a long time
        conn.execute(sa.text("UPDATE sqlqueue_jobs SET retries = 5000"))
    work_off(app)

    job = app.store.get_job(result.id)
    assert job is not None
    assert (job.status, job.retries, job.error_message) == ("RETRY", 5001, "smtp down")
    assert job.scheduled_at <= datetime.now(UTC) + timedelta(seconds=601)


def test_two_functions_under_one_name_is_an_error_at_registration(
    app: SQLQueue, tasks: SimpleNamespace
) -> None:
    with pytest.raises(TaskRegistrationError, match="already used"):

        @app.task(name="t.add")
        def other_add(x: int, y: int) -> int:
            return x - y


def test_the_registry_names_tasks_like_celery(app: SQLQueue) -> None:
    @app.task
    def multiply(x: int, y: int) -> int:
        return x * y

    assert (
        multiply.name == f"{__name__}.test_the_registry_names_tasks_like_celery.<locals>.multiply"
    )
    assert app.tasks[multiply.name] is multiply


def test_max_retries_exceeded_is_raised_when_retry_is_called_without_exc(app: SQLQueue) -> None:
    @app.task(name="t.give_up", bind=True, max_retries=0)
    def give_up(self: Any) -> None:
        self.retry()

    result = give_up.delay()
    work_off(app)
    with pytest.raises(TaskFailedError, match=MaxRetriesExceededError.__name__):
        result.get(timeout=1)


def test_worker_options_refuse_nonsense() -> None:
    with pytest.raises(sqlqueue.InvalidOptionError, match="concurrency"):
        WorkerOptions(concurrency=0)
    with pytest.raises(sqlqueue.InvalidOptionError, match="lease"):
        WorkerOptions(lease=0)


def test_worker_object_can_be_stopped_from_another_thread(
    app: SQLQueue, tasks: SimpleNamespace
) -> None:
    worker = Worker(app, WorkerOptions(poll_interval=0.05))
    thread = threading.Thread(target=worker.run)
    thread.start()
    result = tasks.add.delay(20, 22)
    assert result.get(timeout=10) == 42
    worker.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_running_job_is_renewed_past_its_first_lease(app: SQLQueue) -> None:
    # Given a worker whose leases last 0.6 s and a job that runs for 1.5 s,
    @app.task(name="t.slow")
    def slow() -> str:
        time.sleep(1.5)
        return "done"

    result = slow.delay()
    worker = Worker(app, WorkerOptions(lease=0.6, poll_interval=0.05))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        # when another worker looks for expired leases while it runs,
        deadline = time.monotonic() + 1.4
        rescued = 0
        while time.monotonic() < deadline:
            rescued += app.store.rescue_expired_jobs(max_lease_expiries=3)
            time.sleep(0.1)
        # I expect the renewals to have kept the job with its first worker.
        assert result.get(timeout=10) == "done"
    finally:
        worker.stop()
        thread.join(timeout=10)
    job = app.store.get_job(result.id)
    assert rescued == 0
    assert job is not None and (job.attempts, job.expired_leases) == (1, 0)


def test_a_success_after_a_failed_try_keeps_no_stale_traceback(app: SQLQueue) -> None:
    tries: list[int] = []

    @app.task(name="t.second_time", autoretry_for=(ConnectionError,), default_retry_delay=0)
    def second_time() -> str:
        tries.append(1)
        if len(tries) == 1:
            raise ConnectionError("first try fails")
        return "ok"

    result = second_time.delay()
    work_off(app)

    assert result.get(timeout=5) == "ok"
    assert result.traceback is None


def test_tasks_of_a_module_run_with_python_m_are_named_as_a_worker_imports_them(
    tmp_path: Path,
) -> None:
    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(
        "from sqlqueue import SQLQueue\n"
        "app = SQLQueue('sqlite://')\n"
        "@app.task\n"
        "def receipt(order_id):\n"
        "    return order_id\n"
        "print(receipt.name)\n"
    )
    script = tmp_path / "send.py"
    script.write_text(
        "from sqlqueue import SQLQueue\napp = SQLQueue('sqlite://')\n"
        "@app.task\ndef hello():\n    pass\nprint(hello.name)\n"
    )

    as_module = subprocess.run(
        [sys.executable, "-m", "shop.jobs"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    as_script = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )

    assert as_module.stdout.strip() == "shop.jobs.receipt", as_module.stderr
    assert as_script.stdout.strip() == "send.hello", as_script.stderr


def test_outcomes_the_database_could_not_hold_still_end_the_job_clearly(app: SQLQueue) -> None:
    @app.task(name="t.nul_error")
    def nul_error() -> None:
        raise ValueError("bad byte \x00 here")

    @app.task(name="t.nul_result")
    def nul_result() -> str:
        return "a\x00b"

    error, result = nul_error.delay(), nul_result.delay()
    work_off(app)

    with pytest.raises(TaskFailedError, match=r"ValueError: bad byte \\x00 here"):
        error.get(timeout=5)
    with pytest.raises(TaskFailedError, match=r"SerializationError: .* NUL character"):
        result.get(timeout=5)


def test_a_task_raising_a_base_exception_fails_and_the_worker_goes_on(app: SQLQueue) -> None:
    @app.task(name="t.cancelled")
    def cancelled() -> None:
        raise KeyboardInterrupt("not the worker's")

    @app.task(name="t.after")
    def after() -> str:
        return "still working"

    first, second = cancelled.delay(), after.delay()
    work_off(app, concurrency=1)

    assert first.status == "FAILURE"
    with pytest.raises(TaskFailedError, match="KeyboardInterrupt"):
        first.get(timeout=1)
    assert second.get(timeout=5) == "still working"


def test_the_first_releases_name_for_the_lease_still_works_with_a_warning(app: SQLQueue) -> None:
    with pytest.warns(
        FutureWarning, match=r"app\.conf\.visibility_timeout is now app\.conf\.lease"
    ):
        app.conf.visibility_timeout = 12
    assert app.conf.lease == 12
    with pytest.warns(FutureWarning):
        assert app.conf.visibility_timeout == 12


def test_the_renamed_setting_warns_under_pythons_default_filters(tmp_path: Path) -> None:
    # A project's settings module, not __main__: Python's default filters hide a
    # DeprecationWarning raised there, so the user would never see it.
    (tmp_path / "project_settings.py").write_text(
        "from sqlqueue import SQLQueue\n"
        "app = SQLQueue('sqlite:///unused.db')\n"
        "app.conf.visibility_timeout = 12\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", "import project_settings"],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "app.conf.visibility_timeout is now app.conf.lease" in run.stderr


def test_worker_options_take_the_first_releases_name_for_the_lease_with_a_warning() -> None:
    with pytest.warns(FutureWarning, match=r"visibility_timeout=\.\.\.\) is now lease"):
        options = WorkerOptions(visibility_timeout=12)
    assert options.lease == 12
    with (
        pytest.warns(FutureWarning),
        pytest.raises(sqlqueue.InvalidOptionError, match="not both"),
    ):
        WorkerOptions(lease=5, visibility_timeout=12)
    with pytest.warns(FutureWarning), pytest.raises(sqlqueue.InvalidOptionError, match="lease"):
        WorkerOptions(visibility_timeout=0)


def test_the_default_concurrency_is_eight_threads_or_one_child_per_cpu(app: SQLQueue) -> None:
    assert Worker(app, WorkerOptions()).concurrency == 8
    assert Worker(app, WorkerOptions(concurrency=3)).concurrency == 3
    processes = WorkerOptions(pool="process", app_spec="tasks")
    assert Worker(app, processes).concurrency == (os.cpu_count() or 1)
