"""How long a running job takes to stop after ``revoke(terminate=True)`` returns.

    python benchmarks/revoke_delay.py --url sqlite:////tmp/r.db --pool thread --runs 10
    python benchmarks/revoke_delay.py --url postgresql://postgres@127.0.0.1/postgres --pool process

A worker (``-c 1``) runs ``bench_tasks.run_until_terminated``; once it has started, the job
is revoked and timed until it is stopped: ``Terminated`` raised in its thread (it writes a
marker), or its process-pool child gone. Prints the median and the longest, in ms.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import fresh_app, start_worker

from sqlqueue import SQLQueue


def gone(pid: int) -> bool:
    """Whether the process has exited (a zombie waiting for its parent counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def stop_delay(app: SQLQueue, pool: str) -> float:
    markers = Path(tempfile.mkdtemp())
    result = app.send_task("bench_tasks.run_until_terminated", args=[str(markers)])
    started = markers / result.id
    while not started.exists():
        time.sleep(0.005)
    time.sleep(0.2)  # well inside the task, whatever the worker's timers are doing
    pid = int(started.read_text())
    revoked = time.monotonic()
    result.revoke(terminate=True)
    terminated = markers / f"{result.id}.terminated"
    while not (terminated.exists() if pool == "thread" else gone(pid)):
        time.sleep(0.002)
    return time.monotonic() - revoked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="a server URL (a scratch database is made)")
    parser.add_argument("--pool", choices=["thread", "process"], default="thread")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with fresh_app(args.url) as app:
        worker: subprocess.Popen[bytes] = start_worker(app, "-c", "1", "--pool", args.pool)
        try:
            delays = [stop_delay(app, args.pool) for _ in range(args.runs)]
        finally:
            worker.terminate()
            worker.wait()
    print(
        f"{app.dialect.name} {args.pool} pool: median {statistics.median(delays) * 1000:.0f} ms, "
        f"max {max(delays) * 1000:.0f} ms ({args.runs} runs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
