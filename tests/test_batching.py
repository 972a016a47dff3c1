"""Batched claims and completions, and the idle worker: on every database.

A worker takes at most as many jobs as it has free slots, and writes the outcomes of the
jobs that finished meanwhile in one transaction (on PostgreSQL one statement); the fence
holds job by job inside a batch. An idle worker listening on PostgreSQL sleeps until a
notification, the next due time of a scheduled job, or a long fallback.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import count_jobs, start_worker, wait_until

from sqlqueue import JobStatus, SQLQueue, Worker, WorkerOptions
from sqlqueue.jobs import Job
from sqlqueue.outcomes import Outcome
from sqlqueue.schema import jobs
from sqlqueue.serialization import Failure


def send(app: SQLQueue, count: int, **options: Any) -> list[str]:
    return [app.send_task("t.job", args=[n], **options).id for n in range(count)]


def get(app: SQLQueue, job_id: str) -> Job:
    job = app.store.get_job(job_id)
    assert job is not None, f"job {job_id} vanished"
    return job


def test_a_batch_of_mixed_outcomes_stores_each_one(app: SQLQueue) -> None:
    # Given five jobs taken by one worker
    ids = send(app, 5)
    taken = {job.id: job for job in app.store.claim_jobs(5, None, "w1", lease=30)}
    assert set(taken) == set(ids)
    ok, nothing, boom, again, again_silently = ids

    def take(job_id: str) -> tuple[str, int]:
        return (job_id, taken[job_id].attempts)

    # When their outcomes are written together
    kept = app.store.record_outcomes(
        [
            (take(ok), Outcome.succeeded(json.dumps({"total": [1, 2.5, "three"]}))),
            (take(nothing), Outcome.succeeded(json.dumps(None))),
            (take(boom), Outcome.failed(Failure("ValueError", "bad thing", "Traceback …"))),
            (take(again), Outcome.retrying(60, Failure("OSError", "try later", "tb"))),
            (take(again_silently), Outcome.retrying(0, None)),
        ]
    )

    # I expect every take to be kept, and each row to hold its own outcome
    assert kept == {take(job_id) for job_id in ids}
    done = get(app, ok)
    assert (done.status, done.result, done.error_type) == (
        JobStatus.SUCCESS,
        {"total": [1, 2.5, "three"]},
        None,
    )
    assert done.finished_at is not None and done.lease_expires_at is None
    assert done.worker_id == "w1"
    assert (get(app, nothing).status, get(app, nothing).result) == (JobStatus.SUCCESS, None)
    failed = get(app, boom)
    assert (failed.status, failed.error_type, failed.error_message, failed.traceback) == (
        JobStatus.FAILURE,
        "ValueError",
        "bad thing",
        "Traceback …",
    )
    assert failed.result is None and failed.finished_at is not None
    retried = get(app, again)
    assert (retried.status, retried.retries, retried.error_type) == (JobStatus.RETRY, 1, "OSError")
    assert retried.finished_at is None and retried.worker_id is None
    assert retried.scheduled_at > datetime.now(UTC) + timedelta(seconds=30)
    assert (get(app, again_silently).status, get(app, again_silently).retries) == (
        JobStatus.RETRY,
        1,
    )
    # ... and the retried-at-once job ready to be taken again, the other not yet
    assert [job.id for job in app.store.claim_jobs(5, None, "w2", lease=30)] == [again_silently]


def test_a_success_in_a_batch_clears_the_error_of_an_earlier_try(app: SQLQueue) -> None:
    (job_id,) = send(app, 1)
    (first,) = app.store.claim_jobs(1, None, "w1", lease=30)
    assert app.store.record_outcomes(
        [((job_id, first.attempts), Outcome.retrying(0, Failure("OSError", "flaky", "tb")))]
    ) == {(job_id, first.attempts)}
    (second,) = app.store.claim_jobs(1, None, "w1", lease=30)

    assert app.store.record_outcomes(
        [((job_id, second.attempts), Outcome.succeeded(json.dumps(7)))]
    ) == {(job_id, second.attempts)}

    job = get(app, job_id)
    assert (job.status, job.result, job.error_type, job.error_message, job.traceback) == (
        JobStatus.SUCCESS,
        7,
        None,
        None,
        None,
    )


def test_a_batch_with_stale_takes_writes_only_the_current_ones(app: SQLQueue) -> None:
    # Given four jobs taken by worker 1 with a short lease, two of which ran out and were
    # taken again by worker 2 (worker 1 looked dead)
    ids = send(app, 4)
    first = {job.id: job for job in app.store.claim_jobs(4, None, "w1", lease=30)}
    lost = sorted(ids)[:2]
    with app.engine.begin() as conn:  # their leases run out
        conn.execute(
            jobs.update()
            .where(jobs.c.id.in_(lost))
            .values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert app.store.rescue_expired_jobs(max_lease_expiries=3) == 2
    second = {job.id: job for job in app.store.claim_jobs(4, None, "w2", lease=30)}
    assert set(second) == set(lost)
    assert {job.attempts for job in second.values()} == {2}

    # When worker 1 comes back and writes the outcomes of all four in one batch
    kept = app.store.record_outcomes(
        [
            ((job_id, job.attempts), Outcome.succeeded(json.dumps("from worker 1")))
            if n % 2 == 0
            else ((job_id, job.attempts), Outcome.failed(Failure("E", "worker 1", "tb")))
            for n, (job_id, job) in enumerate(sorted(first.items()))
        ]
        + [((lost[0], first[lost[0]].attempts), Outcome.retrying(0, None))]
    )

    # I expect only the two it still held to be written, and the other two reported lost
    assert kept == {(job_id, 1) for job_id in set(ids) - set(lost)}
    for job_id in lost:
        job = get(app, job_id)
        assert (job.status, job.attempts, job.worker_id, job.result, job.retries) == (
            JobStatus.STARTED,
            2,
            "w2",
            None,
            0,
        )
    assert {get(app, job_id).status for job_id, _ in kept} == {
        JobStatus.SUCCESS,
        JobStatus.FAILURE,
    }
    # ... and worker 2's own outcomes to go through
    assert app.store.record_outcomes(
        [((job_id, 2), Outcome.succeeded(json.dumps("from worker 2"))) for job_id in lost]
    ) == {(job_id, 2) for job_id in lost}
    assert {get(app, job_id).result for job_id in lost} == {"from worker 2"}


def test_a_batch_that_the_database_refuses_changes_nothing(app: SQLQueue) -> None:
    # A failure whose type name is longer than its column refuses the whole transaction:
    # PostgreSQL and MySQL (in its default strict mode) say so; SQLite stores it (it does not
    # enforce lengths), which is also fine.
    send(app, 2)
    taken = app.store.claim_jobs(2, None, "w1", lease=30)
    outcomes = [
        ((taken[0].id, taken[0].attempts), Outcome.succeeded(json.dumps(1))),
        ((taken[1].id, taken[1].attempts), Outcome.failed(Failure("E" * 300, "m", "tb"))),
    ]
    if app.dialect.name == "sqlite":
        assert app.store.record_outcomes(outcomes) == {take for take, _ in outcomes}
        return
    from sqlqueue.exceptions import DatabaseError

    with pytest.raises(DatabaseError) as refused:
        app.store.record_outcomes(outcomes)
    assert not refused.value.transient
    assert count_jobs(app, "status = 'STARTED'") == 2


def test_next_due_in_is_the_wait_for_the_next_scheduled_job_of_the_queues(app: SQLQueue) -> None:
    assert app.store.next_due_in(None) is None
    send(app, 1)  # due now: a claim's business, not a wait
    assert app.store.next_due_in(None) is None
    app.send_task("t.job", countdown=100, queue="later")
    app.send_task("t.job", countdown=30, queue="soon")

    soon = app.store.next_due_in(None)
    assert soon is not None and 20 < soon <= 30
    later = app.store.next_due_in(["later", "default"])
    assert later is not None and 90 < later <= 100
    assert app.store.next_due_in(["other"]) is None


def test_next_due_in_counts_a_job_that_fell_due_since_the_claim(app: SQLQueue) -> None:
    # After a claim that came back short, the loop asks when to look again: a job that fell
    # due after the claim read the table was not seen by it, and is due at once.
    app.send_task("t.job", countdown=0.3)
    time.sleep(0.6)
    assert app.store.next_due_in(None) is None  # due: a claim's business
    assert app.store.next_due_in(None, since=5) == 0.0
    assert app.store.next_due_in(["default"], since=5) == 0.0


def test_a_worker_never_holds_more_unfinished_jobs_than_its_concurrency(app: SQLQueue) -> None:
    # Given 12 jobs that each take far longer than a claim (so no prefetch: it holds what the
    # threads start during one claim, which a loaded MySQL claim of 20 ms made one job for
    # jobs of 50 ms), and note when their task has returned
    returned: set[str] = set()

    @app.task(name="t.slow", bind=True)
    def slow(self: Any, n: int) -> int:
        time.sleep(0.3)
        returned.add(self.request.id)
        return n

    sent = [slow.delay(n).id for n in range(12)]

    # When a 3-slot worker drains them, watched from the table while it runs
    worker = Worker(app, WorkerOptions(concurrency=3, burst=True, poll_interval=0.05))
    thread = threading.Thread(target=worker.run)
    thread.start()
    unfinished: list[int] = []
    while thread.is_alive():
        with app.engine.connect() as conn:
            taken = set(
                conn.execute(
                    sa.select(jobs.c.id).where(jobs.c.status == JobStatus.STARTED.value)
                ).scalars()
            )
        # (read after the table: a job whose task had returned by then is in it)
        unfinished.append(len(taken - set(returned)))
        time.sleep(0.005)
    thread.join()

    # I expect every job done, and never more than 3 taken whose task had not returned: a
    # slot frees when its task returns, while its outcome may still wait for its write
    # (STARTED rows can then briefly outnumber the slots).
    assert count_jobs(app, "status = 'SUCCESS'") == len(sent)
    assert max(unfinished) <= 3, unfinished
    assert max(unfinished) >= 2, unfinished


def test_the_claim_asks_for_no_more_than_the_free_slots(app: SQLQueue) -> None:
    # Given a 4-slot worker whose claims are recorded, and 10 jobs that wait on a gate
    gate = threading.Event()

    @app.task(name="t.gated")
    def gated() -> None:
        gate.wait(30)

    for _ in range(10):
        gated.delay()
    asked: list[int] = []
    store_claim = app.store.claim_jobs

    def claim_jobs(limit: int, *args: Any, **kwargs: Any) -> list[Job]:
        asked.append(limit)
        return store_claim(limit, *args, **kwargs)

    app.store.claim_jobs = claim_jobs  # type: ignore[method-assign]
    worker = Worker(app, WorkerOptions(concurrency=4, burst=True, poll_interval=0.05))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        # When the first four are running
        wait_until(lambda: count_jobs(app, "status = 'STARTED'") == 4, 10, "4 running jobs")
        time.sleep(0.2)
        # I expect it to have asked for 4 once, and for nothing more while all slots are busy
        assert asked == [4]
        assert count_jobs(app, "status = 'STARTED'") == 4
    finally:
        gate.set()
        thread.join(timeout=30)
    # and then for the rest. (Once jobs have become short, the prefetch may ask for more than
    # the free slots: how many depends on the claim's time, the machine's.)
    assert count_jobs(app, "status = 'SUCCESS'") == 10
    assert sum(asked) >= 10


def test_outcomes_written_in_batches_are_all_stored_with_their_logs(
    app: SQLQueue, caplog: pytest.LogCaptureFixture
) -> None:
    # Given many jobs of each outcome, finishing at the same moment in many threads
    @app.task(name="t.ok")
    def ok(n: int) -> int:
        return n

    @app.task(name="t.boom")
    def boom(n: int) -> None:
        raise ValueError(f"boom {n}")

    @app.task(name="t.again", bind=True, max_retries=1, default_retry_delay=0)
    def again(self: Any, n: int) -> int:
        if self.request.retries == 0:
            raise self.retry()
        return -n

    with app.engine.begin() as conn, app.using(conn):
        sent = [task.delay(n) for n in range(30) for task in (ok, boom, again)]

    # When one 8-thread worker drains them
    with caplog.at_level("INFO", logger="sqlqueue.worker"):
        Worker(app, WorkerOptions(concurrency=8, burst=True, poll_interval=0.05)).run()

    # I expect each job's own outcome in its row, and one log line per finished run
    for result in sent:
        job = get(app, result.id)
        n = job.args[0]
        if job.task_name == "t.ok":
            assert (job.status, job.result) == (JobStatus.SUCCESS, n)
        elif job.task_name == "t.boom":
            assert (job.status, job.error_type, job.error_message) == (
                JobStatus.FAILURE,
                "ValueError",
                f"boom {n}",
            )
        else:
            assert (job.status, job.result, job.retries) == (JobStatus.SUCCESS, -n, 1)
    messages = [record.getMessage() for record in caplog.records]
    assert sum("outcome=SUCCESS" in m for m in messages) == 60
    assert sum("outcome=RETRY" in m for m in messages) == 30
    failures = [r for r in caplog.records if "outcome=FAILURE" in r.getMessage()]
    assert len(failures) == 30
    assert all(r.levelname == "ERROR" and "ValueError: boom" in r.getMessage() for r in failures)
    assert count_jobs(app, "status = 'STARTED'") == 0


def test_stop_writes_the_outcomes_of_running_jobs_and_gives_back_the_others(
    app: SQLQueue,
) -> None:
    # Given a 2-slot worker running two jobs that wait on a gate, with more queued
    gate = threading.Event()
    began = threading.Semaphore(0)

    @app.task(name="t.gated")
    def gated(n: int) -> int:
        began.release()
        gate.wait(30)
        return n

    sent = [gated.delay(n).id for n in range(5)]
    worker = Worker(app, WorkerOptions(concurrency=2, poll_interval=0.05))
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert began.acquire(timeout=10) and began.acquire(timeout=10)

    # When it is stopped while they run, and they then finish
    worker.stop()
    gate.set()
    thread.join(timeout=30)

    # I expect run() to have returned with both outcomes written, and nothing else taken
    assert not thread.is_alive()
    assert count_jobs(app, "status = 'SUCCESS'") == 2
    assert count_jobs(app, "status = 'PENDING' AND attempts = 0") == 3
    assert count_jobs(app, "status = 'STARTED'") == 0
    # each with its own result
    done = [(n, get(app, job_id)) for n, job_id in enumerate(sent)]
    finished = [(n, job) for n, job in done if job.status is JobStatus.SUCCESS]
    assert len(finished) == 2
    assert all(job.result == n for n, job in finished)


def test_jobs_taken_by_a_claim_whose_answer_was_lost_can_be_given_back(app: SQLQueue) -> None:
    # Given worker w1 holding one job it knows of, and two more that a claim took for it
    # while the answer never reached it (the connection was cut at the commit)
    known, *unknown = send(app, 3)
    app.store.claim_jobs(3, None, "w1", lease=30)
    send(app, 1)
    app.store.claim_jobs(1, None, "w2", lease=30)  # another worker's take stays its own

    # When it gives back what it does not know it holds
    assert app.store.release_unknown_takes("w1", [(known, 1)]) == 2

    # I expect those two to be ready again, and the known job and w2's to stay taken
    assert {get(app, job_id).status for job_id in unknown} == {JobStatus.PENDING}
    assert get(app, known).status is JobStatus.STARTED
    assert count_jobs(app, "status = 'STARTED'") == 2
    assert {job.id for job in app.store.claim_jobs(5, None, "w3", lease=30)} == set(unknown)


@pytest.mark.postgresql
@pytest.mark.slow
def test_a_listening_worker_runs_a_scheduled_job_when_due_without_a_notification(
    pg_app: SQLQueue, postgres_url: str
) -> None:
    # Given an idle worker on PostgreSQL that would not poll again for a minute
    worker = start_worker(postgres_url, "--poll-interval", "60")
    try:
        time.sleep(3)  # started, looked once, found nothing: listening
        # When a job is sent with a countdown: its notification comes now, when it is not
        # due, and nothing announces the moment it becomes due
        result = pg_app.send_task("tasks.add", args=[20, 22], countdown=1.5)

        # I expect it to run soon after it is due (long before the fallback poll), and not
        # before
        assert result.get(timeout=10) == 42
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=30)
    job = get(pg_app, result.id)
    assert job.started_at is not None
    assert job.started_at >= job.scheduled_at, output
    assert job.attempts == 1


def test_workers_of_one_process_have_ids_of_their_own(app: SQLQueue) -> None:
    # A worker gives back jobs leased to its id that it does not hold; two workers sharing an
    # id (one process, or containers that all run as pid 1) would undo each other's claims.
    first, second = Worker(app), Worker(app)
    assert first.id != second.id
    assert first.id.rsplit(":", 1)[0] == second.id.rsplit(":", 1)[0]
