"""Chaos run: workers drain a queue while some are killed with SIGKILL and their database
connections are cut; then every job is audited.

    python scripts/chaos.py --workers 8 --jobs 10000 --kills 10 --cuts 3
    python scripts/chaos.py --restart-db      # also restarts the local PostgreSQL cluster once
    python scripts/chaos.py --url sqlite:////tmp/chaos.db --workers 2 --jobs 2000
    python scripts/chaos.py --url mysql+pymysql://root@127.0.0.1:3306/mysql   # MariaDB, MySQL

It prints the jobs lost (must be 0), the jobs that ran more than once and why, and the time
the queue took to drain. Exit status 1 when a job was lost or ran twice without a reason.
PostgreSQL and MySQL/MariaDB runs get a fresh database on the server of --url and cut
connections through a proxy; SQLite runs get a fresh file and no cuts.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from sqlqueue import SQLQueue
from sqlqueue.schema import jobs

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from proxy import CuttableProxy  # noqa: E402 - a test helper, shared with the outage tests
from scratch_databases import drop_database, fresh_database  # noqa: E402 - beside this file

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

LEASE_LOST = ("lost its lease", "could not record")
"""What a worker logs about a job whose lease ran out before it could renew it or write its
outcome (``sqlqueue.worker``, ``sqlqueue.recorder``)."""

DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
"""The servers whose connections the run cuts, through a proxy."""


@dataclass
class Report:
    jobs: int
    workers: int
    drain_seconds: float
    kills: int
    cuts: int
    restarts: int
    lost: list[str] = field(default_factory=list)
    """Jobs not SUCCESS, or SUCCESS without any run in the log."""
    reruns: dict[str, str] = field(default_factory=dict)
    """Job id -> why it ran more than once."""
    unexplained: list[str] = field(default_factory=list)
    """Jobs that ran more than once with neither a kill, a cut nor a lost lease to explain it."""
    said: list[str] = field(default_factory=list)
    """What the workers that ran those jobs first logged about them (their warnings)."""

    def print(self) -> None:
        rows = [
            ("jobs", self.jobs),
            ("worker processes", self.workers),
            ("workers killed (SIGKILL)", self.kills),
            ("connection cuts", self.cuts),
            ("database restarts", self.restarts),
            ("time to drain", f"{self.drain_seconds:.1f} s"),
            ("jobs lost", len(self.lost)),
            ("jobs run more than once", len(self.reruns)),
            ("  of which unexplained", len(self.unexplained)),
        ]
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            print(f"{name:<{width}}  {value}")
        reasons = Counter(self.reruns.values())
        for reason, count in reasons.most_common():
            print(f"  {count:>5} x {reason}")
        for line in self.said[:20]:
            print(f"  {line}")


def restart_local_postgresql() -> None:
    """Restart the machine's PostgreSQL cluster (Debian's pg_ctlcluster): a real outage."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )


def start_worker(url: str, concurrency: int, lease: float, logs: Path) -> subprocess.Popen[bytes]:
    """A worker whose log (warnings and errors) goes to ``logs/worker-<pid>.log``."""
    with tempfile.NamedTemporaryFile(dir=logs, delete=False) as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sqlqueue",
                "worker",
                "-A",
                "chaos_tasks",
                "-c",
                str(concurrency),
                "--lease",
                str(lease),
                "--poll-interval",
                "0.1",
                "-l",
                "WARNING",
            ],
            cwd=HERE,
            env={**os.environ, "SQLQUEUE_DATABASE_URL": url},
            stdout=log,
            stderr=log,
        )
    Path(log.name).rename(logs / f"worker-{worker.pid}.log")
    return worker


def run(
    url: str,
    *,
    workers: int,
    jobs_count: int,
    kills: int,
    cuts: int,
    concurrency: int,
    lease: float,
    timeout: float,
    seed: int | None = None,
    restart_db: bool = False,
) -> Report:
    """Drain ``jobs_count`` jobs with ``workers`` processes under chaos and audit the result."""
    rng = random.Random(seed)
    database = fresh_database(url, "chaos")
    app = SQLQueue(database)
    log = Path(tempfile.mkdtemp(prefix="sqlqueue-chaos-log-")) / "runs.log"
    proxy = None
    worker_url = database
    if app.dialect.name in DEFAULT_PORTS:
        parsed = sa.make_url(database)
        proxy = CuttableProxy(
            parsed.host or "127.0.0.1", parsed.port or DEFAULT_PORTS[app.dialect.name]
        )
        worker_url = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False
        )
    else:
        cuts = 0
    with app.engine.begin() as conn, app.using(conn):
        for _ in range(jobs_count):
            app.send_task("chaos_tasks.record", args=[str(log)])

    started = time.monotonic()
    running = [start_worker(worker_url, concurrency, lease, log.parent) for _ in range(workers)]
    killed_pids: set[int] = set()
    # Spread the kills and cuts over the first part of the drain, at random points of its
    # progress (a share of the jobs finished), so that all of them happen however fast the
    # workers drain: a schedule in seconds left some out once the drain took 4 s.
    events = sorted(
        [(rng.uniform(0.02, 0.6), "kill") for _ in range(kills)]
        + [(rng.uniform(0.02, 0.6), "cut") for _ in range(cuts)]
        + ([(rng.uniform(0.1, 0.4), "restart")] if restart_db else [])
    )
    unfinished = jobs_count
    try:
        while unfinished and time.monotonic() - started < timeout:
            done = 1 - unfinished / jobs_count
            while events and events[0][0] <= done:
                _, kind = events.pop(0)
                if kind == "kill":
                    victim = rng.choice(running)
                    victim.send_signal(signal.SIGKILL)
                    victim.wait()
                    killed_pids.add(victim.pid)
                    running[running.index(victim)] = start_worker(
                        worker_url, concurrency, lease, log.parent
                    )
                elif kind == "restart":
                    restart_local_postgresql()
                elif proxy is not None:
                    proxy.cut()
            time.sleep(0.2)
            try:
                with app.engine.connect() as conn:
                    unfinished = conn.execute(
                        sa.select(sa.func.count())
                        .select_from(jobs)
                        .where(jobs.c.status.not_in(["SUCCESS", "FAILURE", "REVOKED"]))
                    ).scalar_one()
            except sa.exc.OperationalError:
                continue  # the database is restarting, and so are the workers' connections
        drained = time.monotonic() - started
    finally:
        for worker in running:
            worker.send_signal(signal.SIGTERM)
        for worker in running:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        if proxy is not None:
            proxy.close()

    report = Report(
        jobs=jobs_count,
        workers=workers,
        drain_seconds=drained,
        kills=len(killed_pids),
        cuts=cuts,
        restarts=int(restart_db),
    )
    runs: dict[str, list[int]] = defaultdict(list)
    for line in log.read_text().splitlines():
        job_id, pid = line.split()
        runs[job_id].append(int(pid))
    with app.engine.connect() as conn:
        rows = conn.execute(sa.select(jobs.c.id, jobs.c.status)).all()
    app.engine.dispose()
    drop_database(url, database)
    said = _worker_logs(log.parent)
    for job_id, status in rows:
        job_id = str(job_id)
        if status != "SUCCESS" or job_id not in runs:
            report.lost.append(job_id)
        elif len(runs[job_id]) > 1:
            first_runs = runs[job_id][:-1]
            about = [line for pid in first_runs for line in said[pid] if f"id={job_id}" in line]
            report.said += about
            if any(pid in killed_pids for pid in first_runs):
                report.reruns[job_id] = "its worker was killed while running it"
            elif cuts or restart_db:
                report.reruns[job_id] = "its outcome could not be written during an outage"
            elif any(words in line for line in about for words in LEASE_LOST):
                # The database answered too late for the lease (a stall longer than it):
                # to the queue, the worker was cut off, and it said so.
                report.reruns[job_id] = "its worker logged that it lost its lease"
            else:
                report.reruns[job_id] = "unexplained"
                report.unexplained.append(job_id)
    shutil.rmtree(log.parent, ignore_errors=True)
    return report


def _worker_logs(logs: Path) -> dict[int, list[str]]:
    """Each worker's log lines, by its pid."""
    return defaultdict(
        list,
        {
            int(path.stem.removeprefix("worker-")): path.read_text().splitlines()
            for path in logs.glob("worker-*.log")
        },
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("SQLQUEUE_TEST_POSTGRES_URL", DEFAULT_URL),
        help="server (PostgreSQL, MySQL, MariaDB) or any sqlite URL; a fresh database is made",
    )
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--cuts", type=int, default=3, help="connection cuts (not on SQLite)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--lease", type=float, default=3.0, help="lease, seconds")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--restart-db",
        action="store_true",
        help="restart the local PostgreSQL cluster once, mid-drain (needs root)",
    )
    args = parser.parse_args()
    report = run(
        args.url,
        workers=args.workers,
        jobs_count=args.jobs,
        kills=args.kills,
        cuts=args.cuts,
        concurrency=args.concurrency,
        lease=args.lease,
        timeout=args.timeout,
        seed=args.seed,
        restart_db=args.restart_db,
    )
    report.print()
    return 1 if report.lost or report.unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
