"""Enqueue -> start latency to an idle consumer: sqlqueue, a plain SQL listener and PgQueuer.

sqlqueue runs twice: ``sqlqueue worker`` as a user starts it (no options: 8 threads), and with
one thread (``-c 1``), as bench.py's latency runs it.

    python -m venv .venv-peer && .venv-peer/bin/pip install pgqueuer asyncpg    # once; not a dependency
    .venv/bin/python benchmarks/peer_latency.py --peer-python .venv-peer/bin/python

The three run in turns on the same PostgreSQL server, each on a fresh database, and every
figure is taken the same way, by the wall clock that all processes of the machine share: the
sender reads it just before its send call (the send's commit included), the consumer as its
task starts (the plain listener: as its claim returns). Between two sends, the sender waits
until the task has started, then 50 ms, so the consumer is idle at every send. Each turn prints
p50 / p99 in ms; the last lines are the medians over the turns. Without --peer-python only
sqlqueue and the plain listener run.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))
from scratch_databases import drop_database, fresh_database  # noqa: E402 - shared with bench.py

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

GAP = 0.05
"""Seconds between a task's start and the next send."""

PLAIN_LISTENER = """
import sys, time, psycopg
claim = "SELECT id, attempts FROM sqlqueue_claim(1, 60, 'plain', NULL)"
finish = (
    "UPDATE sqlqueue_jobs SET status = 'SUCCESS', finished_at = statement_timestamp(),"
    " lease_expires_at = NULL WHERE id = %s AND attempts = %s"
)
with psycopg.connect(sys.argv[1], autocommit=True) as listener, psycopg.connect(
    sys.argv[1], autocommit=True
) as conn:
    listener.execute("LISTEN sqlqueue")
    print("ready", flush=True)
    for _ in listener.notifies():
        while taken := conn.execute(claim).fetchall():
            print(time.time(), flush=True)
            conn.execute(finish, taken[0])
"""
"""One psycopg process that listens, and on every notification claims with sqlqueue's own
claim and finishes the job: what the database allows an idle sqlqueue worker."""

PGQUEUER_CONSUMER = """
import asyncio, sys, time, asyncpg
from pgqueuer import AsyncpgDriver, QueueManager, Queries

async def main():
    conn = await asyncpg.connect(sys.argv[1])
    queries = Queries(AsyncpgDriver(conn))
    await queries.install()
    manager = QueueManager(queries)

    @manager.entrypoint("noop")
    async def noop(job):
        print(time.time(), flush=True)

    print("ready", flush=True)
    await manager.run()  # its defaults

asyncio.run(main())
"""
"""An idle PgQueuer consumer with its default settings and its first driver, asyncpg (with
psycopg, PgQueuer's listener holds the one connection for up to a second at a time, and a
task starts a second late), printing when each task starts."""

PGQUEUER_SENDER = """
import asyncio, sys, time, asyncpg
from pgqueuer import AsyncpgDriver, Queries

async def main():
    conn = await asyncpg.connect(sys.argv[1])
    queries = Queries(AsyncpgDriver(conn))
    print("ready", flush=True)
    for _ in sys.stdin:
        sent = time.time()
        await queries.enqueue("noop", b"0")
        print(sent, flush=True)

asyncio.run(main())
"""
"""PgQueuer's send, one per line read: prints the wall clock read just before each."""


def line_of(process: subprocess.Popen[str]) -> str:
    """The next line a helper process printed; its exit is an error."""
    line = process.stdout.readline() if process.stdout else ""
    if not line:
        raise RuntimeError("a benchmark process exited early; its error is above")
    return line.strip()


def send(sender: subprocess.Popen[str]) -> None:
    """Ask the PgQueuer sender for one send."""
    if sender.stdin is None:
        raise RuntimeError("the sender has no stdin")
    sender.stdin.write("\n")
    sender.stdin.flush()


@contextmanager
def started(*command: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """A helper process with piped stdin/stdout, stopped with SIGTERM (then killed) after."""
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=HERE, env=env
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def percentiles(waits: list[float]) -> tuple[float, float]:
    """p50 and p99 of latencies in seconds, in ms (p99 as bench.py takes it)."""
    ms = sorted(wait * 1000 for wait in waits)
    return statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))]


def sqlqueue_latency(url: str, samples: int, plain: bool, *options: str) -> list[float]:
    """Sends with ``delay()`` to an idle ``sqlqueue worker`` given ``options`` (or to the plain
    listener), which prints the clock as each task starts."""
    from sqlqueue import SQLQueue

    app = SQLQueue(url)
    clock = app.task(name="bench_tasks.print_clock")(_print_clock)
    if plain:
        consumer = started(sys.executable, "-c", PLAIN_LISTENER, url.replace("+psycopg", ""))
    else:
        consumer = started(
            sys.executable,
            *("-m", "sqlqueue", "worker", "-A", "bench_tasks", *options, "-l", "WARNING"),
            env={**os.environ, "SQLQUEUE_DATABASE_URL": url},
        )
    waits = []
    try:
        with consumer as process:
            if plain:
                line_of(process)
            else:
                time.sleep(2)  # the worker's imports; it prints nothing until a task runs
            time.sleep(1)  # idle
            for _ in range(samples):
                sent = time.time()
                clock.delay()
                waits.append(float(line_of(process)) - sent)
                time.sleep(GAP)
    finally:
        app.engine.dispose()
    return waits


def _print_clock() -> None:
    """The sender's side of bench_tasks.print_clock, for its checks."""


def pgqueuer_latency(url: str, samples: int, python: str) -> list[float]:
    """Sends with PgQueuer's ``Queries.enqueue`` to an idle PgQueuer consumer."""
    plain_url = url.replace("+psycopg", "")
    waits = []
    with started(python, "-c", PGQUEUER_CONSUMER, plain_url) as consumer:
        line_of(consumer)
        with started(python, "-c", PGQUEUER_SENDER, plain_url) as sender:
            line_of(sender)
            time.sleep(1)  # idle
            for _ in range(samples):
                send(sender)
                sent = float(line_of(sender))
                waits.append(float(line_of(consumer)) - sent)
                time.sleep(GAP)
    return waits


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=os.environ.get("SQLQUEUE_TEST_POSTGRES_URL", DEFAULT_URL))
    parser.add_argument("--samples", type=int, default=200, help="sends per turn")
    parser.add_argument("--turns", type=int, default=5, help="turns of each consumer")
    parser.add_argument("--peer-python", help="a Python with pgqueuer installed")
    args = parser.parse_args()

    consumers: dict[str, Callable[[str], list[float]]] = {
        "sqlqueue worker": lambda url: sqlqueue_latency(url, args.samples, False),
        "sqlqueue worker -c 1": lambda url: sqlqueue_latency(url, args.samples, False, "-c", "1"),
        "plain SQL listener": lambda url: sqlqueue_latency(url, args.samples, True),
    }
    if args.peer_python:
        python = os.path.abspath(args.peer_python)  # the helpers run in benchmarks/
        consumers["PgQueuer"] = lambda url: pgqueuer_latency(url, args.samples, python)
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in consumers}
    for turn in range(args.turns):
        for name, measure in consumers.items():
            database = fresh_database(args.url, "latency")
            try:
                p50, p99 = percentiles(measure(database))
            finally:
                drop_database(args.url, database)
            figures[name].append((p50, p99))
            print(f"turn {turn + 1}: {name}: {p50:.2f} / {p99:.2f} ms", flush=True)
    print(f"\nenqueue -> start latency, p50 / p99, medians of {args.turns} turns:")
    for name, runs in figures.items():
        p50 = statistics.median(run[0] for run in runs)
        p99 = statistics.median(run[1] for run in runs)
        print(f"  {name:20s} {p50:.2f} / {p99:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
