"""Storage under load (issue 16, docs/storage.md): the drain beside ten million finished jobs,
the drain while another transaction holds a snapshot open, and sends during a prune.

    python benchmarks/storage.py                                  # local PostgreSQL
    python benchmarks/storage.py --url sqlite:////tmp/storage.db  # SQLite
    python benchmarks/storage.py --finished 1000000 --pruned 100000   # a quicker run

Each figure runs on fresh databases (as ``bench.py``), with one default burst worker
(``sqlqueue worker --burst``, no ``-c``) and the no-op task. It prints a table and, with
``--json``, writes the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from bench import DEFAULT_URL, HERE, drain, fresh_app, machine, noop_task, url_of

from sqlqueue import SQLQueue
from sqlqueue.schema import jobs

FILL_BATCH = 1_000_000
"""Finished rows written per statement while filling a table: a transaction that size takes
seconds, not minutes, and leaves autovacuum something to do between two."""

TURNS = 3
"""Drains per figure, alternated with those of the figure it is compared with."""

SEND_GAP = 0.005
"""Seconds between two sends during a prune: a steady trickle, each send timed alone."""


def fill_with_finished_jobs(app: SQLQueue, count: int, days_ago: float) -> None:
    """Add ``count`` finished jobs that finished ``days_ago`` days ago, as workers leave them
    (a result, a start and a finish), then let vacuum and ANALYZE see them, as autovacuum
    would in a database that grew to that size over time."""
    backend = app.dialect.name
    written = 0
    while written < count:
        size = min(FILL_BATCH, count - written)
        with app.engine.begin() as conn:
            if backend == "postgresql":
                conn.exec_driver_sql(
                    "INSERT INTO sqlqueue_jobs (id, task_name, queue, priority, args, kwargs,"
                    " status, attempts, scheduled_at, created_at, started_at, finished_at,"
                    " result) SELECT gen_random_uuid()::text, 'old', 'default', 0,"
                    " jsonb_build_array(n), '{}', 'SUCCESS', 1, t, t, t, t, to_jsonb(n)"
                    f" FROM generate_series(1, {size}) AS n,"
                    f" LATERAL (SELECT now() - interval '{days_ago} days'"
                    " + n * interval '1 millisecond' AS t) AS at"
                )
            else:
                conn.exec_driver_sql(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
                    f" WHERE i < {size}) INSERT INTO sqlqueue_jobs (id, task_name, queue,"
                    " priority, args, kwargs, status, attempts, scheduled_at, created_at,"
                    " started_at, finished_at, result) SELECT lower(hex(randomblob(16))),"
                    " 'old', 'default', 0, json_array(i), '{}', 'SUCCESS', 1,"
                    f" strftime('%Y-%m-%d %H:%M:%f000', 'now', '-{days_ago} days'),"
                    f" strftime('%Y-%m-%d %H:%M:%f000', 'now', '-{days_ago} days'),"
                    f" strftime('%Y-%m-%d %H:%M:%f000', 'now', '-{days_ago} days'),"
                    f" strftime('%Y-%m-%d %H:%M:%f000', 'now', '-{days_ago} days'), i FROM n"
                )
        written += size
        print(f"  filled {written:,} of {count:,}", file=sys.stderr)
    with app.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("VACUUM ANALYZE" if backend == "postgresql" else "ANALYZE")


def drain_beside_finished(url: str, jobs: int, finished: int) -> tuple[float, float]:
    """Jobs per second of a default worker draining ``jobs``: on an empty database, and on
    one holding ``finished`` finished jobs; turns alternate between the two databases, so
    that the machine's drifts fall on both, and each figure is the median of its turns."""
    empty: list[float] = []
    full: list[float] = []
    with fresh_app(url) as empty_app, fresh_app(url) as full_app:
        # Finished within the last hours: kept (result_expires is a day), as in a busy
        # database, so that the workers' own prune has nothing to do during the drains.
        fill_with_finished_jobs(full_app, finished, days_ago=0.125)
        for _ in range(TURNS):
            for app, figures in ((empty_app, empty), (full_app, full)):
                figures.append(drain(app, jobs, 1, None))
                forget_drained(app)
    return statistics.median(empty), statistics.median(full)


def drain_under_snapshot(url: str, jobs: int) -> tuple[float, float] | None:
    """Jobs per second of a default worker draining ``jobs``, in turns: with nothing else
    running, and while another connection holds a REPEATABLE READ snapshot taken before the
    sends, so that vacuum may remove none of the row versions the drain leaves (PostgreSQL).
    Medians of the turns, each on a fresh database."""
    if not url.startswith("postgresql"):
        return None
    fresh: list[float] = []
    held: list[float] = []
    for _ in range(TURNS):
        with fresh_app(url) as app:
            fresh.append(drain(app, jobs, 1, None))
        with fresh_app(url) as app:
            with psycopg.connect(url_of(app).replace("+psycopg", "")) as long_transaction:
                long_transaction.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                long_transaction.execute("SELECT count(*) FROM sqlqueue_jobs")  # the snapshot
                held.append(drain(app, jobs, 1, None))
                long_transaction.rollback()
    return statistics.median(fresh), statistics.median(held)


def forget_drained(app: SQLQueue) -> None:
    """Delete a drain's jobs, so that the next turn counts only its own."""
    with app.engine.begin() as conn:
        conn.execute(jobs.delete().where(jobs.c.task_name.like("bench_tasks.%")))


def sends_during_prune(url: str, pruned: int) -> dict[str, float]:
    """``sqlqueue prune --older-than 7d`` of ``pruned`` jobs finished 30 days ago, while a
    thread sends one job at a time: the prune's seconds and the sends' latencies (ms)."""
    with fresh_app(url) as app:
        fill_with_finished_jobs(app, pruned, days_ago=30)
        noop = noop_task(app)
        latencies: list[float] = []
        stop = threading.Event()

        def send() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                noop.delay(0)
                latencies.append(time.perf_counter() - started)
                time.sleep(SEND_GAP)

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(1)  # sends before the prune, to see it change them
        before = len(latencies)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "sqlqueue", "prune", "--url", url_of(app), "--older-than", "7d"],
            cwd=HERE,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - started
        stop.set()
        sender.join()
        during = sorted(latencies[before:])
        with app.engine.connect() as conn:
            left = conn.exec_driver_sql(
                "SELECT count(*) FROM sqlqueue_jobs WHERE status = 'SUCCESS'"
            ).scalar_one()
    if left != 0:
        raise RuntimeError(f"the prune left {left} finished jobs")
    return {
        "prune_s": seconds,
        "sends": len(during),
        "p50_ms": statistics.median(during) * 1000,
        "p99_ms": during[int(len(during) * 0.99)] * 1000,
        "max_ms": during[-1] * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--jobs", type=int, default=20_000, help="backlog of each drain")
    parser.add_argument("--finished", type=int, default=10_000_000, help="finished jobs beside")
    parser.add_argument("--pruned", type=int, default=1_000_000, help="finished jobs pruned")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    with fresh_app(args.url) as app:
        print(json.dumps(machine(app)))
    figures: dict[str, Any] = {}
    empty, full = drain_beside_finished(args.url, args.jobs, args.finished)
    figures["drain"] = {"empty": empty, "finished": full, "ratio": full / empty}
    snapshot = drain_under_snapshot(args.url, args.jobs)
    if snapshot is not None:
        fresh, held = snapshot
        figures["snapshot"] = {"fresh": fresh, "held": held, "ratio": held / fresh}
    figures["prune"] = sends_during_prune(args.url, args.pruned)

    drain_row = figures["drain"]
    print(f"\n| figure | {args.url.split(':')[0]} |\n| --- | --- |")
    print(f"| drain of {args.jobs:,}, empty database | {drain_row['empty']:,.0f} jobs/s |")
    print(
        f"| drain of {args.jobs:,}, beside {args.finished:,} finished | "
        f"{drain_row['finished']:,.0f} jobs/s ({drain_row['ratio']:.2f} of empty; target ≥ 0.80) |"
    )
    if "snapshot" in figures:
        row = figures["snapshot"]
        print(f"| drain of {args.jobs:,}, fresh | {row['fresh']:,.0f} jobs/s |")
        print(
            f"| drain of {args.jobs:,}, a REPEATABLE READ snapshot held | "
            f"{row['held']:,.0f} jobs/s ({row['ratio']:.2f} of fresh) |"
        )
    row = figures["prune"]
    print(
        f"| `sqlqueue prune` of {args.pruned:,} | {row['prune_s']:.1f} s; {row['sends']:,} sends"
        f" during it: p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms,"
        f" max {row['max_ms']:.1f} ms (target < 500 ms) |"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
