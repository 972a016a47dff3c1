"""The no-op task the benchmark's workers run (`sqlqueue worker -A bench_tasks`, from benchmarks/)."""

from __future__ import annotations

from sqlqueue import SQLQueue

app = SQLQueue()


@app.task
def noop(n: int) -> int:
    return n
