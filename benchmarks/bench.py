"""sqlqueue's benchmark: enqueue, drain, latency, idle cost and a large table, on one database.

    python benchmarks/bench.py                                  # local PostgreSQL
    python benchmarks/bench.py --url sqlite:////tmp/bench.db    # SQLite
    python benchmarks/bench.py --url mysql+pymysql://root@127.0.0.1:3306/mysql  # MariaDB
    python benchmarks/bench.py --json results.json --jobs 5000 --processes 4

Each figure runs on a fresh database (PostgreSQL, MySQL, MariaDB: a new database on the
server of --url, dropped afterwards; SQLite: a new file), with no-op tasks. It prints a table
with the machine and writes JSON. Machines are noisy: compare figures from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import sqlalchemy as sa

from sqlqueue import SQLQueue, Task, chord
from sqlqueue.conf import DEFAULT_CONCURRENCY
from sqlqueue.prefetch import MAX_PREFETCH
from sqlqueue.schema import jobs

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))
from scratch_databases import drop_database, fresh_database  # noqa: E402 - shared with the chaos run

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


BULK_JOBS = 50_000
"""Jobs in the bulk enqueue's single call."""

DRAIN_RUNS = 5
"""Drains measured for each drain figure, which is their median."""

CHORD_JOBS = 10_000
"""Header jobs of the benchmark's chord (issue 13)."""

LIMITED_SLOTS = 1000
"""The concurrency limit of ``bench_tasks.limited_noop``: more than a default worker ever
holds (its threads and the most prefetch), so the limit is checked at every claim and never
hit (issue 14)."""

LIMIT_TURNS = 5
"""Turns of the limited drain and of the plain drain it is compared with, alternated."""

CHURNED = 50_000
"""Jobs run while a snapshot is held open, for the dead-rows figure."""

IDLE_NOT_COUNTED = {
    "sqlite": "SQLite",
    "mysql": "MySQL counts transactions per server, which other clients share",
}
"""Why the idle cost is not measured on a database."""

IDLE_SETTLE = 12.0
"""Seconds an idle worker runs before its cost is counted (see idle_statements_per_second)."""

IDLE_WINDOW = 30.0
"""Seconds over which an idle worker's cost is counted: one whole fallback poll and rescue
cycle of a worker that listens (PostgreSQL)."""

DRAIN_CONCURRENCY = 100
"""Threads per worker for the drains that issue 5 compared with a plain SQL loop claiming 100
rows a statement (when a claim took at most the free threads); what someone after throughput
with short, I/O-bound tasks would give a worker. The rows keep it so that runs compare across
releases; the default worker has its own rows."""

FEWER_THREADS = 32
"""Threads of the one extra drain that shows what smaller claims cost."""

EIGHT_THREADS = 8
"""Threads of the drain that issue 11 compares with other queues at ``--concurrency 8``."""

DEFAULT_CLAIM = DEFAULT_CONCURRENCY + MAX_PREFETCH
"""The claim size of the plain SQL loop beside the default worker's drain: a worker of
no-op jobs prefetches the most it may, so its claims take its threads plus the prefetch."""

PLAIN_INSERT = """
INSERT INTO sqlqueue_jobs (id, task_name, queue, priority, args, kwargs, status, scheduled_at,
                           created_at)
VALUES (%s, 'bench_tasks.noop', 'default', 0, %s::jsonb, '{}', 'PENDING', now(), now())
"""
PLAIN_CLAIM = "SELECT id, attempts FROM sqlqueue_claim(%s, 60, 'plain', NULL)"
PLAIN_FINISH = """
UPDATE sqlqueue_jobs AS job
SET status = 'SUCCESS', result = '0', finished_at = statement_timestamp(), lease_expires_at = NULL
FROM unnest(%s::text[], %s::integer[]) AS done (id, attempt)
WHERE job.id = done.id AND job.attempts = done.attempt
"""
"""The plain SQL loops' statements: what sqlqueue's own statements do, minus the framework."""

MYSQL_PLAIN_INSERT = """
INSERT INTO sqlqueue_jobs (id, task_name, queue, priority, args, kwargs, status, scheduled_at,
                           created_at)
VALUES (%s, 'bench_tasks.noop', 'default', 0, %s, '{}', 'PENDING', UTC_TIMESTAMP(6),
        UTC_TIMESTAMP(6))
"""
MYSQL_PLAIN_READY = """
SELECT id FROM sqlqueue_jobs FORCE INDEX (ix_sqlqueue_jobs_claim)
WHERE claim_ready = 1 AND scheduled_at <= UTC_TIMESTAMP(6)
  AND (expires_at IS NULL OR expires_at > UTC_TIMESTAMP(6))
ORDER BY priority DESC, scheduled_at, id LIMIT %s FOR UPDATE SKIP LOCKED
"""
MYSQL_PLAIN_TAKE = """
UPDATE sqlqueue_jobs
SET status = 'STARTED', attempts = attempts + 1, started_at = UTC_TIMESTAMP(6),
    lease_expires_at = UTC_TIMESTAMP(6) + INTERVAL 60 SECOND, worker_id = 'plain'
WHERE id IN %s
"""
MYSQL_PLAIN_TAKEN = "SELECT id, attempts FROM sqlqueue_jobs WHERE id IN %s"
MYSQL_PLAIN_FINISH = """
UPDATE sqlqueue_jobs
SET status = 'SUCCESS', result = '0', finished_at = UTC_TIMESTAMP(6), lease_expires_at = NULL
WHERE id IN %s AND (id, attempts) IN %s
"""
"""The plain SQL loops' statements on MySQL and MariaDB: the dialect's claim (a locking read
of the claim index, an update by primary key, a read of the taken rows, one READ COMMITTED
transaction) and one UPDATE finishing the lot; sqlqueue also locks the finished rows first,
in id order, which a single connection does not need."""

PLAIN_LISTENER = f"""
import sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as listener, psycopg.connect(
    sys.argv[1], autocommit=True
) as conn:
    listener.execute("LISTEN sqlqueue")
    for _ in listener.notifies():
        while taken := conn.execute({PLAIN_CLAIM!r}, (1,)).fetchall():
            ids, attempts = zip(*taken)
            conn.execute({PLAIN_FINISH!r}, (list(ids), list(attempts)))
"""
"""The plain SQL idle worker beside the latency figure: one process that listens, and claims
and finishes jobs one at a time on every notification, with sqlqueue's own statements."""


@contextmanager
def fresh_app(url: str) -> Iterator[SQLQueue]:
    """An app on a new, migrated database, removed afterwards."""
    database = fresh_database(url, "bench")
    app = SQLQueue(database)
    try:
        yield app
    finally:
        app.engine.dispose()
        drop_database(url, database)


def url_of(app: SQLQueue) -> str:
    return app.engine.url.render_as_string(hide_password=False)


def noop_task(app: SQLQueue) -> Task[[int], int]:
    """The workers' task (bench_tasks.noop), registered on this app so sends check it."""
    return app.task(name="bench_tasks.noop")(_noop)


def _noop(n: int) -> int:
    return n


def enqueue_single(app: SQLQueue, count: int) -> float:
    """Jobs per second, each delay() in its own transaction."""
    noop = noop_task(app)
    started = time.perf_counter()
    for n in range(count):
        noop.delay(n)
    return count / (time.perf_counter() - started)


def enqueue_in_one_transaction(app: SQLQueue, count: int) -> float:
    """Jobs per second, ``count`` delay() calls inside one caller transaction."""
    noop = noop_task(app)
    started = time.perf_counter()
    with app.engine.begin() as conn, app.using(conn):
        for n in range(count):
            noop.delay(n)
    return count / (time.perf_counter() - started)


def enqueue_bulk(app: SQLQueue, count: int) -> float:
    """Jobs per second, all ``count`` in one delay_many() call (checks included)."""
    noop = noop_task(app)
    started = time.perf_counter()
    noop.delay_many([(n,) for n in range(count)])
    return count / (time.perf_counter() - started)


def start_worker(app: SQLQueue, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sqlqueue", "worker", "-A", "bench_tasks", "-l", "WARNING", *args],
        cwd=HERE,
        env={**os.environ, "SQLQUEUE_DATABASE_URL": url_of(app)},
    )


def drain(
    app: SQLQueue, count: int, processes: int, concurrency: int | None, *options: str
) -> float:
    """Jobs per second for burst workers to run a backlog of ``count`` jobs, from the first
    job's claim to the last one's finish (database clock): the workers' start-up, a second
    of imports that a long-running worker pays once, is left out. ``concurrency`` None
    gives the worker no ``-c``: its default."""
    noop_task(app).delay_many([(n,) for n in range(count)])
    threads = () if concurrency is None else ("-c", str(concurrency))
    workers = [
        start_worker(app, "--burst", *threads, "--poll-interval", "0.05", *options)
        for _ in range(processes)
    ]
    for worker in workers:
        worker.wait()
    return drained_per_second(app, count)


def chord_drain(app: SQLQueue, count: int) -> tuple[float, float]:
    """A chord of ``count`` no-op header jobs and a body, run by one default burst worker:
    seconds from the send to the body's finish (wall clock), and the jobs per second from the
    first header job's claim to the body's finish (database clock, as ``drain``)."""
    header_task, body_task = noop_task(app), app.task(name="bench_tasks.count")(_count)
    started = time.perf_counter()
    body = chord(header_task.s(n) for n in range(count))(body_task.s())
    worker = start_worker(app, "--burst", "--poll-interval", "0.05")
    if body.get(timeout=600) != count:
        raise RuntimeError("the chord's body did not receive every header result")
    seconds = time.perf_counter() - started
    worker.wait()
    return seconds, drained_per_second(app, count + 1)


def limited_drain(app: SQLQueue, count: int) -> float:
    """``drain`` with one default worker, of a task whose concurrency limit it never hits:
    what the limit's bookkeeping costs a claim (docs/limits.md)."""
    limited = app.task(name="bench_tasks.limited_noop", concurrency_limit=LIMITED_SLOTS)(_noop)
    limited.delay_many([(n,) for n in range(count)])
    start_worker(app, "--burst", "--poll-interval", "0.05").wait()
    return drained_per_second(app, count)


def _count(results: list[int]) -> int:
    """The sender's side of bench_tasks.count."""
    raise AssertionError("only the worker runs it")


def plain_inserts(app: SQLQueue, count: int) -> float:
    """What this machine's commits allow a send, with no framework: one psycopg (PyMySQL)
    connection in autocommit, a plain INSERT of the same row per job (PostgreSQL, MySQL)."""
    if app.dialect.name == "mysql":
        with mysql_connection(app) as conn, conn.cursor() as cursor:
            started = time.perf_counter()
            for n in range(count):
                cursor.execute(MYSQL_PLAIN_INSERT, (str(uuid.uuid4()), f"[{n}]"))
            return count / (time.perf_counter() - started)
    with psycopg.connect(url_of(app).replace("+psycopg", ""), autocommit=True) as conn:
        started = time.perf_counter()
        for n in range(count):
            conn.execute(PLAIN_INSERT, (str(uuid.uuid4()), f"[{n}]"))
        return count / (time.perf_counter() - started)


def plain_drain(app: SQLQueue, count: int, claim_size: int) -> float:
    """What this machine allows a drain, with no framework: one psycopg connection claims
    ``claim_size`` jobs with the workers' claim, finishes them with one UPDATE, and again
    until none is left; no tasks, no threads (PostgreSQL; MySQL: its dialect's claim)."""
    noop_task(app).delay_many([(n,) for n in range(count)])
    if app.dialect.name == "mysql":
        with mysql_connection(app) as conn, conn.cursor() as cursor:
            while True:
                conn.begin()
                cursor.execute(MYSQL_PLAIN_READY, (claim_size,))
                ids = [row[0] for row in cursor.fetchall()]
                if not ids:
                    conn.commit()
                    break
                cursor.execute(MYSQL_PLAIN_TAKE, (ids,))
                cursor.execute(MYSQL_PLAIN_TAKEN, (ids,))
                taken = cursor.fetchall()
                conn.commit()
                cursor.execute(MYSQL_PLAIN_FINISH, (ids, taken))
        return drained_per_second(app, count)
    with psycopg.connect(url_of(app).replace("+psycopg", ""), autocommit=True) as conn:
        while taken := conn.execute(PLAIN_CLAIM, (claim_size,)).fetchall():
            ids, attempts = zip(*taken, strict=True)
            conn.execute(PLAIN_FINISH, (list(ids), list(attempts)))
    return drained_per_second(app, count)


@contextmanager
def mysql_connection(app: SQLQueue) -> Iterator[pymysql.connections.Connection[Any]]:
    """A PyMySQL connection to the app's database in autocommit and READ COMMITTED, as
    sqlqueue's own connections there."""
    url = app.engine.url
    conn = pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        database=url.database,
        autocommit=True,
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        yield conn
    finally:
        conn.close()


def drained_per_second(app: SQLQueue, count: int) -> float:
    """``count`` finished jobs over the time from the first claim (``started_at``; a
    prefetched job's task starts a little later) to the last finish."""
    with app.engine.connect() as conn:
        first, last, done = conn.execute(
            sa.select(
                sa.func.min(jobs.c.started_at), sa.func.max(jobs.c.finished_at), sa.func.count()
            ).where(jobs.c.status == "SUCCESS", jobs.c.task_name.like("bench_tasks.%"))
        ).one()
    if done != count:
        raise RuntimeError(f"only {done} of {count} jobs succeeded")
    return count / (last - first).total_seconds()


def latency(app: SQLQueue, samples: int, plain: bool = False) -> tuple[float, float]:
    """Enqueue-to-start latency of an idle worker, p50 and p99 in ms (database clock); with
    ``plain``, of the plain SQL listener instead (PostgreSQL). Either way the figure starts
    at the send's statement, so it counts the send's commit (a WAL flush) too."""
    noop = noop_task(app)
    if plain:
        plain_url = url_of(app).replace("+psycopg", "")
        worker = subprocess.Popen([sys.executable, "-c", PLAIN_LISTENER, plain_url])
    else:
        worker = start_worker(app)  # as a user starts it: no options
    try:
        time.sleep(2)  # let it start and go idle
        ids = []
        for n in range(samples):
            ids.append(noop.delay(n).id)
            app.AsyncResult(ids[-1]).get(timeout=30)
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait()
    with app.engine.connect() as conn:
        rows = conn.execute(
            sa.select(jobs.c.created_at, jobs.c.started_at).where(jobs.c.id.in_(ids))
        ).all()
    waits = sorted((started - created).total_seconds() * 1000 for created, started in rows)
    return statistics.median(waits), waits[min(len(waits) - 1, int(len(waits) * 0.99))]


def idle_statements_per_second(app: SQLQueue, seconds: float) -> float | None:
    """Transactions per second one idle worker costs (PostgreSQL's pg_stat_database)."""
    if app.dialect.name != "postgresql":
        return None
    database = app.engine.url.database

    def commits() -> int:
        with psycopg.connect(url_of(app).replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                (database,),
            ).fetchone()
            return int(row[0]) if row else 0

    worker = start_worker(app, "-c", "4")
    try:
        # An idle backend reports its counts up to 10 s late (PostgreSQL's stats flush), so
        # the worker's start-up would land in the window without this wait.
        time.sleep(IDLE_SETTLE)
        before = commits()
        time.sleep(seconds)
        after = commits() - 1  # the reading connection's own transaction
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait()
    return (after - before) / seconds


def median_claim_ms(app: SQLQueue) -> float:
    """Milliseconds a claim of 10 jobs takes, the median of 20 (10 ready jobs sent before each)."""
    noop = noop_task(app)
    timings = []
    for _ in range(20):
        noop.delay_many([(n,) for n in range(10)])
        started = time.perf_counter()
        app.store.claim_jobs(10, None, "bench", 30)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def claim_cost_with_finished_jobs(app: SQLQueue, finished: int) -> tuple[float, float]:
    """Milliseconds per claim of 10 jobs, on an empty table and with ``finished`` done jobs."""

    empty = median_claim_ms(app)
    with app.engine.begin() as conn:
        if app.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "INSERT INTO sqlqueue_jobs (id, task_name, queue, priority, args, kwargs, status,"
                " scheduled_at, created_at, finished_at) SELECT gen_random_uuid()::text, 'old',"
                " 'default', 0, '[]', '{}', 'SUCCESS', now(), now(), now()"
                f" FROM generate_series(1, {int(finished)})"
            )
        elif app.dialect.name == "mysql":
            # Two copies of a thousand numbers crossed: MySQL 8 stops a recursive CTE at
            # 1,000 rows by default (cte_max_recursion_depth).
            conn.exec_driver_sql(
                "INSERT INTO sqlqueue_jobs (id, task_name, queue, priority, args, kwargs, status,"
                " scheduled_at, created_at, finished_at) WITH RECURSIVE n(i) AS (SELECT 1"
                " UNION ALL SELECT i + 1 FROM n WHERE i < 1000) SELECT UUID(), 'old',"
                " 'default', 0, '[]', '{}', 'SUCCESS', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6),"
                f" UTC_TIMESTAMP(6) FROM n AS a CROSS JOIN n AS b LIMIT {int(finished)}"
            )
        else:
            conn.exec_driver_sql(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
                f" WHERE i < {int(finished)}) INSERT INTO sqlqueue_jobs (id, task_name, queue,"
                " priority, args, kwargs, status, scheduled_at, created_at, finished_at)"
                " SELECT lower(hex(randomblob(16))), 'old', 'default', 0, '[]', '{}',"
                " 'SUCCESS', '2000-01-01 00:00:00.000000', '2000-01-01 00:00:00.000000',"
                " '2000-01-01 00:00:00.000000' FROM n"
            )
    with app.engine.connect() as conn:
        if app.dialect.name == "mysql":
            conn.exec_driver_sql("ANALYZE TABLE sqlqueue_jobs").all()
        else:
            conn.exec_driver_sql("ANALYZE")
        conn.commit()
    return empty, median_claim_ms(app)


def claim_cost_with_dead_rows(app: SQLQueue, churned: int) -> tuple[float, float, float] | None:
    """Milliseconds per claim of 10 jobs: on a fresh table; after ``churned`` jobs ran while
    another transaction held a snapshot open (so vacuum could remove none of their dead
    versions); and after that transaction ended and the table was vacuumed. PostgreSQL only."""
    if app.dialect.name != "postgresql":
        return None
    fresh = median_claim_ms(app)
    noop = noop_task(app)
    with psycopg.connect(url_of(app).replace("+psycopg", "")) as long_transaction:
        long_transaction.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        long_transaction.execute("SELECT count(*) FROM sqlqueue_jobs")  # takes the snapshot
        for _ in range(churned // 1000):
            # What workers do to each job: take it (a new row version), then finish it (another).
            noop.delay_many([(n,) for n in range(1000)])
            while app.store.claim_jobs(100, None, "bench", 30):
                pass
            with app.engine.begin() as conn:
                conn.exec_driver_sql(
                    "UPDATE sqlqueue_jobs SET status = 'SUCCESS', finished_at = now(),"
                    " lease_expires_at = NULL WHERE status = 'STARTED'"
                )
        blocked = median_claim_ms(app)
        long_transaction.rollback()
    with app.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM sqlqueue_jobs")
    return fresh, blocked, median_claim_ms(app)


def machine(app: SQLQueue) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "database": app.dialect.name,
    }
    with app.engine.connect() as conn:
        if app.dialect.name == "postgresql":
            info["server"] = conn.exec_driver_sql("SHOW server_version").scalar()
            for setting in ("fsync", "synchronous_commit", "shared_buffers"):
                info[setting] = conn.exec_driver_sql(f"SHOW {setting}").scalar()
        elif app.dialect.name == "mysql":
            info["server"] = conn.exec_driver_sql("SELECT VERSION()").scalar()
            for setting in (
                "innodb_flush_log_at_trx_commit",
                "sync_binlog",
                "log_bin",
                "innodb_buffer_pool_size",
            ):
                info[setting] = conn.exec_driver_sql(f"SELECT @@{setting}").scalar()
        else:
            info["server"] = "SQLite " + str(
                conn.exec_driver_sql("SELECT sqlite_version()").scalar()
            )
    return info


def measure(name: str, run: Callable[[SQLQueue], Any], url: str) -> Any:
    print(f"  measuring {name} …", file=sys.stderr, flush=True)
    with fresh_app(url) as app:
        return run(app)


def chord_figures(url: str) -> dict[str, float]:
    """The chord and the plain drain it is compared with, alternated, medians of three."""
    chords, plains = [], []
    for _ in range(3):
        chords.append(measure("chord", lambda a: chord_drain(a, CHORD_JOBS), url))
        plains.append(
            measure(
                f"drain of {CHORD_JOBS:,}, default settings",
                lambda a: drain(a, CHORD_JOBS, 1, None),
                url,
            )
        )
    return {
        "chord_send_to_body_s": statistics.median(seconds for seconds, _ in chords),
        "chord_drain_per_s": statistics.median(rate for _, rate in chords),
        "chord_plain_drain_per_s": statistics.median(plains),
    }


def limit_figures(url: str, count: int) -> dict[str, Any]:
    """The limited drain and the plain drain it is compared with, alternated, medians."""
    limited, unlimited = [], []
    for _ in range(LIMIT_TURNS):
        limited.append(measure("limited drain", lambda a: limited_drain(a, count), url))
        unlimited.append(measure("its plain drain", lambda a: drain(a, count, 1, None), url))
    return {
        "limited_drain_per_s": statistics.median(limited),
        "limited_plain_drain_per_s": statistics.median(unlimited),
        "limited_turn_ratios": [
            plain / limit for plain, limit in zip(unlimited, limited, strict=True)
        ],
    }


def median_of(name: str, runs: int, run: Callable[[SQLQueue], float], url: str) -> float:
    """The median of ``runs`` measurements, each on a fresh database: a drain lasts about
    a second, and one second of a 2-core machine is noisy."""
    return statistics.median(measure(f"{name} ({n + 1}/{runs})", run, url) for n in range(runs))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=os.environ.get("SQLQUEUE_TEST_POSTGRES_URL", DEFAULT_URL))
    parser.add_argument("--jobs", type=int, default=4000, help="backlog size for the drains")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DRAIN_CONCURRENCY,
        help="threads per worker process for the drains",
    )
    parser.add_argument(
        "--finished", type=int, default=1_000_000, help="rows for the large-table check"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    with fresh_app(args.url) as app:
        info = machine(app)
    postgresql = info["database"] == "postgresql"
    mysql = info["database"] == "mysql"
    plain_sql = postgresql or mysql
    cores = os.cpu_count() or 1
    results: dict[str, Any] = {"machine": info}
    results["enqueue_single_per_s"] = measure(
        "enqueue, single", lambda a: enqueue_single(a, 2000), args.url
    )
    results["plain_inserts_per_s"] = (
        measure("plain SQL, inserts", lambda a: plain_inserts(a, 2000), args.url)
        if plain_sql
        else None
    )
    results["enqueue_one_transaction_per_s"] = measure(
        "enqueue, one transaction", lambda a: enqueue_in_one_transaction(a, 10_000), args.url
    )
    results["enqueue_bulk_per_s"] = measure(
        "enqueue, bulk", lambda a: enqueue_bulk(a, BULK_JOBS), args.url
    )
    results["drain_default_per_s"] = median_of(
        "drain, default settings", DRAIN_RUNS, lambda a: drain(a, args.jobs, 1, None), args.url
    )
    results["drain_eight_threads_per_s"] = median_of(
        f"drain, -c {EIGHT_THREADS}",
        DRAIN_RUNS,
        lambda a: drain(a, args.jobs, 1, EIGHT_THREADS),
        args.url,
    )
    results["plain_drain_default_per_s"] = (
        median_of(
            f"plain SQL, drain in claims of {DEFAULT_CLAIM}",
            DRAIN_RUNS,
            lambda a: plain_drain(a, args.jobs, DEFAULT_CLAIM),
            args.url,
        )
        if plain_sql
        else None
    )
    results["drain_1_process_per_s"] = median_of(
        "drain, 1 process", DRAIN_RUNS, lambda a: drain(a, args.jobs, 1, args.concurrency), args.url
    )
    results["plain_drain_per_s"] = (
        median_of(
            f"plain SQL, drain in claims of {args.concurrency}",
            DRAIN_RUNS,
            lambda a: plain_drain(a, args.jobs, args.concurrency),
            args.url,
        )
        if plain_sql
        else None
    )
    results["plain_drain_fewer_per_s"] = (
        median_of(
            f"plain SQL, drain in claims of {FEWER_THREADS}",
            DRAIN_RUNS,
            lambda a: plain_drain(a, args.jobs, FEWER_THREADS),
            args.url,
        )
        if plain_sql
        else None
    )
    results["drain_fewer_threads_per_s"] = median_of(
        f"drain, 1 process x {FEWER_THREADS} threads",
        DRAIN_RUNS,
        lambda a: drain(a, args.jobs, 1, FEWER_THREADS),
        args.url,
    )
    results["drain_n_processes_per_s"] = median_of(
        f"drain, {args.processes} processes",
        DRAIN_RUNS,
        lambda a: drain(a, args.jobs, args.processes, args.concurrency),
        args.url,
    )
    results["drain_process_pool_per_s"] = median_of(
        "drain, process pool",
        DRAIN_RUNS,
        lambda a: drain(a, args.jobs, 1, cores, "--pool", "process"),
        args.url,
    )
    results.update(chord_figures(args.url))
    results.update(limit_figures(args.url, args.jobs))
    p50, p99 = measure("latency", lambda a: latency(a, 200), args.url)
    results["latency_p50_ms"], results["latency_p99_ms"] = p50, p99
    results["plain_latency_ms"] = (
        measure("plain SQL, latency", lambda a: latency(a, 200, plain=True), args.url)
        if postgresql
        else None
    )
    results["idle_statements_per_s"] = measure(
        "idle cost", lambda a: idle_statements_per_second(a, IDLE_WINDOW), args.url
    )
    empty, full = measure(
        "large table", lambda a: claim_cost_with_finished_jobs(a, args.finished), args.url
    )
    results["claim_ms_empty"], results["claim_ms_with_finished"] = empty, full
    dead = measure("dead rows", lambda a: claim_cost_with_dead_rows(a, CHURNED), args.url)
    results["claim_ms_dead_rows"] = dead

    idle = results["idle_statements_per_s"]
    rows = [
        (
            "enqueue, each delay() in its own transaction",
            f"{results['enqueue_single_per_s']:,.0f} jobs/s",
            jobs_per_s(results["plain_inserts_per_s"]),
            target(postgresql, results["enqueue_single_per_s"] >= 2_500, ">= 2,500"),
        ),
        (
            "enqueue, 10,000 delay() in one transaction",
            f"{results['enqueue_one_transaction_per_s']:,.0f} jobs/s",
            "",
            "",
        ),
        (
            f"enqueue, bulk: one delay_many() of {BULK_JOBS:,}",
            f"{results['enqueue_bulk_per_s']:,.0f} jobs/s",
            "",
            target(postgresql, results["enqueue_bulk_per_s"] >= 60_000, ">= 60,000"),
        ),
        (
            f"drain {args.jobs:,} jobs, 1 process, default settings (no -c)",
            f"{results['drain_default_per_s']:,.0f} jobs/s",
            jobs_per_s(results["plain_drain_default_per_s"]),
            target(
                not mysql,
                results["drain_default_per_s"] >= (10_000 if postgresql else 3_000),
                ">= 10,000 (issue 11)" if postgresql else ">= 3,000 (issue 11)",
            ),
        ),
        (
            f"drain {args.jobs:,} jobs, 1 process x {EIGHT_THREADS} threads",
            f"{results['drain_eight_threads_per_s']:,.0f} jobs/s",
            jobs_per_s(results["plain_drain_default_per_s"]),
            target(
                postgresql,
                results["drain_eight_threads_per_s"] >= 10_000,
                ">= 10,000 (issue 11)",
            ),
        ),
        (
            f"drain {args.jobs:,} jobs, 1 process x {args.concurrency} threads",
            f"{results['drain_1_process_per_s']:,.0f} jobs/s",
            jobs_per_s(results["plain_drain_per_s"]),
            target(
                not mysql,
                results["drain_1_process_per_s"] >= (10_000 if postgresql else 2_000),
                ">= 10,000" if postgresql else ">= 2,000",
            ),
        ),
        (
            f"drain {args.jobs:,} jobs, 1 process x {FEWER_THREADS} threads",
            f"{results['drain_fewer_threads_per_s']:,.0f} jobs/s",
            jobs_per_s(results["plain_drain_fewer_per_s"]),
            "",
        ),
        (
            f"drain {args.jobs:,} jobs, {args.processes} processes x {args.concurrency} threads",
            f"{results['drain_n_processes_per_s']:,.0f} jobs/s",
            "",
            "",
        ),
        (
            f"drain {args.jobs:,} jobs, 1 process, --pool process x {cores} children",
            f"{results['drain_process_pool_per_s']:,.0f} jobs/s",
            "",
            target(
                True,
                results["drain_process_pool_per_s"] >= 0.5 * results["drain_default_per_s"],
                f">= 50% of the default drain (issue 11): "
                f"{results['drain_process_pool_per_s'] / results['drain_default_per_s']:.0%}",
            ),
        ),
        chord_row(results),
        limited_row(results, args.jobs),
        (
            "enqueue -> start latency, idle worker, p50 / p99",
            f"{p50:.1f} / {p99:.1f} ms",
            ""
            if results["plain_latency_ms"] is None
            else "{:.1f} / {:.1f} ms (a listener)".format(*results["plain_latency_ms"]),
            target(postgresql, p50 <= 2.5 and p99 <= 5, "<= 2.5 / <= 5 (issue 11)"),
        ),
        (
            "idle worker, statements (transactions) per second",
            f"n/a ({IDLE_NOT_COUNTED[info['database']]})" if idle is None else f"{idle:.2f}",
            "",
            target(postgresql, idle is not None and idle <= 0.5, "<= 0.5"),
        ),
        (
            f"claim 10 jobs: empty table / {args.finished:,} finished",
            f"{empty:.2f} / {full:.2f} ms ({full / empty:.2f}x)",
            "",
            target(True, full <= 1.2 * empty, "<= 1.2x"),
        ),
        (
            f"claim 10 jobs: fresh / after {CHURNED:,} jobs ran under an open snapshot / vacuumed",
            "n/a (PostgreSQL only)"
            if dead is None
            else " / ".join(f"{ms:.2f}" for ms in dead) + " ms",
            "",
            "",
        ),
    ]
    print(f"\nsqlqueue benchmark — {info}")
    headings = ("figure", "measured", "plain SQL, same machine", "target (issue 5 unless named)")
    widths = [max(len(row[n]) for row in [headings, *rows]) for n in range(3)]
    for row in [headings, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        print("  ".join([*cells, row[3]]))
    print(
        f"(drains: the median of {DRAIN_RUNS} runs of `sqlqueue worker --burst -c "
        f"{args.concurrency}` (or the -c the row names, or none: the default, "
        f"{DEFAULT_CONCURRENCY} threads and prefetch), timed from the first job's claim to "
        f"the last one's finish; the plain SQL beside the default and -c {EIGHT_THREADS} rows "
        f"claims {DEFAULT_CLAIM} jobs a statement, what those workers claim; results are stored)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


def chord_row(results: dict[str, Any]) -> tuple[str, str, str, str]:
    name = (
        f"chord of {CHORD_JOBS:,} no-op header jobs, 1 default worker: send -> body "
        "finished; jobs/s (against a plain drain of as many)"
    )
    rate, plain = results["chord_drain_per_s"], results["chord_plain_drain_per_s"]
    return (
        name,
        f"{results['chord_send_to_body_s']:.2f} s; {rate:,.0f} jobs/s",
        jobs_per_s(plain),
        target(
            True,
            rate >= plain / 1.25,
            f"bookkeeping <= 25% over the plain drain (issue 13): {plain / rate - 1:+.0%}",
        ),
    )


def limited_row(results: dict[str, Any], count: int) -> tuple[str, str, str, str]:
    name = (
        f"drain {count:,} jobs of a task with concurrency_limit={LIMITED_SLOTS} (never "
        "hit), 1 default worker (against a plain drain, alternated)"
    )
    rate, plain = results["limited_drain_per_s"], results["limited_plain_drain_per_s"]
    return (
        name,
        f"{rate:,.0f} jobs/s",
        jobs_per_s(plain),
        target(
            True,
            rate >= plain / 1.15,
            f"<= 15% slower than without the limit (issue 14): {plain / rate - 1:+.0%}",
        ),
    )


def jobs_per_s(figure: float | None) -> str:
    return "" if figure is None else f"{figure:,.0f} jobs/s"


def target(applies: bool, met: bool, goal: str) -> str:
    """The target column: the goal, and whether this run met it."""
    if not applies:
        return ""
    return f"{goal}: {'met' if met else 'NOT met'}"


if __name__ == "__main__":
    sys.exit(main())
