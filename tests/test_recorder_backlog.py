"""A worker whose tasks return faster than its outcomes are written stops claiming once
``MAX_UNRECORDED`` outcomes wait, so the jobs it holds (renewed at every pass, and run again
after a kill) stay bounded; seen on MariaDB, where no-op jobs ran ahead of their outcomes."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

import sqlqueue.worker
from sqlqueue import SQLQueue, Worker, WorkerOptions
from sqlqueue.prefetch import MAX_PREFETCH
from sqlqueue.recorder import Finished, Recorder

JOBS = 3000
UNRECORDED = 200
THREADS = 4


def test_a_worker_whose_recorder_is_behind_claims_no_more(
    app: SQLQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a queue of no-op jobs and a recorder that takes 0.5 s for each batch (a slow
    # database's finish), and at most 200 outcomes waiting before the worker stops claiming,
    monkeypatch.setattr(sqlqueue.worker, "MAX_UNRECORDED", UNRECORDED)
    write = Recorder._write

    def slow_write(self: Recorder, batch: Sequence[Finished]) -> list[object]:
        time.sleep(0.5)
        return write(self, batch)  # type: ignore[return-value]

    monkeypatch.setattr(Recorder, "_write", slow_write)
    noop = app.task(name="t.noop")(lambda: None)
    noop.delay_many([() for _ in range(JOBS)])
    running = Worker(app, WorkerOptions(burst=True, concurrency=THREADS, poll_interval=0.05))

    # when the worker runs them all,
    most_held = 0
    thread = threading.Thread(target=running.run)
    thread.start()
    while thread.is_alive():
        with running._held_lock:
            most_held = max(most_held, len(running._held))
        time.sleep(0.005)

    # I expect every job done, and the worker never to have held more than the outcomes it
    # may leave waiting, and twice its threads and prefetch (the jobs of its last claim,
    # some of which may have run meanwhile, and those of the next).
    with app.engine.connect() as conn:
        left = conn.exec_driver_sql(
            "SELECT count(*) FROM sqlqueue_jobs WHERE status <> 'SUCCESS'"
        ).scalar_one()
    assert left == 0
    assert most_held <= UNRECORDED + 2 * (THREADS + MAX_PREFETCH), most_held
