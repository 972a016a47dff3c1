"""The tasks the benchmarks' workers run (`sqlqueue worker -A bench_tasks`, from benchmarks/)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sqlqueue import SQLQueue, Terminated

app = SQLQueue()


@app.task
def noop(n: int) -> int:
    return n


@app.task(concurrency_limit=1000)
def limited_noop(n: int) -> int:
    """``noop`` with a concurrency limit a worker never reaches (bench.py, LIMITED_SLOTS)."""
    return n


@app.task
def count(results: list[int]) -> int:
    """A chord's body: how many header results it received."""
    return len(results)


@app.task
def print_clock() -> None:
    """Print the wall clock as the task starts, for benchmarks/peer_latency.py to read."""
    print(time.time(), flush=True)


@app.task(bind=True)
def run_until_terminated(self: Any, marker_dir: str) -> None:
    """Write this process's pid to ``marker_dir/<job id>``, then run until revoked with
    ``terminate=True``; in a thread, write ``<job id>.terminated`` when stopped."""
    (Path(marker_dir) / self.request.id).write_text(str(os.getpid()))
    try:
        while True:
            time.sleep(0.01)
    except Terminated:
        (Path(marker_dir) / f"{self.request.id}.terminated").write_text("")
        raise
