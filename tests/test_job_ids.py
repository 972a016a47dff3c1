"""Job ids a caller chooses (Celery's ``apply_async(task_id=...)``): stored and found as given,
unique, and refused when malformed or taken, with nothing written."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import count_jobs, work_off

from sqlqueue import DuplicateJobIdError, InvalidOptionError, SQLQueue
from sqlqueue.send_options import SendOptions


def test_a_chosen_id_is_the_jobs_id_and_finds_its_result(app: SQLQueue, add: Any) -> None:
    result = add.apply_async((2, 3), task_id="order-42-receipt")

    assert result.id == "order-42-receipt"
    work_off(app)
    assert app.AsyncResult("order-42-receipt").get(timeout=5) == 5
    assert app.send_task(add.name, args=[1, 1], task_id=str(uuid.UUID(int=7))).id == str(
        uuid.UUID(int=7)
    )


def test_a_second_send_of_an_id_is_refused_and_writes_nothing(app: SQLQueue, add: Any) -> None:
    add.apply_async((1, 2), task_id="once")

    with pytest.raises(DuplicateJobIdError, match=r"exists already.*nothing was written"):
        add.apply_async((3, 4), task_id="once")
    with pytest.raises(DuplicateJobIdError):
        app.send_task(add.name, args=[5, 6], task_id="once")

    assert count_jobs(app) == 1
    assert app.store.get_job("once").args == [1, 2]  # type: ignore[union-attr]


def test_a_duplicate_in_the_callers_transaction_writes_nothing_of_it(
    app: SQLQueue, add: Any
) -> None:
    add.apply_async((1, 2), task_id="taken")

    with pytest.raises(DuplicateJobIdError), app.engine.begin() as connection:
        add.apply_async((0, 0), connection=connection)
        add.apply_async((3, 4), task_id="taken", connection=connection)

    assert count_jobs(app) == 1


@pytest.mark.parametrize(
    ("task_id", "reason"),
    [("", "1 to 255"), ("x" * 256, "1 to 255"), (42, "not a job id"), ("a\0b", "not a job id")],
)
def test_a_malformed_id_is_refused_before_anything_is_written(
    app: SQLQueue, add: Any, task_id: Any, reason: str
) -> None:
    with pytest.raises(InvalidOptionError, match=reason):
        add.apply_async((1, 2), task_id=task_id)
    assert count_jobs(app) == 0


def test_an_id_names_one_job_so_a_send_of_many_refuses_it(app: SQLQueue, add: Any) -> None:
    with pytest.raises(InvalidOptionError, match="names one job"):
        app.send_jobs(
            add,
            add.name,
            [([1, 2], {}), ([3, 4], {})],
            SendOptions(task_id="both"),
        )
    assert count_jobs(app) == 0


def test_an_eager_run_keeps_the_chosen_id(app: SQLQueue, add: Any) -> None:
    app.conf.task_always_eager = True

    result = add.apply_async((2, 2), task_id="inline")

    assert (result.id, result.get()) == ("inline", 4)


def test_apply_takes_the_ids_apply_async_takes(app: SQLQueue, add: Any) -> None:
    chosen = uuid.uuid4()
    assert add.apply((2, 2), task_id=chosen).id == str(chosen)
    long_id = "order-" + "9" * 240  # longer than a task name may be, as long as an id may
    assert add.apply((2, 2), task_id=long_id).id == long_id
    with pytest.raises(InvalidOptionError, match="is not a job id"):
        add.apply((2, 2), task_id="")


@pytest.mark.postgresql
def test_ids_compare_byte_by_byte_on_postgresql(pg_app: SQLQueue) -> None:
    with pg_app.engine.connect() as connection:
        collation = connection.execute(
            sa.text(
                "SELECT collation_name FROM information_schema.columns"
                " WHERE table_name = 'sqlqueue_jobs' AND column_name = 'id'"
            )
        ).scalar_one()
    assert collation == "C"
