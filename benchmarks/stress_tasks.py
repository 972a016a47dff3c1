"""The MySQL stress run's task and senders (`sqlqueue worker -A stress_tasks`, from benchmarks/).

Every process that loads this module counts the transactions of sqlqueue's engine and the
lock conflicts they met (deadlock 1213, lock wait timeout 1205), in files of
$SQLQUEUE_STRESS_DIR: the server's own counters (``Innodb_deadlocks``, ``Com_commit``) are
the whole server's, which other clients share.
"""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event

from sqlqueue import SQLQueue

app = SQLQueue()

OUT = Path(os.environ.get("SQLQUEUE_STRESS_DIR", "."))

FLUSH_EVERY = 200
"""Transactions between two writes of this process's count: a worker killed with SIGKILL
loses at most as many from the count (so the share of deadlocks is overstated, never
understated)."""

LOCK_CONFLICTS = {1213: "deadlock", 1205: "lock wait timeout"}

_lock = threading.Lock()
_transactions = 0


def _count_transaction(*_: Any) -> None:
    global _transactions
    with _lock:
        _transactions += 1
        if _transactions % FLUSH_EVERY == 0:
            _flush()


def _flush() -> None:
    (OUT / f"transactions-{os.getpid()}").write_text(str(_transactions))


def _count_conflict(context: Any) -> None:
    args = getattr(context.original_exception, "args", ())
    if args and args[0] in LOCK_CONFLICTS:
        statement = " ".join(str(context.statement).split())[:120]
        with (OUT / "conflicts.log").open("a") as log:
            log.write(f"{os.getpid()}\t{LOCK_CONFLICTS[args[0]]}\t{statement}\n")


# Every transaction begins, writes or reads alike (SQLAlchemy 2 begins one on a connection's
# first statement); the end is a commit, a rollback or the pool's reset of the connection.
event.listen(app.engine, "begin", _count_transaction)
event.listen(app.engine, "handle_error", _count_conflict)
atexit.register(lambda: _flush())


@app.task(bind=True)
def record(self: Any) -> int:
    """Append "job_id attempt pid" for every run, so the run can be audited afterwards; the
    result is the attempt, so the audit can tell which run's outcome was kept."""
    attempt: int = self.request.attempts
    with (OUT / "runs.log").open("a") as log:
        log.write(f"{self.request.id} {attempt} {os.getpid()}\n")
    return attempt


def send(count: int, batch: int, seed: int) -> None:
    """One sender process: ``count`` jobs, in transactions of ``batch`` (every 10th batch one
    job at a time, each its own transaction), a third of them with priority 5, and every
    20th batch due a second later."""
    sent = 0
    turn = seed
    while sent < count:
        size = min(batch, count - sent)
        turn += 1
        options: dict[str, Any] = {"priority": 5 if turn % 3 == 0 else 0}
        if turn % 20 == 0:
            options["countdown"] = 1.0
        if turn % 10 == 0:
            for _ in range(size):
                record.apply_async(**options)
        else:
            record.delay_many([() for _ in range(size)], **options)
        sent += size
