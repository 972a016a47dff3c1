"""Django's task framework (django.tasks on Django 6, the django-tasks backport on 5.2) with
sqlqueue as its backend, checked against the framework's documented behaviour."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from asgiref.sync import sync_to_async
from conftest import run_manage
from django.db import connection, connections, transaction
from django.utils import timezone
from orders.models import Order
from orders.tasks import notify_warehouse

from sqlqueue import Worker, WorkerOptions
from sqlqueue.contrib.django import app
from sqlqueue.contrib.django.backend import TaskResultDoesNotExist, TaskResultStatus
from sqlqueue.exceptions import WorkerLostError

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import task

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def empty_queue() -> None:
    with app.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM sqlqueue_jobs"))


def an_order() -> Order:
    return Order.objects.create(email="w@example.com", total=Decimal("20.00"))


def work_off() -> None:
    worker = run_manage(
        "sqlqueue_worker", "--burst", database_name=connection.settings_dict["NAME"]
    )
    assert worker.returncode == 0, worker.stderr


def test_enqueue_returns_a_ready_result_with_the_tasks_priority_and_queue() -> None:
    result = notify_warehouse.enqueue(an_order().pk)

    assert result.status == TaskResultStatus.READY
    assert result.task.func is notify_warehouse.func
    job = app.store.get_job(result.id)
    assert job is not None
    assert (job.task_name, job.priority, job.queue) == (
        "orders.tasks.notify_warehouse",
        10,
        "default",
    )
    assert notify_warehouse.get_result(result.id).id == result.id


def test_enqueue_inside_atomic_rolls_back_with_it() -> None:
    with transaction.atomic():
        result = notify_warehouse.enqueue(an_order().pk)
        transaction.set_rollback(True)

    with pytest.raises(TaskResultDoesNotExist):
        notify_warehouse.get_result(result.id)


def test_the_worker_runs_it_with_its_context_and_stores_the_return_value() -> None:
    order = an_order()
    result = notify_warehouse.enqueue(order.pk)

    work_off()
    result.refresh()

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {"order": order.pk, "attempt": 1}
    assert result.is_finished and result.attempts == 1
    assert result.finished_at is not None and result.started_at is not None


def test_a_failure_is_reported_as_a_task_error() -> None:
    result = notify_warehouse.enqueue(123456)  # no such order

    work_off()
    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "orders.models.Order.DoesNotExist"
    assert "DoesNotExist" in result.errors[0].traceback
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018 - reading it is the check


@task
def fail_with(kind: str) -> None:
    """Raise one of Python's built-in exceptions."""
    if kind == "value":
        raise ValueError(kind)
    if kind == "key":
        {}[kind]  # the lookup is the failure
    1 / 0  # noqa: B018


@pytest.mark.parametrize(
    ("kind", "raised"), [("value", ValueError), ("key", KeyError), ("zero", ZeroDivisionError)]
)
def test_a_builtin_exception_is_importable_from_the_task_error(
    kind: str, raised: type[Exception]
) -> None:
    result = fail_with.enqueue(kind)

    Worker(app, WorkerOptions(burst=True, poll_interval=0.05)).run()
    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    assert result.errors[-1].exception_class_path == f"builtins.{raised.__name__}"
    assert result.errors[-1].exception_class is raised


def test_a_job_given_up_after_losing_its_worker_reports_worker_lost_error() -> None:
    result = notify_warehouse.enqueue(an_order().pk)
    app.store.claim_jobs(1, None, "w", lease=0.01)
    time.sleep(0.05)
    assert app.store.rescue_expired_jobs(max_lease_expiries=1) == 1

    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    assert result.errors[-1].exception_class is WorkerLostError


def test_run_after_defers_the_job_and_priority_can_be_changed_with_using() -> None:
    run_after = timezone.now() + timedelta(hours=1)
    later = notify_warehouse.using(run_after=run_after, priority=-5)
    result = later.enqueue(an_order().pk)

    work_off()
    result.refresh()

    assert result.status == TaskResultStatus.READY
    job = app.store.get_job(result.id)
    assert job is not None and job.priority == -5
    assert job.scheduled_at == run_after  # the same instant, to the microsecond
    assert job.scheduled_at.utcoffset() == timedelta(0)


def test_an_unknown_or_malformed_result_id_does_not_exist() -> None:
    with pytest.raises(TaskResultDoesNotExist):
        notify_warehouse.get_result("00000000-0000-0000-0000-000000000000")
    with pytest.raises(TaskResultDoesNotExist):
        notify_warehouse.get_result("not-an-id")


def test_aenqueue_and_aget_result() -> None:
    order = an_order()

    async def send_and_read() -> tuple[str, str]:
        result = await notify_warehouse.aenqueue(order.pk)
        again = await notify_warehouse.aget_result(result.id)
        # The calls ran in asgiref's thread, with a Django connection of its own.
        await sync_to_async(connections.close_all, thread_sensitive=True)()
        return result.id, again.status

    result_id, status = asyncio.run(send_and_read())
    assert status == TaskResultStatus.READY
    assert app.store.get_job(result_id) is not None
