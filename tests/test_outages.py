"""Workers survive a database that goes away: connections cut under them, new ones refused.

The outage is real (a proxy between the workers and PostgreSQL, or MariaDB, drops the TCP
connections), but only the workers' connections suffer, so the server other tests use stays up.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from conftest import count_jobs, empty_mysql, start_worker, wait_until
from proxy import CuttableProxy

from sqlqueue import SQLQueue, Worker, WorkerOptions, engines
from sqlqueue.exceptions import DatabaseError
from sqlqueue.schema import jobs

pytestmark = pytest.mark.slow

JOBS = 400

DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
URL_FIXTURES = {"postgresql": "postgres_url", "mysql": "mysql_url"}

THREADS = ("claims", "chores", "heartbeat")
"""The worker's threads that talk to the database while it has no job."""


@pytest.fixture(
    params=[
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def proxied(request: pytest.FixtureRequest) -> Iterator[tuple[SQLQueue, str, CuttableProxy]]:
    """An app on the real server (PostgreSQL, MariaDB), its jobs deleted, the same database's
    URL through a cuttable proxy, and the proxy."""
    direct: str = request.getfixturevalue(URL_FIXTURES[request.param])
    if request.param == "mysql":
        empty_mysql(direct)
    else:
        with psycopg.connect(direct, autocommit=True) as conn:
            conn.execute("TRUNCATE sqlqueue_jobs")
    url = sa.make_url(direct)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or DEFAULT_PORTS[request.param])
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    app = SQLQueue(direct)
    yield app, through_proxy, proxy
    proxy.close()
    app.engine.dispose()


def test_workers_ride_out_cut_connections_and_an_outage_and_lose_nothing(
    proxied: tuple[SQLQueue, str, CuttableProxy], tmp_path: Path
) -> None:
    app, url, proxy = proxied
    log = tmp_path / "runs.log"
    with app.engine.begin() as conn, app.using(conn):
        # (each taking a moment, so that the workers are still busy when the outage comes)
        ids = [app.send_task("tasks.record", args=[str(log), 0.1]).id for _ in range(JOBS)]
    workers = [
        start_worker(url, "--burst", "-c", "4", "--lease", "3", "--poll-interval", "0.1")
        for _ in range(2)
    ]
    try:
        # Given workers draining the queue,
        wait_until(lambda: log.exists() and len(log.read_text().split()) > 40, 60, "20 runs")
        # when their connections are cut again and again,
        for _ in range(4):
            time.sleep(0.4)
            proxy.cut()
        # and the database is unreachable until they have tried it again and again,
        proxy.refusing.set()
        proxy.cut()
        wait_until(lambda: proxy.refused >= 20, 30, "20 tries")
        proxy.refusing.clear()
        outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()

    # I expect them to have logged the outage, carried on, and finished every job;
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    assert any("database unavailable" in output for output in outputs), outputs
    with app.engine.connect() as conn:
        rows = conn.execute(sa.select(jobs.c.id, jobs.c.status, jobs.c.attempts)).all()
    assert {status for _, status, _ in rows} == {"SUCCESS"}
    runs = Counter(line.split()[0] for line in log.read_text().splitlines())
    assert set(runs) == set(ids)
    # a job ran twice only if it was taken twice (its first outcome could not be recorded).
    attempts = {str(job_id): taken for job_id, _, taken in rows}
    assert all(runs[job_id] <= attempts[job_id] for job_id in ids)


def test_a_connection_that_sat_idle_is_pinged_and_replaced_when_dead(
    proxied: tuple[SQLQueue, str, CuttableProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, through_proxy, proxy = proxied
    app = SQLQueue(through_proxy)
    app.send_task("t.job")  # leaves one connection in the pool
    assert proxy.cut() > 0
    monkeypatch.setattr(engines, "PING_AFTER_IDLE", 0.0)  # it has now sat idle long enough

    app.send_task("t.job")  # the ping finds it dead; the pool opens another; no error

    assert job_count(app) == 2
    app.engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged_so_a_cut_fails_one_send(
    proxied: tuple[SQLQueue, str, CuttableProxy],
) -> None:
    # The price of pinging only idle connections: a send on a connection cut since its last
    # use fails, as a transient error, and the next send reconnects.
    _, through_proxy, proxy = proxied
    app = SQLQueue(through_proxy)
    app.send_task("t.job")
    assert proxy.cut() > 0

    with pytest.raises(DatabaseError) as raised:
        app.send_task("t.job")
    assert raised.value.transient
    app.send_task("t.job")

    assert job_count(app) == 2
    app.engine.dispose()


def job_count(app: SQLQueue) -> int:
    with app.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one()


def test_the_chores_outlive_an_outage_rescue_after_it_and_log_it_once(
    proxied: tuple[SQLQueue, str, CuttableProxy], caplog: pytest.LogCaptureFixture
) -> None:
    app, through_proxy, proxy = proxied
    caplog.set_level(logging.INFO, logger="sqlqueue")
    worker_app = SQLQueue(through_proxy)

    @worker_app.task(name="t.job")
    def job() -> str:
        return "ran"

    worker = Worker(worker_app, WorkerOptions(lease=1, poll_interval=0.05))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        # Given a worker whose database is unreachable until its chores have failed on it,
        # and its threads have tried again and again,
        proxy.refusing.set()
        proxy.cut()
        wait_until(lambda: "chores: database unavailable" in caplog.text, 15, "the outage")
        tries = proxy.refused
        wait_until(lambda: proxy.refused >= tries + 20, 30, "20 more tries")
        proxy.refusing.clear()
        # when, after it, a job is left behind by a worker that died holding it (written
        # taken, in one statement: sent and claimed apart, the live worker could take it first)
        job_id = str(uuid.uuid4())
        past = datetime.now(UTC) - timedelta(seconds=1)
        with app.engine.begin() as conn:
            conn.execute(
                jobs.insert().values(
                    id=job_id,
                    task_name="t.job",
                    queue="default",
                    priority=0,
                    args=[],
                    kwargs={},
                    status="STARTED",
                    attempts=1,
                    scheduled_at=past,
                    created_at=past,
                    started_at=past,
                    lease_expires_at=past,
                    worker_id="dead-worker",
                )
            )

        # I expect the worker's chores, which failed during the outage, to rescue it
        deadline = time.monotonic() + 15
        while (done := app.store.get_job(job_id)) is None or done.status != "SUCCESS":
            assert time.monotonic() < deadline, "the job was never rescued"
            time.sleep(0.05)
        wait_until(
            lambda: all(f"{what}: database back" in caplog.text for what in THREADS),
            15,
            "every thread to find the database back",
        )
    finally:
        worker.stop()
        thread.join(timeout=30)
        worker_app.engine.dispose()
    assert (done.result, done.expired_leases, done.attempts) == ("ran", 1, 2)
    # and each of its threads to have said once that the database was gone, and once that it
    # was back.
    lines = [record.getMessage() for record in caplog.records]
    for what in THREADS:
        assert sum(line.startswith(f"{what}: database unavailable") for line in lines) == 1, lines
        assert sum(line.startswith(f"{what}: database back after") for line in lines) == 1, lines


def test_a_claim_answered_after_its_lease_ran_out_does_not_start(
    proxied: tuple[SQLQueue, str, CuttableProxy],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, through_proxy, proxy = proxied
    direct = app.engine.url.render_as_string(hide_password=False)
    runs: list[tuple[str, str]] = []

    def worker_on(url: str, host: str) -> Worker:
        worker_app = SQLQueue(url)

        @worker_app.task(name="t.side_effect", bind=True)
        def side_effect(self: Any) -> None:
            runs.append((host, self.request.id))

        return Worker(worker_app, WorkerOptions(lease=1, poll_interval=0.05))

    def succeeded(job_id: str) -> bool:
        job = app.store.get_job(job_id)
        return job is not None and job.status == "SUCCESS"

    late = worker_on(through_proxy, "late")
    other = worker_on(direct, "other")
    threads = [threading.Thread(target=worker.run) for worker in (late, other)]
    try:
        # Given a worker that runs jobs as usual,
        threads[0].start()
        first = app.send_task("t.side_effect").id
        wait_until(lambda: succeeded(first), 30, "the first job to run")
        # when its database's answers come back three leases late,
        proxy.answer_delay = 3.0
        job_id = app.send_task("t.side_effect").id

        def taken_by(worker: Worker) -> bool:
            job = app.store.get_job(job_id)
            return job is not None and job.status == "STARTED" and job.worker_id == worker.id

        # and it has taken a job (its claim committed, the answer on its way),
        wait_until(lambda: taken_by(late), 30, "the late worker's claim")
        # so that, once the lease has run out, another worker runs it,
        threads[1].start()
        wait_until(lambda: succeeded(job_id), 30, "a run")
        # I expect the late worker, answered at last, to leave the job alone and say so.
        wait_until(lambda: len(not_started(caplog)) == 1, 30, "the late answer")
    finally:
        proxy.answer_delay = 0.0
        for worker, thread in zip((late, other), threads, strict=True):
            worker.stop()
            if thread.ident is not None:
                thread.join(timeout=30)
            worker.app.engine.dispose()
    assert runs == [("late", first), ("other", job_id)]
    refused = not_started(caplog)
    assert len(refused) == 1, refused
    assert f"id={job_id} attempt=1" in refused[0]


def not_started(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The worker's lines about jobs it did not start (their lease may have run out)."""
    lines = [record.getMessage() for record in caplog.records]
    return [line for line in lines if line.startswith("job not started")]


def test_prefetched_jobs_whose_lease_ran_out_in_an_outage_do_not_start(
    proxied: tuple[SQLQueue, str, CuttableProxy], caplog: pytest.LogCaptureFixture
) -> None:
    app, through_proxy, proxy = proxied
    worker_app = SQLQueue(through_proxy)
    gate = threading.Event()
    runs: list[tuple[int, int]] = []

    @worker_app.task(name="t.quick", bind=True)
    def quick(self: Any, n: int) -> None:
        runs.append((n, self.request.attempts))

    @worker_app.task(name="t.gated")
    def gated() -> None:
        gate.wait(30)

    # Given quick jobs first, then two that wait on a gate, then 20 quick ones behind them,
    with app.engine.begin() as conn, app.using(conn):
        for n in range(50):
            app.send_task("t.quick", args=[-1 - n], priority=10)
        for _ in range(2):
            app.send_task("t.gated", priority=5)
        for n in range(20):
            app.send_task("t.quick", args=[n])
    # taken by a 2-thread worker, the 20 waiting in its buffer (the give-back of an overdue
    # buffer switched off, as when its loop hangs on a cut link),
    worker = Worker(worker_app, WorkerOptions(concurrency=2, lease=1, poll_interval=0.05))
    worker._give_back_buffer = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=worker.run)
    thread.start()
    behind = "priority = 0"
    try:
        wait_until(
            lambda: count_jobs(app, f"{behind} AND status = 'STARTED'") == 20, 30, "a buffer"
        )
        # when the database goes away until their leases have run out,
        proxy.refusing.set()
        proxy.cut()
        wait_until(
            lambda: count_jobs(app, f"{behind} AND lease_expires_at < {now(app)}") == 20,
            30,
            "expiry",
        )
        # and then the threads are free,
        gate.set()
        # I expect the worker to start none of them,
        wait_until(lambda: len(not_started(caplog)) == 20, 30, "20 jobs not started")
        assert [n for n, _ in runs if n >= 0] == []
        # and, once the database is back, each to run once, from its second take.
        proxy.refusing.clear()
        wait_until(lambda: count_jobs(app, f"{behind} AND status = 'SUCCESS'") == 20, 30, "runs")
    finally:
        gate.set()
        proxy.refusing.clear()
        worker.stop()
        thread.join(timeout=30)
        worker_app.engine.dispose()
    assert sorted((n, attempt) for n, attempt in runs if n >= 0) == [(n, 2) for n in range(20)]


def now(app: SQLQueue) -> str:
    """The database's clock in SQL, as UTC as the stored times (MySQL's now() is local)."""
    return "UTC_TIMESTAMP(6)" if app.dialect.name == "mysql" else "now()"
