"""Rate limits and concurrency limits (docs/limits.md): what a claim takes and leaves, on
SQLite, PostgreSQL and MariaDB; real worker processes in tests/test_limits_workers.py."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import count_jobs, wait_until

from sqlqueue import SQLQueue, chain
from sqlqueue.exceptions import CeleryCompatibilityWarning, InvalidOptionError
from sqlqueue.jobs import Job
from sqlqueue.limits import burst, rate_interval
from sqlqueue.outcomes import Outcome
from sqlqueue.worker import Worker
from sqlqueue.worker_options import WorkerOptions


def claim(app: SQLQueue, limit: int = 100, lease: float = 30.0) -> list[Job]:
    return app.store.claim_jobs(limit, None, "test-worker", lease)


def finish(app: SQLQueue, jobs: list[Job]) -> None:
    app.store.record_outcomes([((job.id, job.attempts), Outcome.succeeded(None)) for job in jobs])


def ready_attempts(app: SQLQueue) -> list[tuple[str, int]]:
    with app.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT status, attempts FROM sqlqueue_jobs WHERE status <> 'STARTED'")
        )
        return sorted((status, attempts) for status, attempts in rows)


# Bad input: refused when the task is declared, or when a job is sent, writing nothing.


@pytest.mark.parametrize("limit", [0, -1, "2", 1.5, True])
def test_a_concurrency_limit_below_one_or_not_whole_is_refused(app: SQLQueue, limit: Any) -> None:
    with pytest.raises(InvalidOptionError, match=r"concurrency_limit=.*whole number"):

        @app.task(name="t.bad", concurrency_limit=limit)
        def bad() -> None: ...


@pytest.mark.parametrize("rate", ["10/x", "ten/s", "10/", "-5/s", "1/s/s", [10]])
def test_an_unparsable_rate_limit_is_refused(app: SQLQueue, rate: Any) -> None:
    with pytest.raises(InvalidOptionError, match="rate_limit="):

        @app.task(name="t.bad", rate_limit=rate)
        def bad() -> None: ...


def test_a_concurrency_key_needs_a_limit_and_must_be_callable(app: SQLQueue) -> None:
    with pytest.raises(InvalidOptionError, match="concurrency_key= needs concurrency_limit="):

        @app.task(name="t.bad", concurrency_key=lambda: "k")
        def bad() -> None: ...

    with pytest.raises(InvalidOptionError, match="must be a function"):

        @app.task(name="t.worse", concurrency_limit=1, concurrency_key="account")
        def worse() -> None: ...


def test_rates_are_read_as_celery_writes_them() -> None:
    assert rate_interval("10/s") == pytest.approx(0.1)
    assert rate_interval("100/m") == pytest.approx(0.6)
    assert rate_interval("2/h") == pytest.approx(1800.0)
    assert rate_interval(4) == pytest.approx(0.25)  # a number: per second
    assert rate_interval("0") is None  # Celery: no limit
    assert rate_interval(None) is None
    assert (burst(0.1), burst(0.001), burst(60.0)) == (1, 100, 1)


def test_rate_limit_no_longer_warns(app: SQLQueue, recwarn: pytest.WarningsRecorder) -> None:
    @app.task(name="t.rated", rate_limit="10/s")
    def rated() -> None: ...

    assert not [w for w in recwarn if issubclass(w.category, CeleryCompatibilityWarning)]
    assert rated.rate_interval == pytest.approx(0.1)


def test_a_key_function_that_raises_or_returns_no_string_sends_nothing(app: SQLQueue) -> None:
    @app.task(name="t.per", concurrency_limit=1, concurrency_key=lambda n: {1: "one"}[n])
    def per(n: int) -> None: ...

    @app.task(name="t.number", concurrency_limit=1, concurrency_key=lambda n: n)
    def number(n: int) -> None: ...

    with pytest.raises(
        InvalidOptionError, match=r"concurrency_key of task 't.per' raised KeyError"
    ):
        per.delay_many([(1,), (2,)])  # the second call's key raises: neither is written
    with pytest.raises(InvalidOptionError, match="returned 3; it must return a string"):
        number.delay(3)
    assert count_jobs(app) == 0


def test_a_workflow_refuses_limited_tasks(app: SQLQueue, add: Any) -> None:
    @app.task(name="t.limited", concurrency_limit=1)
    def limited(x: int) -> int:
        return x

    with pytest.raises(
        InvalidOptionError,
        match=r"t\.limited: tasks with a rate or concurrency limit are not supported in workflows",
    ):
        chain(add.s(1, 2), limited.s()).delay()
    assert count_jobs(app) == 0


# What a claim takes.


def test_a_concurrency_limit_holds_the_rest_ready_and_untouched(app: SQLQueue) -> None:
    @app.task(name="t.two", concurrency_limit=2)
    def two(n: int) -> None: ...

    two.delay_many([(n,) for n in range(5)])

    taken = claim(app)
    assert len(taken) == 2
    assert claim(app) == []  # both slots are taken
    # Held jobs stay PENDING, never taken: their attempts did not move.
    assert ready_attempts(app) == [("PENDING", 0)] * 3

    finish(app, taken[:1])
    assert len(claim(app)) == 1  # one slot freed, one job taken
    assert claim(app) == []


def test_a_concurrency_key_holds_each_group_apart(app: SQLQueue) -> None:
    @app.task(
        name="t.account",
        concurrency_limit=1,
        concurrency_key=lambda account, n: f"account:{account}",
    )
    def per_account(account: int, n: int) -> None: ...

    per_account.delay_many([(1, n) for n in range(3)] + [(2, n) for n in range(3)])

    taken = claim(app)
    assert sorted(job.args[0] for job in taken) == [1, 2]  # one of each account
    assert claim(app) == []
    with app.engine.connect() as conn:
        keys = set(conn.execute(sa.text("SELECT limit_key FROM sqlqueue_jobs")).scalars())
    assert keys == {"t.account\x1faccount:1", "t.account\x1faccount:2"}


def test_a_slot_frees_when_its_lease_runs_out(app: SQLQueue) -> None:
    @app.task(name="t.one", concurrency_limit=1)
    def one(n: int) -> None: ...

    one.delay_many([(1,), (2,)])
    assert len(claim(app, lease=0.5)) == 1  # its worker is killed: no renewal, no finish
    assert claim(app) == []
    time.sleep(0.7)
    # No rescue has run: the job is still STARTED, but its lease has run out.
    assert count_jobs(app, "status = 'STARTED'") == 1
    assert len(claim(app)) == 1


def test_jobs_without_limits_are_taken_past_a_held_backlog(app: SQLQueue, add: Any) -> None:
    @app.task(name="t.held", concurrency_limit=1)
    def held(n: int) -> None: ...

    held.delay_many([(n,) for n in range(10_000)])
    first = claim(app, limit=1)
    assert [job.task_name for job in first] == ["t.held"]
    add.delay_many([(n, n) for n in range(20)])  # sent after: behind the backlog in time

    started = time.monotonic()
    taken = [job for _ in range(10) for job in claim(app, limit=2)]
    per_claim = (time.monotonic() - started) / 10

    assert [job.task_name for job in taken] == ["t.add"] * 20
    # A claim does not go through the held backlog job by job (the plans are checked apart:
    # tests/test_status_plans.py, tests/test_mysql.py); a bound loose enough for a loaded CI
    # machine, where a MySQL claim of a few round trips took over 50 ms.
    assert per_claim < 0.25, f"{per_claim * 1000:.1f} ms per claim"
    assert count_jobs(app, "task_name = 't.held' AND status = 'PENDING' AND attempts = 0") == 9_999


def test_a_rate_limit_gives_its_burst_then_one_job_per_interval(app: SQLQueue) -> None:
    # (1/s: a loaded machine takes nowhere near a second between two claims)
    @app.task(name="t.rated", rate_limit="1/s")
    def rated(n: int) -> None: ...

    rated.delay_many([(n,) for n in range(10)])

    assert len(claim(app)) == 1  # the bucket holds one job at 1/s (burst: 0.1 s, at least 1)
    assert claim(app) == []
    assert app.store.next_due_in(None) is None  # no job waits for its time
    due_in = app.store.next_due_in(None, refills=True)
    assert due_in is not None and 0.5 < due_in <= 1.0  # the worker sleeps until the refill
    time.sleep(due_in)
    assert len(claim(app)) == 1
    assert ready_attempts(app) == [("PENDING", 0)] * 8


def test_a_bucket_that_refilled_since_the_claim_is_due_at_once(app: SQLQueue) -> None:
    @app.task(name="t.rated", rate_limit="5/s")  # a burst of one, then one job every 0.2 s
    def rated(n: int) -> None: ...

    rated.delay_many([(n,) for n in range(3)])
    assert len(claim(app)) == 1
    time.sleep(0.5)  # refilled after the claim
    assert app.store.next_due_in(None, refills=True) is None
    assert app.store.next_due_in(None, refills=True, since=5) == 0.0


def test_a_rate_limit_counts_across_the_claims_of_all_workers(app: SQLQueue) -> None:
    @app.task(name="t.fast", rate_limit="50/s")  # one job every 20 ms
    def fast(n: int) -> None: ...

    fast.delay_many([(n,) for n in range(200)])
    started = time.monotonic()
    taken = 0
    while time.monotonic() - started < 1.0:
        for worker in ("a", "b", "c"):
            taken += len(app.store.claim_jobs(10, None, worker, 30.0))
    elapsed = time.monotonic() - started
    assert taken <= 50 * elapsed + burst(0.02)
    assert taken >= 30  # and it does let them through


def test_limited_jobs_of_other_queues_are_left_alone(app: SQLQueue) -> None:
    @app.task(name="t.mail", concurrency_limit=5, queue="mail")
    def mail(n: int) -> None: ...

    mail.delay_many([(n,) for n in range(3)])
    assert app.store.claim_jobs(10, ["other"], "w", 30.0) == []
    assert len(app.store.claim_jobs(10, ["mail"], "w", 30.0)) == 3


def test_claims_racing_at_one_instant_stay_within_the_limit(app: SQLQueue) -> None:
    # Given eight workers claiming at the same instant, round after round, from a group with
    # one slot and many ready jobs, I expect one job running at a time: on PostgreSQL the
    # group's lock orders the claims (a count alone would see no job another claim has
    # taken but not committed), on SQLite the write lock does.
    @app.task(name="t.single", concurrency_limit=1)
    def single(n: int) -> None: ...

    single.delay_many([(n,) for n in range(100)])
    for _ in range(10):
        barrier = threading.Barrier(8)
        taken: list[Job] = []

        def worker(name: str, barrier: threading.Barrier, taken: list[Job]) -> None:
            barrier.wait()
            taken.extend(app.store.claim_jobs(5, None, name, 30.0))

        threads = [
            threading.Thread(target=worker, args=(f"w{n}", barrier, taken)) for n in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(taken) == 1
        assert count_jobs(app, "status = 'STARTED'") == 1
        finish(app, taken)


class CountedClaims:
    """A worker's own claims, counted as they go to the database (unchanged)."""

    def __init__(self, app: SQLQueue) -> None:
        self.count = 0
        self._claim = app.store.claim_jobs

        def claim_jobs(*args: Any) -> list[Job]:
            self.count += 1
            return self._claim(*args)

        app.store.claim_jobs = claim_jobs  # type: ignore[method-assign]


def run_worker(app: SQLQueue, **options: Any) -> tuple[Worker, threading.Thread]:
    worker = Worker(app, WorkerOptions(**options))
    thread = threading.Thread(target=worker.run)
    thread.start()
    return worker, thread


def test_a_worker_held_by_a_rate_sleeps_until_the_bucket_refills(app: SQLQueue) -> None:
    # Given a worker that polls only every 30 s, and four jobs at 2/s, I expect them done in
    # about 1.5 s (the worker wakes at each refill), with a few claims per job (at the refill,
    # again after taking one, when its thread frees), not a busy loop.
    started: list[float] = []

    @app.task(name="t.two_a_second", rate_limit="2/s")
    def two_a_second(n: int) -> None:
        started.append(time.monotonic())

    two_a_second.delay_many([(n,) for n in range(4)])
    claims = CountedClaims(app)
    worker, thread = run_worker(app, concurrency=2, poll_interval=30.0)
    try:
        wait_until(lambda: len(started) == 4, 10, "four jobs started")
    finally:
        worker.stop()
        thread.join()
    assert 1.3 < started[-1] - started[0] < 3.0
    assert claims.count <= 25


@pytest.mark.postgresql
def test_a_finished_job_wakes_the_worker_its_limit_held(pg_app: SQLQueue) -> None:
    # Given one group with one slot, its running job on a worker of queue x and the next
    # job in queue y, I expect the worker of y, which waits up to 30 s between looks, to
    # start it as soon as the first job finishes: the finish wakes it.
    times: dict[int, float] = {}

    @pg_app.task(name="t.one", concurrency_limit=1)
    def one(n: int) -> None:
        times[n] = time.monotonic()
        time.sleep(0.5 if n == 1 else 0)
        times[-n] = time.monotonic()

    one.apply_async((1,), queue="x")
    x, x_thread = run_worker(pg_app, concurrency=1, queues=["x"], poll_interval=30.0)
    wait_until(lambda: 1 in times, 10, "the first job started")
    one.apply_async((2,), queue="y")
    y, y_thread = run_worker(pg_app, concurrency=1, queues=["y"], poll_interval=30.0)
    try:
        wait_until(lambda: 2 in times, 10, "the held job started")
    finally:
        for worker, thread in ((x, x_thread), (y, y_thread)):
            worker.stop()
            thread.join()
    assert times[-1] <= times[2] < times[-1] + 2.0


def test_limits_hold_for_unique_jobs_and_async_sends(app: SQLQueue, db_url: str) -> None:
    @app.task(name="t.unique_one", unique=True, concurrency_limit=1)
    def unique_one(n: int) -> None: ...

    @app.task(name="t.async_one", concurrency_limit=1, concurrency_key=lambda n: str(n % 2))
    def async_one(n: int) -> None: ...

    first, again, _ = unique_one.delay_many([(1,), (1,), (2,)])
    assert (again.duplicate, again.id) == (True, first.id)

    async def send() -> None:
        await async_one.adelay(1)
        await async_one.adelay_many([(2,), (3,), (4,)])

    asyncio.run(send())

    taken = claim(app)
    # Each group's one slot: one unique job of the two written, one odd and one even async job.
    assert sorted(job.task_name for job in taken) == ["t.async_one", "t.async_one", "t.unique_one"]
    assert {job.args[0] % 2 for job in taken if job.task_name == "t.async_one"} == {0, 1}
    assert count_jobs(app, "status = 'PENDING'") == 3


def test_a_worker_of_other_queues_takes_its_jobs_past_a_held_group(app: SQLQueue, add: Any) -> None:
    @app.task(name="t.mail", concurrency_limit=1, queue="mail")
    def mail(n: int) -> None: ...

    @app.task(name="t.report", concurrency_limit=5, queue="default")
    def report(n: int) -> None: ...

    mail.delay_many([(n,) for n in range(1000)])
    assert len(app.store.claim_jobs(10, ["mail"], "m", 30.0)) == 1  # the group is full
    report.delay_many([(n,) for n in range(3)])
    add.delay(1, 2)

    taken = app.store.claim_jobs(10, ["default"], "d", 30.0)
    assert sorted(job.task_name for job in taken) == ["t.add", "t.report", "t.report", "t.report"]
    assert app.store.claim_jobs(10, ["default"], "d", 30.0) == []
