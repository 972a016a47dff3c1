"""MySQL/MariaDB stress run (issue 17): worker processes claim while sender processes send,
some workers are killed with SIGKILL or frozen past their lease, and every job is audited.

    python benchmarks/mysql_stress.py --url mysql+pymysql://root@127.0.0.1:3306/mysql
    python benchmarks/mysql_stress.py --jobs 20000 --kills 2 --freezes 1

Defaults: 100,000 jobs, 4 worker processes x 4 threads (16 claimers), 4 senders, leases of
10 s (a sixth of the default, so that rescues come soon; shorter ones lapsed on a loaded
2-core machine, see docs/benchmarks.md), 3 kills and 2 freezes (SIGSTOP for twice the lease,
then SIGCONT: the worker comes back to takes that were rescued and run by others, and its
late outcomes must be fenced out).
The run is on a new database on the server of --url, dropped afterwards.

Exactly once means: every job is SUCCESS; its result is the attempt of a run that was logged
(the outcome kept is that of the run that held the job's last take); and a job ran more than
once only where each earlier run was in a worker killed or frozen meanwhile (a kill may
land after the task returned but before its outcome was written, so that run counts too).

Lock conflicts are counted by every process of the run on sqlqueue's own engine
(``stress_tasks``); the server's ``Innodb_deadlocks`` and ``Com_commit + Com_rollback``
deltas are printed beside them, but those count every client of the server. Exit status 1
when a job was lost, ran twice without a reason, or deadlocks reached 0.1% of transactions.
"""

from __future__ import annotations

import argparse
import json
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
sys.path.insert(0, str(HERE.parent / "scripts"))
from scratch_databases import drop_database, fresh_database  # noqa: E402 - shared with bench.py

DEFAULT_URL = "mysql+pymysql://root@127.0.0.1:3306/mysql"

MAX_DEADLOCK_SHARE = 0.001
"""Issue 17's bound: deadlocks below 0.1% of transactions."""

SERVER_COUNTERS = ("Innodb_deadlocks", "Innodb_row_lock_waits", "Com_commit", "Com_rollback")


@dataclass
class Report:
    jobs: int
    workers: int
    concurrency: int
    senders: int
    seconds: float = 0.0
    """From the first send to the last job's finish."""
    kills: int = 0
    freezes: int = 0
    rescued: int = 0
    """Jobs whose lease ran out at least once (re-queued by the rescue chore)."""
    runs: int = 0
    transactions: int = 0
    """sqlqueue's own, in every process of the run (a killed worker's last few uncounted)."""
    deadlocks: int = 0
    lock_wait_timeouts: int = 0
    conflicts: Counter[str] = field(default_factory=Counter)
    """Lock conflicts by kind and statement."""
    server: dict[str, int] = field(default_factory=dict)
    """Deltas of the server's counters over the run: every client's, not only this run's."""
    lost: list[str] = field(default_factory=list)
    """Jobs not SUCCESS, missing, or whose result is no logged run's attempt."""
    reruns: dict[str, str] = field(default_factory=dict)
    """Job id -> why it ran more than once."""
    unexplained: list[str] = field(default_factory=list)
    """Jobs that ran more than once with no kill or freeze of an earlier run's worker."""

    @property
    def deadlock_share(self) -> float:
        return self.deadlocks / max(self.transactions, 1)

    @property
    def passed(self) -> bool:
        return not self.lost and not self.unexplained and self.deadlock_share < MAX_DEADLOCK_SHARE

    def print(self) -> None:
        server_transactions = self.server.get("Com_commit", 0) + self.server.get("Com_rollback", 0)
        rows = [
            ("jobs", f"{self.jobs:,}"),
            ("claimers", f"{self.workers} worker processes x {self.concurrency} threads"),
            ("sender processes", self.senders),
            ("first send to last finish", f"{self.seconds:.1f} s ({self.rate:,.0f} jobs/s)"),
            ("workers killed (SIGKILL)", self.kills),
            ("workers frozen past their lease", self.freezes),
            ("jobs rescued after a lease ran out", self.rescued),
            ("runs logged", f"{self.runs:,}"),
            ("jobs lost", len(self.lost)),
            ("jobs run more than once", len(self.reruns)),
            ("  of which unexplained", len(self.unexplained)),
            ("sqlqueue's transactions", f"{self.transactions:,}"),
            ("deadlocks (1213) met by them", f"{self.deadlocks} ({self.deadlock_share:.4%})"),
            ("lock wait timeouts (1205)", self.lock_wait_timeouts),
            ("server-wide: Innodb_deadlocks", self.server.get("Innodb_deadlocks", 0)),
            ("server-wide: row lock waits", self.server.get("Innodb_row_lock_waits", 0)),
            ("server-wide: commits + rollbacks", f"{server_transactions:,}"),
        ]
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            print(f"{name:<{width}}  {value}")
        for reason, count in Counter(self.reruns.values()).most_common():
            print(f"  {count:>5} x {reason}")
        for conflict, count in self.conflicts.most_common():
            print(f"  {count:>5} x {conflict}")

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds else 0.0


def start_worker(url: str, out: Path, concurrency: int, lease: float) -> subprocess.Popen[bytes]:
    with (out / f"worker-{time.monotonic_ns()}.log").open("wb") as log:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "sqlqueue", "worker", "-A", "stress_tasks"),
                *("-c", str(concurrency), "--lease", str(lease), "--poll-interval", "0.1"),
                *("-l", "WARNING"),
            ],
            cwd=HERE,
            env={**os.environ, "SQLQUEUE_DATABASE_URL": url, "SQLQUEUE_STRESS_DIR": str(out)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def start_sender(url: str, out: Path, count: int, batch: int, seed: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", f"import stress_tasks; stress_tasks.send({count}, {batch}, {seed})"],
        cwd=HERE,
        env={**os.environ, "SQLQUEUE_DATABASE_URL": url, "SQLQUEUE_STRESS_DIR": str(out)},
    )


def server_counters(engine: sa.Engine) -> dict[str, int]:
    names = ", ".join(f"'{name}'" for name in SERVER_COUNTERS)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})")
        return {str(name): int(value) for name, value in rows}


def live_workers(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM sqlqueue_workers").scalar_one())


def finished(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(jobs)
                .where(jobs.c.status.in_(["SUCCESS", "FAILURE", "REVOKED"]))
            ).scalar_one()
        )


def run(
    url: str,
    *,
    jobs_count: int = 100_000,
    workers: int = 4,
    concurrency: int = 4,
    senders: int = 4,
    batch: int = 10,
    kills: int = 3,
    freezes: int = 2,
    lease: float = 10.0,
    timeout: float = 1800.0,
    seed: int | None = None,
) -> Report:
    """Send ``jobs_count`` jobs from ``senders`` processes while ``workers`` processes run
    them, with kills and freezes at random points of the progress; audit every job."""
    rng = random.Random(seed)  # noqa: S311 (when to disturb workers, not a secret)
    database = fresh_database(url, "stress")
    try:
        app = SQLQueue(database)
        engine = app.engine
        out = Path(tempfile.mkdtemp(prefix="sqlqueue-stress-"))
        report = Report(jobs=jobs_count, workers=workers, concurrency=concurrency, senders=senders)
        running = [start_worker(database, out, concurrency, lease) for _ in range(workers)]
        disturbed: dict[int, str] = {}
        sending: list[subprocess.Popen[bytes]] = []
        try:
            deadline = time.monotonic() + 120
            while live_workers(engine) < workers:  # every worker polls before the first send
                if time.monotonic() > deadline:
                    raise RuntimeError("the workers did not start within 120 s")
                time.sleep(0.2)
            before = server_counters(engine)
            started = time.monotonic()
            shares = [jobs_count // senders + (n < jobs_count % senders) for n in range(senders)]
            sending = [
                start_sender(database, out, share, batch, n) for n, share in enumerate(shares)
            ]
            events = sorted(
                [(rng.uniform(0.05, 0.7), "kill") for _ in range(kills)]
                + [(rng.uniform(0.05, 0.7), "freeze") for _ in range(freezes)]
            )
            frozen: list[tuple[float, subprocess.Popen[bytes]]] = []
            done = 0
            while done < jobs_count or any(sender.poll() is None for sender in sending):
                if time.monotonic() - started > timeout:
                    raise RuntimeError(f"{jobs_count - done} jobs left after {timeout:g} s")
                for until, worker in list(frozen):
                    if time.monotonic() >= until:
                        worker.send_signal(signal.SIGCONT)
                        frozen.remove((until, worker))
                while events and events[0][0] <= done / jobs_count:
                    _, kind = events.pop(0)
                    victim = rng.choice([w for w in running if w.pid not in disturbed])
                    if kind == "kill":
                        victim.send_signal(signal.SIGKILL)
                        victim.wait()
                        disturbed[victim.pid] = "its worker was killed (SIGKILL)"
                        running[running.index(victim)] = start_worker(
                            database, out, concurrency, lease
                        )
                        report.kills += 1
                    else:
                        victim.send_signal(signal.SIGSTOP)
                        disturbed[victim.pid] = "its worker was frozen past its lease"
                        frozen.append((time.monotonic() + 2 * lease, victim))
                        report.freezes += 1
                time.sleep(0.5)
                done = finished(engine)
            for _, worker in frozen:
                worker.send_signal(signal.SIGCONT)
            with engine.connect() as conn:
                first, last = conn.execute(
                    sa.select(sa.func.min(jobs.c.created_at), sa.func.max(jobs.c.finished_at))
                ).one()
            report.seconds = (last - first).total_seconds()
            after = server_counters(engine)
            report.server = {name: after[name] - before[name] for name in SERVER_COUNTERS}
        finally:
            for process in [*running, *sending]:
                if process.poll() is None:  # (a frozen one takes its SIGTERM once woken)
                    process.send_signal(signal.SIGCONT)
                    process.send_signal(signal.SIGTERM)
            for process in [*running, *sending]:
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(jobs.c.id, jobs.c.status, jobs.c.result, jobs.c.expired_leases)
            ).all()
        engine.dispose()
    finally:  # (also when the run failed)
        drop_database(url, database)
    audit(report, rows, out, disturbed)
    if report.passed:
        shutil.rmtree(out, ignore_errors=True)
    else:  # the workers' logs and the runs, to find out why
        print(f"the run's files are kept in {out}", file=sys.stderr)
    return report


def audit(report: Report, rows: list[sa.Row], out: Path, disturbed: dict[int, str]) -> None:
    """Fill the report's counts and findings from the jobs' rows and the run's files."""
    runs: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for line in (out / "runs.log").read_text().splitlines():
        job_id, attempt, pid = line.split()
        runs[job_id].append((int(attempt), int(pid)))
    report.runs = sum(len(each) for each in runs.values())
    report.transactions = sum(int(path.read_text()) for path in out.glob("transactions-*"))
    conflicts = out / "conflicts.log"
    lines = conflicts.read_text().splitlines() if conflicts.exists() else []
    kinds = Counter(line.split("\t")[1] for line in lines)
    report.conflicts = Counter(line.split("\t", 1)[1] for line in lines)
    report.deadlocks = kinds["deadlock"]
    report.lock_wait_timeouts = kinds["lock wait timeout"]
    if len(rows) != report.jobs:
        report.lost.append(f"{len(rows)} jobs in the table, {report.jobs} sent")
    for job_id, status, result, expired_leases in rows:
        report.rescued += expired_leases > 0
        kept = json.loads(result) if isinstance(result, str) else result
        attempts = [attempt for attempt, _ in runs[job_id]]
        if status != "SUCCESS" or kept not in attempts:
            report.lost.append(job_id)
            continue
        if len(attempts) == 1:
            continue
        earlier = [pid for attempt, pid in runs[job_id] if attempt != kept]
        if len(earlier) == len(attempts) - 1 and all(pid in disturbed for pid in earlier):
            report.reruns[job_id] = disturbed[earlier[-1]]
        else:
            report.reruns[job_id] = "unexplained"
            report.unexplained.append(job_id)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("SQLQUEUE_TEST_MARIADB_URL", DEFAULT_URL),
        help="a MySQL or MariaDB server; a fresh database is made on it",
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4, help="threads per worker")
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--batch", type=int, default=10, help="jobs per send transaction")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--freezes", type=int, default=2)
    parser.add_argument("--lease", type=float, default=10.0, help="lease, seconds")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()
    report = run(
        args.url,
        jobs_count=args.jobs,
        workers=args.workers,
        concurrency=args.concurrency,
        senders=args.senders,
        batch=args.batch,
        kills=args.kills,
        freezes=args.freezes,
        lease=args.lease,
        timeout=args.timeout,
        seed=args.seed,
    )
    report.print()
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
