"""Ticks run: four workers and a `sqlqueue beat` schedule a one-second periodic task for a
while; then the jobs of each tick are counted, and how long after its tick each was sent.

    python scripts/ticks.py --url sqlite:////tmp/ticks.db
    python scripts/ticks.py --url postgresql://postgres@127.0.0.1:5432/ticks --seconds 30

The database must exist; its queue is migrated and emptied first. It prints the ticks sent,
the most jobs any tick got (must be 1) and the median and largest delay from a tick to its
job's insert. Exit status 1 when a tick got more than one job.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from sqlqueue import SQLQueue
from sqlqueue.jobs import as_utc
from sqlqueue.migrate import upgrade
from sqlqueue.schema import jobs, schedules

TESTS_DIR = Path(__file__).parent.parent / "tests"  # where periodic_tasks.py is


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=float, default=12.0)
    options = parser.parse_args()
    app = SQLQueue(options.url)
    upgrade(app.engine)
    with app.engine.begin() as conn:
        conn.execute(sa.delete(jobs))
        conn.execute(sa.delete(schedules))
    command = [str(Path(sys.executable).parent / "sqlqueue")]
    env = {**os.environ, "SQLQUEUE_DATABASE_URL": options.url}
    processes = [
        *(
            subprocess.Popen(
                [*command, "worker", "-A", "periodic_tasks", "-c", "2"],
                cwd=TESTS_DIR,
                env=env,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(4)
        ),
        subprocess.Popen(
            [*command, "beat", "-A", "periodic_tasks"],
            cwd=TESTS_DIR,
            env=env,
            stderr=subprocess.DEVNULL,
        ),
    ]
    time.sleep(options.seconds)
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(60)
    with app.engine.connect() as conn:
        rows = conn.execute(
            sa.select(jobs.c.scheduled_at, jobs.c.created_at).where(
                jobs.c.task_name == "periodic_tasks.tick"
            )
        ).all()
    app.engine.dispose()
    if not rows:
        print("no tick was sent")
        return 1
    per_tick = Counter(as_utc(tick) for tick, _ in rows)
    delays = [(as_utc(sent) - as_utc(tick)).total_seconds() * 1000 for tick, sent in rows]
    print(
        f"{app.dialect.name}: {len(per_tick)} ticks, {len(rows)} jobs, at most "
        f"{max(per_tick.values())} per tick; tick to insert: median "
        f"{statistics.median(delays):.1f} ms, largest {max(delays):.1f} ms"
    )
    return 0 if max(per_tick.values()) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
