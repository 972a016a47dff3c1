"""Canvas workflows sent to a real database and run by a worker, on every dialect: results,
parents, groups restored from their id, failures, callbacks, transactions, revokes; and the
same workflows run eagerly come to the same results."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from conftest import count_jobs, work_off

from sqlqueue import (
    AsyncResult,
    GroupResult,
    Signature,
    SQLQueue,
    TaskFailedError,
    TaskRevokedError,
    chain,
    chord,
    group,
)


@pytest.fixture
def calls() -> list[Any]:
    """The arguments of each run of ``t.note``, by workers or inline."""
    return []


@pytest.fixture
def tasks(app: SQLQueue, calls: list[Any]) -> Any:
    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.tsum")
    def tsum(numbers: list[int]) -> int:
        return sum(numbers)

    @app.task(name="t.boom")
    def boom(*args: Any) -> None:
        raise ValueError("boom")

    @app.task(name="t.note")
    def note(*args: Any) -> list[Any]:
        calls.append(list(args))
        return list(args)

    class Tasks:
        pass

    found = Tasks()
    for task in (add, tsum, boom, note):
        setattr(found, task.name.removeprefix("t."), task)
    return found


def test_a_chain_returns_its_last_step_and_parent_walks_back(app: SQLQueue, tasks: Any) -> None:
    result = (tasks.add.s(2, 2) | tasks.add.s(4) | tasks.add.s(8)).apply_async()
    assert count_jobs(app, "status = 'WAITING'") == 2
    work_off(app)

    assert result.get(timeout=10) == 16
    assert isinstance(result.parent, AsyncResult) and result.parent.get() == 8
    assert result.parent.parent is not None and result.parent.parent.get() == 4
    assert result.parent.parent.parent is None


def test_a_group_gets_its_results_in_order_and_is_restored_by_id(app: SQLQueue, tasks: Any) -> None:
    sent = group(tasks.add.s(i, i) for i in range(10)).apply_async()
    work_off(app, concurrency=4)

    assert sent.get(timeout=10) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    restored = GroupResult.restore(sent.id, app=app)
    assert [r.id for r in restored.results] == [r.id for r in sent.results]
    assert (restored.get(), restored.successful(), restored.completed_count()) == (
        sent.get(),
        True,
        10,
    )


def test_chords_bodies_get_their_headers_results(app: SQLQueue, tasks: Any) -> None:
    add, tsum = tasks.add, tasks.tsum
    results = [
        chord((add.s(i, i) for i in range(10)), tsum.s()).apply_async(),
        chord(add.s(i, i) for i in range(10))(tsum.s()),
        (group(add.s(1, 1), add.s(2, 2)) | tsum.s()).delay(),
        chord([add.s(3, 4)], tsum.s()).delay(),
        chord([], tsum.s()).delay(),
    ]
    work_off(app, concurrency=4)

    assert [r.get(timeout=10) for r in results] == [90, 90, 6, 7, 0]
    header = results[0].parent
    assert isinstance(header, GroupResult) and header.get() == [2 * i for i in range(10)]


def test_compositions_at_any_depth(app: SQLQueue, tasks: Any) -> None:
    add, tsum = tasks.add, tasks.tsum
    results = [
        (add.s(1, 1) | group(add.s(1), add.s(2)) | tsum.s()).delay(),
        chain(add.s(1, 1), chord([add.s(1), add.s(2)], tsum.s()), add.s(10)).delay(),
        group(add.s(1, 1) | add.s(1), chord([add.s(2, 2)], tsum.s())).delay(),
        (add.s(1, 1) | group(add.s(1), add.s(2))).delay(),
        group(add.s(1), add.s(2)).delay(10),
        group([]).apply_async(),
    ]
    work_off(app, concurrency=4)

    assert [r.get(timeout=10) for r in results] == [7, 17, [3, 4], [3, 4], [11, 12], []]


def test_a_failure_stops_the_chain_and_its_errback_gets_the_failed_id(
    app: SQLQueue, tasks: Any, calls: list[Any]
) -> None:
    result = chain(tasks.add.s(1, 1), tasks.boom.s(), tasks.note.s()).apply_async(
        link_error=tasks.note.s("errback")
    )
    work_off(app)

    assert result.status == "REVOKED"
    with pytest.raises(TaskFailedError, match="ValueError: boom"):
        result.get(timeout=10)
    failed = result.parent
    assert isinstance(failed, AsyncResult) and failed.status == "FAILURE"
    assert calls == [[failed.id, "errback"]]  # once, for the job that failed


def test_a_header_failure_fails_the_chord_body_with_a_chord_error(
    app: SQLQueue, tasks: Any, calls: list[Any]
) -> None:
    body = tasks.tsum.s().set(link_error=tasks.note.s("body failed"), link=tasks.note.s())
    result = chord([tasks.add.s(1, 1), tasks.boom.s()], body).apply_async()
    work_off(app)

    assert result.status == "FAILURE"
    with pytest.raises(TaskFailedError) as caught:
        result.get(timeout=10)
    failed = result.parent[1]  # type: ignore[index]
    assert caught.value.exc_type == "ChordError"
    assert caught.value.exc_message == f"Dependency {failed.id} raised ValueError: boom"
    assert calls == [[result.id, "body failed"]]


def test_a_header_job_that_retries_releases_the_body_once_with_its_last_result(
    app: SQLQueue, tasks: Any, calls: list[Any]
) -> None:
    attempts: list[int] = []

    @app.task(name="t.flaky", bind=True, max_retries=3)
    def flaky(self: Any, x: int) -> int:
        attempts.append(self.request.retries)
        if self.request.retries < 2:
            raise self.retry(countdown=0)
        return x * 10

    result = chord([tasks.add.s(1, 1), flaky.s(3)], tasks.note.s()).apply_async()
    work_off(app)

    assert attempts == [0, 1, 2]
    assert result.get(timeout=10) == [[2, 30]]
    assert calls == [[[2, 30]]]  # the body ran once, after the header job's last attempt


def test_a_group_with_a_failed_job_has_failed_and_counts_only_successes(
    app: SQLQueue, tasks: Any
) -> None:
    sent = group(tasks.add.s(1, 1), tasks.boom.s(), tasks.add.s(2, 2)).apply_async()
    work_off(app)

    assert (sent.ready(), sent.failed(), sent.successful(), sent.completed_count()) == (
        True,
        True,
        False,
        2,
    )
    with pytest.raises(TaskFailedError, match="ValueError: boom"):
        sent.get(timeout=10)
    assert sent.get(timeout=10, propagate=False)[::2] == [2, 4]


def test_link_sends_the_result_on_and_link_error_is_dropped_on_success(
    app: SQLQueue, tasks: Any, calls: list[Any]
) -> None:
    result = tasks.add.apply_async((2, 2), link=tasks.note.s(16), link_error=tasks.note.s("x"))
    work_off(app)

    assert result.get(timeout=10) == 4
    assert calls == [[4, 16]]
    assert count_jobs(app) == 2  # the job and its callback; the errback is gone


def test_a_workflow_sent_in_a_rolled_back_transaction_leaves_nothing(
    app: SQLQueue, tasks: Any
) -> None:
    with app.engine.connect() as conn:
        (tasks.add.s(1, 1) | tasks.add.s(2)).apply_async(connection=conn)
        group(tasks.add.s(1, 1), tasks.add.s(2, 2)).apply_async(connection=conn)
        tasks.add.apply_async((1, 1), link=tasks.add.s(1), connection=conn)
        conn.rollback()

    assert count_jobs(app) == 0


def test_revoking_a_chain_revokes_every_step_not_started(app: SQLQueue, tasks: Any) -> None:
    result = (tasks.add.s(1, 1) | tasks.add.s(2) | tasks.add.s(3)).apply_async()
    assert result.revoke()
    work_off(app)

    assert count_jobs(app, "status = 'REVOKED'") == 3
    with pytest.raises(TaskRevokedError):
        result.get(timeout=10)


SHAPES: list[Callable[[Any], Signature]] = [
    lambda t: t.add.s(2, 2) | t.add.s(4) | t.add.si(8, 8),
    lambda t: group(t.add.s(i, i) for i in range(5)),
    lambda t: chord((t.add.s(i, i) for i in range(5)), t.tsum.s()),
    lambda t: t.add.s(1, 1) | group(t.add.s(1), t.add.s(2) | t.add.s(3)) | t.tsum.s(),
    lambda t: group(chord([t.add.s(1, 1)], t.tsum.s()), t.add.s(2, 2)),
    lambda t: chain(t.add.s(1, 1), group([]), t.note.s()),
    lambda t: chain(t.add.s(1, 1), t.boom.s(), t.note.s(), t.note.s()),
    lambda t: chord([t.add.s(1, 1), t.add.s(1, 1) | t.boom.s()], t.tsum.s()) | t.note.s(),
    lambda t: t.add.s(1, 1).set(link=t.note.s("ok"), link_error=t.note.s("failed")),
    lambda t: t.boom.s().set(link=t.note.s("ok"), link_error=t.note.s("failed")),
]


def outcome(result: AsyncResult | GroupResult | None, parents: int = 3) -> Any:
    """What a handle says, without ids: its results, or its status and error; and what the
    handles it follows say (``parent``), a few steps back."""
    if result is None:
        return None
    if isinstance(result, GroupResult):
        return [outcome(member, 0) for member in result.results]
    value = result.get(timeout=10, propagate=False)
    if isinstance(value, TaskFailedError):
        value = (value.task_name, value.exc_type, value.exc_message)
    elif isinstance(value, TaskRevokedError):
        value = "revoked"
    parent = outcome(result.parent, parents - 1) if parents else None
    return without_ids((result.status, value, parent))


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def without_ids(value: Any) -> Any:
    """``value`` with every job id in it replaced by ``<id>``."""
    if isinstance(value, str):
        return UUID.sub("<id>", value)
    if isinstance(value, list | tuple):
        return [without_ids(item) for item in value]
    return value


@pytest.mark.parametrize("make", SHAPES)
def test_eager_runs_come_to_what_workers_come_to(
    app: SQLQueue, tasks: Any, calls: list[Any], make: Callable[[Any], Signature]
) -> None:
    sent = make(tasks).apply_async()
    work_off(app, concurrency=3)
    by_workers = (outcome(sent), sorted(map(str, without_ids(calls))))
    calls.clear()

    app.conf.task_always_eager = True
    ran = make(tasks).apply_async()

    assert (outcome(ran), sorted(map(str, without_ids(calls)))) == by_workers
