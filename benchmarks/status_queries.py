"""How long the queries of ``sqlqueue status``, ``workers``, ``inspect``, ``purge`` and the
dashboard take on a big table: 5 million finished jobs and 10,000 live ones by default.

    python benchmarks/status_queries.py                                   # local PostgreSQL
    python benchmarks/status_queries.py --url sqlite:////tmp/status.db
    python benchmarks/status_queries.py --finished 1000000 --live 10000

The jobs are written by SQL on a fresh database (five queues; the finished ones over the
last two days, 90% succeeded, 8% failed, 2% revoked; the live ones ready, deferred, retrying
and running), then ``ANALYZE``. Each query runs once to warm the cache, then 7 times; the
table shows the median and the slowest, in ms, against the target of 200 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from sqlqueue import SQLQueue
from sqlqueue.dashboard.listing import JobFilter, read_page
from sqlqueue.dashboard.throughput import read_throughput
from sqlqueue.purge import ready_in_queue
from sqlqueue.status import (
    history_statement,
    queues_with_history,
    read_job,
    read_status,
    read_workers,
    running_statement,
    waiting_statement,
    workers_statement,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from scratch_databases import drop_database, fresh_database

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET_MS = 200.0
RUNS = 7
QUEUES = 5
WORKERS = 20

POSTGRESQL_FILL = """
INSERT INTO sqlqueue_jobs (id, task_name, queue, priority, args, kwargs, status, attempts,
                           scheduled_at, created_at, started_at, finished_at, lease_expires_at,
                           worker_id)
SELECT 'job-' || n, 'bench.task' || (n % 7), 'queue' || (n % {queues}), 0, '[]', '{{}}',
       {status}, 1, {scheduled}, now() - interval '2 days', {started}, {finished}, {lease},
       {worker}
FROM generate_series({first}, {last}) AS n
"""

SQLITE_FILL = """
WITH RECURSIVE numbers(n) AS (SELECT {first} UNION ALL SELECT n + 1 FROM numbers WHERE n < {last})
INSERT INTO sqlqueue_jobs (id, task_name, queue, priority, args, kwargs, status, attempts,
                           scheduled_at, created_at, started_at, finished_at, lease_expires_at,
                           worker_id)
SELECT 'job-' || n, 'bench.task' || (n % 7), 'queue' || (n % {queues}), 0, '[]', '{{}}',
       {status}, 1, {scheduled}, {two_days_ago}, {started}, {finished}, {lease}, {worker}
FROM numbers
"""


def sqlite_time(seconds: str) -> str:
    """SQL for now plus a number of seconds, as sqlqueue stores times in SQLite."""
    return f"strftime('%Y-%m-%d %H:%M:%f000', 'now', ({seconds}) || ' seconds')"


def fill(app: SQLQueue, finished: int, live: int) -> None:
    """Write the finished and the live jobs, and the workers' rows, then ANALYZE."""
    postgresql = app.engine.dialect.name == "postgresql"

    def at(seconds: str) -> str:
        return f"now() + ({seconds}) * interval '1 second'" if postgresql else sqlite_time(seconds)

    finished_status = (
        "CASE WHEN n % 50 = 0 THEN 'REVOKED' WHEN n % 12 = 0 THEN 'FAILURE' ELSE 'SUCCESS' END"
    )
    parts: list[dict[str, Any]] = [
        # Finished over the last two days.
        dict(
            first=1,
            last=finished,
            status=finished_status,
            scheduled=at("-172800"),
            started=at("-(n % 172800) - 1"),
            finished=at("-(n % 172800)"),
            lease="NULL",
            worker="NULL",
        ),
    ]
    ready, deferred, retrying = live * 6 // 10, live * 15 // 100, live // 10
    running = live - ready - deferred - retrying
    base = finished
    for count, status, scheduled, lease in (
        (ready, "'PENDING'", at("-(n % 600)"), "NULL"),
        (deferred, "'PENDING'", at("3600 + n % 600"), "NULL"),
        (retrying, "'RETRY'", at("60 + n % 600"), "NULL"),
        (running, "'STARTED'", at("-60"), at("60")),
    ):
        parts.append(
            dict(
                first=base + 1,
                last=base + count,
                status=status,
                scheduled=scheduled,
                started="NULL" if lease == "NULL" else at("-30"),
                finished="NULL",
                lease=lease,
                worker="NULL" if lease == "NULL" else "'host:' || (n % 20)",
            )
        )
        base += count
    template = POSTGRESQL_FILL if postgresql else SQLITE_FILL
    with app.engine.begin() as conn:
        for part in parts:
            sql = template.format(queues=QUEUES, two_days_ago=at("-172800"), **part)
            # (psycopg reads % as a placeholder's start)
            conn.exec_driver_sql(sql.replace("%", "%%") if postgresql else sql)
        for n in range(WORKERS):
            conn.execute(
                sa.text(
                    "INSERT INTO sqlqueue_workers (id, host, pid, queues, concurrency, pool,"
                    " version, started_at, last_seen_at, jobs_running)"
                    " VALUES (:id, 'host', :pid, NULL, 8, 'thread', '0.1.0', :at, :at, 3)"
                ),
                {"id": f"host:{n}", "pid": n, "at": datetime.now(UTC)},
            )
    with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE sqlqueue_jobs" if postgresql else "ANALYZE")


def measure(call: Callable[[], Any]) -> tuple[float, float]:
    """Median and slowest of ``RUNS`` calls after a warm-up, in ms."""
    call()
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def queries(app: SQLQueue) -> dict[str, Callable[[], Any]]:
    store, dialect = app.store, app.store.dialect
    return {
        "waiting jobs per queue (ready, scheduled, retrying, oldest)": lambda: store.read(
            [waiting_statement(dialect.now())]
        ),
        "running jobs per queue": lambda: store.read([running_statement()]),
        "queues with finished jobs (skip scan)": lambda: store.read([queues_with_history()]),
        "one queue's failed 1h / 1d, succeeded 1d (capped)": lambda: store.read(
            [history_statement(dialect, "queue1")]
        ),
        "workers": lambda: store.read([workers_statement(dialect.now())]),
        "`sqlqueue status`: all of the above, every queue": lambda: read_status(store),
        "`sqlqueue workers`": lambda: read_workers(store),
        "`sqlqueue inspect`: one job by id": lambda: read_job(store, "job-12345"),
        "`sqlqueue purge`: a queue's ready jobs counted": lambda: ready_in_queue(store, "queue1"),
        "dashboard: finished per minute, last hour (capped)": lambda: read_throughput(store),
        "dashboard: overview (status + chart)": lambda: (
            read_status(store),
            read_throughput(store),
        ),
        "dashboard: failed jobs, first page, every queue": lambda: read_page(
            store, JobFilter(status="FAILURE"), None
        ),
        "dashboard: failed jobs of a queue, 20th page": lambda: page_after(
            store, JobFilter(status="FAILURE", queue="queue1"), 19
        ),
        "dashboard: ready jobs, first page": lambda: read_page(
            store, JobFilter(status="PENDING"), None
        ),
        "dashboard: any job, by id, 20th page": lambda: page_after(store, JobFilter(), 19),
        "dashboard: failed jobs of one task (1 in 7), first page": lambda: read_page(
            store, JobFilter(status="FAILURE", task="bench.task3"), None
        ),
        "dashboard: failed jobs of a task with none": lambda: read_page(
            store, JobFilter(status="FAILURE", queue="queue1", task="bench.none"), None
        ),
    }


def page_after(store: Any, chosen: JobFilter, pages: int) -> Any:
    """The page after ``pages`` pages: the cursor found once, then that page read (what a
    click on Next costs)."""
    cursors = PAGE_CURSORS.setdefault((chosen, pages), [])
    if not cursors:
        cursor = None
        for _ in range(pages):
            cursor = read_page(store, chosen, cursor).next_cursor
        cursors.append(cursor)
    return read_page(store, chosen, cursors[0])


PAGE_CURSORS: dict[tuple[JobFilter, int], list[str | None]] = {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--finished", type=int, default=5_000_000)
    parser.add_argument("--live", type=int, default=10_000)
    options = parser.parse_args()
    database = fresh_database(options.url, "status")
    app = SQLQueue(database)
    try:
        started = time.perf_counter()
        fill(app, options.finished, options.live)
        print(
            f"{app.engine.dialect.name}: {options.finished:,} finished + {options.live:,} live "
            f"jobs written in {time.perf_counter() - started:.0f}s"
        )
        print(f"| query | median ms | slowest ms | under {TARGET_MS:g} ms |")
        print("| --- | --- | --- | --- |")
        for name, call in queries(app).items():
            median, slowest = measure(call)
            print(
                f"| {name} | {median:.1f} | {slowest:.1f} | {'yes' if slowest < TARGET_MS else 'NO'} |"
            )
    finally:
        app.engine.dispose()
        drop_database(options.url, database)


if __name__ == "__main__":
    main()
