"""Celery's names beyond the app's constructor, tasks and results: app.control.revoke,
current_task, get_task_logger, app.Task, app.now(); and for what sqlqueue lacks, an error that
says what to do instead."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from conftest import count_jobs, work_off

import sqlqueue
from sqlqueue import (
    Celery,
    NotSupportedError,
    current_task,
    get_task_logger,
    states,
)


@pytest.fixture
def app(db_url: str) -> Any:
    celery = Celery("proj", broker=db_url)
    yield celery
    celery.engine.dispose()


def test_control_revoke_revokes_one_job_or_several(app: Any) -> None:
    @app.task(name="t.noop")
    def noop() -> None: ...

    one, two, three = noop.delay(), noop.delay(), noop.delay()

    app.control.revoke(one.id)
    app.control.revoke([two.id, three.id], terminate=True, signal="SIGKILL")

    assert [r.state for r in (one, two, three)] == [states.REVOKED] * 3
    assert count_jobs(app, "status = 'REVOKED'") == 3


def test_current_task_is_the_running_task_and_false_outside(app: Any) -> None:
    @app.task(name="t.whoami")
    def whoami() -> list[str]:
        return [current_task.name, current_task.request.id, str(bool(current_task))]

    result = whoami.delay()
    work_off(app)

    assert result.get(timeout=5) == ["t.whoami", result.id, "True"]
    assert not current_task
    with pytest.raises(RuntimeError, match="outside a running job"):
        current_task.request  # noqa: B018


def test_a_task_logger_logs_through_the_logging_module(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    logger = get_task_logger("proj.tasks")

    @app.task(name="t.logs")
    def logs(n: int) -> None:
        logger.info("adding %d", n)

    logs.delay(3)
    with caplog.at_level(logging.INFO, logger="proj.tasks"):
        work_off(app)

    assert [r.getMessage() for r in caplog.records if r.name == "proj.tasks"] == ["adding 3"]


def test_app_task_is_the_base_class_and_now_is_in_the_apps_timezone(app: Any) -> None:
    calls: list[str] = []

    class Audited(app.Task):  # type: ignore[misc,name-defined]
        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            calls.append(f"{self.name} -> {retval}")

    @app.task(base=Audited, name="t.double")
    def double(n: int) -> int:
        return 2 * n

    double.delay(21)
    work_off(app)
    assert calls == ["t.double -> 42"]

    app.conf.timezone = "Asia/Tokyo"
    assert app.now().utcoffset() == timedelta(hours=9)


@pytest.mark.parametrize(
    ("reach", "says"),
    [
        (lambda app, task: app.backend, "app.AsyncResult"),
        (lambda app, task: app.GroupResult, r"sqlqueue\.GroupResult\.restore"),
        (lambda app, task: app.events, "there are no events"),
        (lambda app, task: app.worker_main(), "sqlqueue worker -A proj"),
        (lambda app, task: app.control.inspect(), "app.control.revoke"),
        (lambda app, task: app.control.purge(), "no remote commands"),
        (lambda app, task: task.chunks([(1,)], 10), r"group\(task\.s\(\*call\)"),
        (lambda app, task: task.map([1]), "task.delay_many"),
        (lambda app, task: task.replace(task.s(1)), r"task\.s\(\) \| next_step\.s\(\)"),
        (lambda app, task: task.delay(1).children, r"its parent \(r\.parent\)"),
        (lambda app, task: task.delay(1).backend, "app.AsyncResult"),
    ],
)
def test_what_sqlqueue_lacks_is_refused_naming_the_sqlqueue_way(
    app: Any, reach: Any, says: str
) -> None:
    @app.task(name="t.one")
    def one(n: int) -> int:
        return n

    with pytest.raises(NotSupportedError, match=says) as caught:
        reach(app, one)
    assert isinstance(caught.value, AttributeError | NotImplementedError)
    assert "is Celery's and not sqlqueue's" in str(caught.value)


def test_hasattr_answers_false_and_a_typo_is_a_plain_attribute_error(app: Any) -> None:
    @app.task(name="t.one")
    def one(n: int) -> int:
        return n

    assert not hasattr(app, "backend")
    assert not hasattr(one, "chunks")
    with pytest.raises(AttributeError, match="'Celery' object has no attribute 'confg'") as caught:
        app.confg  # noqa: B018
    assert not isinstance(caught.value, NotSupportedError)


def test_celerys_canvas_imports_from_sqlqueue_and_what_it_lacks_says_the_way() -> None:
    from sqlqueue import chain, chord, group, signature  # was: from celery import ...
    from sqlqueue.canvas import Signature  # was: from celery.canvas import Signature

    assert all(callable(name) for name in (chain, chord, group, signature, Signature))
    with pytest.raises(ImportError, match=r"sqlqueue\.xmap is Celery's.*group\(task\.s"):
        from sqlqueue import xmap  # noqa: F401
    with pytest.raises(AttributeError, match="module 'sqlqueue' has no attribute 'chian'"):
        sqlqueue.chian  # noqa: B018


def test_a_celery_apps_signature_and_tasks_signatures_send_by_name(app: Any) -> None:
    @app.task(name="t.one")
    def one(n: int) -> int:
        return n

    sig = app.signature("t.one", args=(7,))
    assert sig == one.s(7) == one.subtask((7,)) and sig.app is app
    sent = sig.delay()
    work_off(app)
    assert sent.get(timeout=5) == 7


def test_a_result_made_from_an_id_alone_reads_the_current_app(app: Any) -> None:
    from sqlqueue.result import AsyncResult  # was: from celery.result import AsyncResult
    from sqlqueue.shared import get_current_app

    @app.task(name="t.one")
    def one(n: int) -> int:
        return n

    sent = one.delay(7)
    work_off(app)

    assert get_current_app() is app  # finding its database made no other app current
    found = AsyncResult(sent.id)
    assert (found.task_id, found.get(timeout=5), found.app) == (sent.id, 7, app)
    assert AsyncResult(sent.id, app=app) == found
