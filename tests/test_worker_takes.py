"""A worker holds takes, not jobs: one job can be held twice by the same worker.

When a worker cannot renew a lease for longer than the lease (a database outage), the job
is re-queued while its task still runs, and the same worker may claim it again. From then on
it holds two takes of one job, (id, N) and (id, N + 1): recording the first, which the fence
discards, must leave the second held, renewed and recorded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from conftest import wait_until

from sqlqueue import JobStatus, SQLQueue, Worker, WorkerOptions
from sqlqueue.dialects.base import Procedure
from sqlqueue.dialects.postgresql_listen import NOTIFY_CHANNEL
from sqlqueue.jobs import Job
from sqlqueue.schema import jobs

LEASE = 3.0
"""Seconds of the worker's lease: renewed every third of it, so a renewal may be late by two
thirds of a lease (a loaded machine) before the job is lost. Nothing here waits for a lease
to run out: the test expires it itself."""

RECORDED_WITHIN = 1.0
"""Seconds by which the worker has surely written the outcome of a run that returned."""


def get(app: SQLQueue, job_id: str) -> Job:
    job = app.store.get_job(job_id)
    assert job is not None, f"job {job_id} vanished"
    return job


def expire_and_rescue(app: SQLQueue, job_id: str) -> None:
    """What an outage longer than the lease comes to: the lease ran out unrenewed and a
    rescue re-queued the job. One transaction, so that no renewal slips in between."""
    with app.engine.begin() as conn:
        conn.execute(
            jobs.update()
            .where(jobs.c.id == job_id)
            .values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        rescue = app.dialect.rescue_expired_jobs(10)
        # (MySQL's is a Procedure: a read, a locking read and an update, on this connection)
        rescued = rescue.run(conn) if isinstance(rescue, Procedure) else conn.execute(rescue)
        assert len(rescued.all()) == 1
        if app.dialect.supports_listen_notify:  # as the worker's own rescue would
            conn.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, "")))


@pytest.fixture
def worker(app: SQLQueue) -> Iterator[Worker]:
    running = Worker(app, WorkerOptions(concurrency=2, lease=LEASE, poll_interval=0.05))
    thread = threading.Thread(target=running.run)
    thread.start()
    yield running
    running.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()


def test_a_job_taken_again_by_its_own_worker_keeps_its_second_take(
    app: SQLQueue, worker: Worker
) -> None:
    runs: list[float] = []
    first_may_return, second_may_return = threading.Event(), threading.Event()

    @app.task(name="t.taken_twice")
    def taken_twice() -> str:
        runs.append(time.monotonic())
        if len(runs) == 1:
            first_may_return.wait(30)
        elif len(runs) == 2:
            second_may_return.wait(30)
        return f"run {len(runs)}"

    # Given a job whose first run is under way
    job_id = taken_twice.delay().id
    wait_until(lambda: len(runs) == 1, 10, "the first run to start")
    # when its lease runs out meanwhile and the same worker takes it again as attempt 2
    expire_and_rescue(app, job_id)
    wait_until(lambda: len(runs) == 2, 10, "the worker to take the job again")
    assert get(app, job_id).attempts == 2
    # and the first run returns (its outcome is fenced off)
    first_may_return.set()
    returned_at = datetime.now(UTC)

    # I expect the second take to stay held: renewed after the first's outcome was written
    # (a renewal made once the first has long returned), and not lost meanwhile
    def renewed_since_the_first_returned() -> bool:
        job = get(app, job_id)
        assert (job.status, job.attempts) == (JobStatus.STARTED, 2), "the second take was lost"
        assert job.lease_expires_at is not None
        return job.lease_expires_at > returned_at + timedelta(seconds=LEASE + RECORDED_WITHIN)

    wait_until(renewed_since_the_first_returned, 10 * LEASE, "a renewal of the second take")
    # and its outcome written when it returns: the job ran twice in all, never as WorkerLost
    second_may_return.set()
    wait_until(
        lambda: get(app, job_id).status in (JobStatus.SUCCESS, JobStatus.FAILURE),
        10 * LEASE,
        "the job to finish",
    )
    job = get(app, job_id)
    assert (job.status, job.result, job.attempts) == (JobStatus.SUCCESS, "run 2", 2)
    assert len(runs) == 2
    assert job.expired_leases == 1


def test_giving_back_unknown_takes_tells_two_takes_of_one_job_apart(app: SQLQueue) -> None:
    # Given a worker that holds attempt 1 of a job, whose lease ran out, and a claim that
    # took the job again for it as attempt 2 while the answer never reached it
    @app.task(name="t.noop")
    def noop() -> None: ...

    job_id = noop.delay().id
    (first,) = app.store.claim_jobs(1, None, "w1", lease=30)
    expire_and_rescue(app, job_id)
    (second,) = app.store.claim_jobs(1, None, "w1", lease=30)
    assert (first.attempts, second.attempts) == (1, 2)

    # When it gives back what it does not know it holds, knowing only attempt 1
    released = app.store.release_unknown_takes("w1", [(job_id, first.attempts)])

    # I expect attempt 2 to be given back: the job is ready for anyone again
    assert released == 1
    assert get(app, job_id).status is JobStatus.PENDING


def test_a_running_job_whose_take_is_gone_is_said_lost_once_and_finished_ones_never(
    app: SQLQueue, worker: Worker, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()

    @app.task(name="t.held")
    def held() -> str:
        release.wait(30)
        return "done"

    @app.task(name="t.quick")
    def quick_task() -> str:
        return "ok"

    quick = [quick_task.delay() for _ in range(50)]
    job_id = held.delay().id
    wait_until(lambda: get(app, job_id).status is JobStatus.STARTED, 10, "the job to start")
    # Given a running job whose take another worker replaced (its lease expired, it was
    # rescued and taken again),
    with app.engine.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.id == job_id).values(attempts=jobs.c.attempts + 1))

    # I expect its worker to say so once, within two renewals,
    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if "lost its lease;" in r.getMessage()]

    wait_until(lambda: len(said()) >= 1, LEASE * 3, "the lost lease to be said")
    time.sleep(LEASE)  # two more renewals
    release.set()
    wait_until(lambda: all(get(app, q.id).status is JobStatus.SUCCESS for q in quick), 10, "quick")
    # and no finished job to be said lost.
    assert said() == [
        f"job id={job_id} attempt=1 lost its lease; another worker may run it, or it was revoked"
    ]
