"""Workflows as the store writes and settles them: plans built by hand, run by real workers.

What a plan holds is the canvas's business (``tests/test_canvas.py``); here, that the
database releases each waiting step once, with what it receives, and stops those that
will never run.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import count_jobs, work_off

from sqlqueue import SQLQueue
from sqlqueue.exceptions import ChordError, TaskFailedError, TaskRevokedError
from sqlqueue.group_result import GroupResult
from sqlqueue.outcomes import Outcome
from sqlqueue.plans import Feed, PlannedJob, WorkflowPlan
from sqlqueue.schema import jobs
from sqlqueue.send_options import SendOptions
from sqlqueue.serialization import Failure


@pytest.fixture
def wf_app(app: SQLQueue) -> SQLQueue:
    @app.task(name="w.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="w.tsum")
    def tsum(numbers: list[int], extra: int = 0) -> int:
        return sum(numbers) + extra

    @app.task(name="w.fail")
    def fail(message: str) -> None:
        raise ValueError(message)

    @app.task(name="w.note")
    def note(*args: Any) -> list[Any]:
        return list(args)

    return app


def job(
    name: str,
    *args: Any,
    after: Sequence[PlannedJob] = (),
    feed: Feed | None = Feed.RESULT,
    group: tuple[str, int] | None = None,
    parent: str | None = None,
    options: SendOptions | None = None,
) -> PlannedJob:
    return PlannedJob(
        id=str(uuid.uuid4()),
        task_name=name,
        args=list(args),
        kwargs={},
        options=options or SendOptions(),
        prerequisites=tuple(step.id for step in after),
        feed=feed if after else None,
        parent_id=parent if parent is not None else (after[-1].id if len(after) == 1 else None),
        group_id=group[0] if group else None,
        group_index=group[1] if group else None,
    )


def send(app: SQLQueue, *jobs: PlannedJob, workflow_id: str | None = None) -> None:
    plan = WorkflowPlan(id=workflow_id or jobs[-1].id, jobs=jobs)
    app.store.insert_workflow(plan, app.conf.max_payload_bytes, None)


def test_a_chain_passes_each_result_on_and_stores_later_steps_waiting(wf_app: SQLQueue) -> None:
    first = job("w.add", 2, 2)
    second = job("w.add", 4, after=[first])
    third = job("w.add", 8, after=[second])
    send(wf_app, first, second, third)
    assert count_jobs(wf_app, "status = 'WAITING'") == 2

    work_off(wf_app)

    last = wf_app.AsyncResult(third.id)
    assert last.get(timeout=5) == 16
    assert last.parent == wf_app.AsyncResult(second.id)
    assert last.parent.parent.get() == 4  # type: ignore[union-attr]
    assert last.parent.parent.parent is None  # type: ignore[union-attr]


def test_a_chord_body_gets_every_result_in_the_headers_order_once(wf_app: SQLQueue) -> None:
    group_id = str(uuid.uuid4())
    header = [job("w.add", n, n, group=(group_id, n)) for n in range(5)]
    body = job("w.tsum", 100, after=header, feed=Feed.RESULTS, parent=group_id)
    send(wf_app, *header, body)

    work_off(wf_app, concurrency=4)

    result = wf_app.AsyncResult(body.id)
    assert result.get(timeout=5) == sum(2 * n for n in range(5)) + 100
    # Stored as sent: what it received is read from the header's rows as it is taken.
    assert wf_app.store.get_job(body.id).args == [100]  # type: ignore[union-attr]
    parent = result.parent
    assert isinstance(parent, GroupResult)
    assert parent.id == group_id
    assert parent.get(timeout=5) == [0, 2, 4, 6, 8]


def test_a_failed_step_revokes_the_rest_of_its_chain_with_its_error(wf_app: SQLQueue) -> None:
    first = job("w.fail", "boom")
    second = job("w.add", 1, after=[first])
    third = job("w.add", 2, after=[second])
    errback = job("w.note", "failed:", after=[first], feed=Feed.FAILED_ID)
    unused_errback = job("w.note", "never", after=[second], feed=Feed.FAILED_ID)
    send(wf_app, first, second, third, errback, unused_errback, workflow_id=third.id)

    work_off(wf_app)

    for step in (second, third):
        stored = wf_app.store.get_job(step.id)
        assert stored is not None and stored.status == "REVOKED"
        assert stored.started_at is None
    with pytest.raises(TaskFailedError, match="ValueError: boom"):
        wf_app.AsyncResult(third.id).get(timeout=5)
    assert wf_app.AsyncResult(errback.id).get(timeout=5) == [first.id, "failed:"]
    assert wf_app.store.get_job(unused_errback.id) is None


@pytest.mark.parametrize("feed", [Feed.RESULTS, None], ids=["s", "si"])
def test_a_failed_header_job_fails_the_chord_body_with_a_chord_error(
    wf_app: SQLQueue, feed: Feed | None
) -> None:
    group_id = str(uuid.uuid4())
    header = [job("w.add", 1, 1), job("w.fail", "bad header"), job("w.add", 2, 2)]
    body = job("w.tsum", [], after=header, feed=feed, parent=group_id)
    after_body = job("w.add", 1, after=[body])
    send(wf_app, *header, body, after_body)

    work_off(wf_app)

    with pytest.raises(
        ChordError,
        match=f"ChordError: Dependency {header[1].id} raised ValueError: bad header",
    ):
        wf_app.AsyncResult(body.id).get(timeout=5)
    assert wf_app.AsyncResult(body.id).status == "FAILURE"
    assert wf_app.AsyncResult(after_body.id).status == "REVOKED"
    assert count_jobs(wf_app, "status = 'WAITING'") == 0


def test_a_workflow_sent_in_a_transaction_rolled_back_leaves_nothing(wf_app: SQLQueue) -> None:
    first = job("w.add", 1, 1)
    second = job("w.add", 1, after=[first])
    with wf_app.engine.connect() as conn:
        conn.begin()
        wf_app.store.insert_workflow(
            WorkflowPlan(id=second.id, jobs=(first, second)), wf_app.conf.max_payload_bytes, conn
        )
        assert conn.execute(sa.text("SELECT count(*) FROM sqlqueue_jobs")).scalar_one() == 2
        conn.rollback()
    assert count_jobs(wf_app) == 0


def test_revoking_a_workflows_handle_revokes_every_step_not_started(wf_app: SQLQueue) -> None:
    first = job("w.add", 1, 1)
    second = job("w.add", 1, after=[first])
    third = job("w.add", 1, after=[second])
    send(wf_app, first, second, third)

    assert wf_app.AsyncResult(third.id).revoke()

    assert count_jobs(wf_app, "status = 'REVOKED'") == 3
    with pytest.raises(TaskRevokedError):
        wf_app.AsyncResult(third.id).get(timeout=1)


def test_revoking_one_step_stops_the_steps_after_it(wf_app: SQLQueue) -> None:
    first = job("w.add", 1, 1)
    second = job("w.add", 1, after=[first])
    third = job("w.add", 1, after=[second])
    send(wf_app, first, second, third)

    assert wf_app.AsyncResult(first.id).revoke()

    assert count_jobs(wf_app, "status = 'REVOKED'") == 3
    with pytest.raises(TaskRevokedError, match=f"job {first.id}, was revoked"):
        wf_app.AsyncResult(third.id).get(timeout=1)


def test_pruning_keeps_the_results_a_waiting_step_still_needs(wf_app: SQLQueue) -> None:
    group_id = str(uuid.uuid4())
    header = [
        job("w.add", 1, 1, group=(group_id, 0)),
        job("w.add", 2, 2, group=(group_id, 1), options=SendOptions(countdown=3600)),
    ]
    body = job("w.tsum", after=header, feed=Feed.RESULTS, parent=group_id)
    send(wf_app, *header, body)
    # The first header job finishes; the second waits for its countdown.
    taken = wf_app.store.claim_jobs(1, None, "w", 30)
    assert [taken_job.id for taken_job in taken] == [header[0].id]
    wf_app.store.record_outcomes(
        [((header[0].id, 1), Outcome.succeeded("2"))], releasing=[header[0].id]
    )
    assert wf_app.store.get_job(body.id).status == "WAITING"  # type: ignore[union-attr]

    assert wf_app.store.delete_finished_jobs(older_than=-60, batch_size=100) == 0
    assert wf_app.AsyncResult(header[0].id).get() == 2


@pytest.mark.parametrize("terminate", [False, True])
def test_revoking_a_workflow_reaches_its_running_steps_only_with_terminate(
    wf_app: SQLQueue, terminate: bool
) -> None:
    first = job("w.add", 1, 1)
    second = job("w.add", 1)  # runs beside the first
    third = job("w.tsum", after=[first, second], feed=Feed.RESULTS)
    send(wf_app, first, second, third)
    taken = wf_app.store.claim_jobs(2, None, "w", 30)
    assert len(taken) == 2

    revoked = wf_app.store.revoke_jobs([third.id], terminate=terminate)

    assert revoked == (3 if terminate else 1)
    assert count_jobs(wf_app, "status = 'STARTED'") == (0 if terminate else 2)


def test_pruning_keeps_a_workflow_whose_job_runs(wf_app: SQLQueue) -> None:
    first = job("w.add", 1, 1)
    second = job("w.add", 1, after=[first])
    send(wf_app, first, second)
    [taken] = wf_app.store.claim_jobs(1, None, "w", 30)
    wf_app.store.record_outcomes([((taken.id, 1), Outcome.succeeded("2"))], releasing=[taken.id])
    [running] = wf_app.store.claim_jobs(1, None, "w", 30)
    assert running.id == second.id and running.args == [2, 1]

    # The second step runs: should its worker be lost, it reads the first's result again.
    assert wf_app.store.delete_finished_jobs(older_than=-60, batch_size=100) == 0
    assert wf_app.store.get_job(first.id) is not None


def taken_chord_of_two(app: SQLQueue) -> tuple[PlannedJob, PlannedJob, PlannedJob]:
    """A chord of two header jobs (1 + 1, 2 + 2) whose body sums their results, sent, and its
    header jobs taken by worker "w"."""
    first, second = job("w.add", 1, 1), job("w.add", 2, 2)
    body = job("w.tsum", after=[first, second], feed=Feed.RESULTS)
    send(app, first, second, body)
    app.store.claim_jobs(2, None, "w", 30)
    return first, second, body


def test_a_retrying_header_job_releases_nothing_and_its_success_later_does(
    wf_app: SQLQueue,
) -> None:
    first, second, body = taken_chord_of_two(wf_app)
    wf_app.store.record_outcomes(
        [
            ((first.id, 1), Outcome.succeeded("2")),
            ((second.id, 1), Outcome.retrying(0, None)),
        ],
        releasing=[first.id, second.id],
    )
    waiting = wf_app.store.get_job(body.id)
    assert waiting is not None and waiting.status == "WAITING"

    [again] = wf_app.store.claim_jobs(1, None, "w", 30)
    assert again.id == second.id
    wf_app.store.record_outcomes([((second.id, 2), Outcome.succeeded("4"))], releasing=[second.id])

    [released] = wf_app.store.claim_jobs(1, None, "w", 30)
    assert released.id == body.id and released.args == [[2, 4]]


def test_a_batch_holding_a_stale_take_beside_the_newest_settles_by_the_newest(
    wf_app: SQLQueue,
) -> None:
    # Given a chord of two header jobs, both taken twice (their first leases ran out), and a
    # batch that records the first job's newest take (a success) and, after it, its stale
    # take (a failure, fenced off)
    first, second, body = taken_chord_of_two(wf_app)
    with wf_app.engine.begin() as conn:
        conn.execute(jobs.update().values(lease_expires_at=datetime(2000, 1, 1, tzinfo=UTC)))
    assert wf_app.store.rescue_expired_jobs(3) == 2
    assert len(wf_app.store.claim_jobs(2, None, "w", 30)) == 2
    kept = wf_app.store.record_outcomes(
        [
            ((first.id, 2), Outcome.succeeded("2")),
            ((first.id, 1), Outcome.failed(Failure("E", "stale", "tb"))),
        ],
        releasing=[first.id],
    )

    # I expect the success written, and the body to wait for the second job still: counted
    # down once, not also for the stale failure
    assert kept == {(first.id, 2)}
    waiting = wf_app.store.get_job(body.id)
    assert waiting is not None and waiting.status == "WAITING"
    wf_app.store.record_outcomes([((second.id, 2), Outcome.succeeded("4"))], releasing=[second.id])
    [released] = wf_app.store.claim_jobs(1, None, "w", 30)
    assert released.id == body.id and released.args == [[2, 4]]


def test_the_last_header_jobs_finished_in_two_open_transactions_release_the_body_once(
    wf_app: SQLQueue,
) -> None:
    # Given a chord of two header jobs, both taken, and the body's row locked by a third
    # transaction, so that the finish of each header job commits only after both have
    # written their success and reached the body: neither sees the other's success
    # committed when it counts. SQLite's writers take turns, so this meets row locks only.
    if wf_app.dialect.name == "sqlite":
        pytest.skip("SQLite's writers take turns: two finishes are never open at once")
    header = [job("w.add", 1, 1), job("w.add", 2, 2)]
    body = job("w.tsum", after=header, feed=Feed.RESULTS)
    send(wf_app, *header, body)
    assert len(wf_app.store.claim_jobs(2, None, "w", 30)) == 2
    finishes = []
    with wf_app.engine.connect() as blocker:
        blocker.begin()
        blocker.execute(sa.select(jobs.c.id).where(jobs.c.id == body.id).with_for_update())
        for header_job, result in zip(header, ("2", "4"), strict=True):
            finish = threading.Thread(
                target=wf_app.store.record_outcomes,
                args=([((header_job.id, 1), Outcome.succeeded(result))],),
                kwargs={"releasing": [header_job.id]},
            )
            finish.start()
            finishes.append(finish)
        time.sleep(1)
        # When both wait for the body's row lock, neither success has committed.
        assert all(finish.is_alive() for finish in finishes)
        assert count_jobs(wf_app, "status = 'STARTED'") == 2
        blocker.rollback()
    for finish in finishes:
        finish.join(timeout=30)

    # Then the second to commit counted the body down to zero, after the first: released once.
    released = wf_app.store.get_job(body.id)
    assert released is not None and released.status == "PENDING"
    [taken] = wf_app.store.claim_jobs(10, None, "w", 30)
    assert taken.id == body.id and taken.args == [[2, 4]]


def test_a_waiting_steps_countdown_counts_from_its_release(wf_app: SQLQueue) -> None:
    first = job("w.add", 1, 1)
    second = job("w.add", 1, after=[first], options=SendOptions(countdown=3600))
    send(wf_app, first, second)
    [taken] = wf_app.store.claim_jobs(1, None, "w", 30)
    time.sleep(1.5)
    wf_app.store.record_outcomes([((taken.id, 1), Outcome.succeeded("2"))], releasing=[taken.id])

    released = wf_app.store.get_job(second.id)
    assert released is not None and released.status == "PENDING"
    assert released.scheduled_at is not None
    delay = (released.scheduled_at - wf_app.store.database_now()).total_seconds()
    assert 3590 < delay <= 3600
    assert released.scheduled_at - released.created_at >= timedelta(seconds=3601)


def test_a_workflows_jobs_keep_their_queue_priority_eta_and_expiry(wf_app: SQLQueue) -> None:
    eta = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    expires = datetime(2031, 1, 1, tzinfo=UTC)
    first = job("w.add", 1, 1, options=SendOptions(queue="fällig", priority=7, eta=eta))
    second = job("w.add", 1, after=[first], options=SendOptions(expires=expires))
    send(wf_app, first, second)

    stored_first, stored_second = (wf_app.store.get_job(step.id) for step in (first, second))
    assert stored_first is not None and stored_second is not None
    assert (stored_first.queue, stored_first.priority) == ("fällig", 7)
    assert stored_first.scheduled_at == eta
    assert stored_second.expires_at == expires
    assert stored_second.status == "WAITING"
