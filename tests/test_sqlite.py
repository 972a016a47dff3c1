"""SQLite specifics: what sqlqueue does to a file it shares, and the time it writes."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from conftest import work_off

from sqlqueue import SQLQueue

FULL = 2
"""``PRAGMA synchronous`` of a connection left as SQLite makes it."""


def _queue_file(sqlite_template: Path, tmp_path: Path, journal_mode: str) -> Path:
    path = tmp_path / "app.db"
    shutil.copy(sqlite_template, path)
    with sqlite3.connect(path) as conn:  # the journal mode is the file's, and it persists
        conn.execute(f"PRAGMA journal_mode={journal_mode}")
    return path


def test_an_engine_the_application_built_keeps_its_durability_settings(
    sqlite_template: Path, tmp_path: Path
) -> None:
    # Given the application's own database, in the journal mode it chose,
    path = _queue_file(sqlite_template, tmp_path, "delete")
    engine = sa.create_engine(f"sqlite:///{path}")
    app = SQLQueue(engine=engine)
    try:

        @app.task(name="t.add")
        def add(x: int, y: int) -> int:
            return x + y

        # when sqlqueue sends and works off jobs through its engine,
        results = [add.delay(n, 1) for n in range(3)]
        work_off(app)
        assert [result.get(timeout=5) for result in results] == [1, 2, 3]

        # I expect the file's journal mode and the connections' synchronous level unchanged.
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == FULL
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    finally:
        engine.dispose()


def test_an_engine_sqlqueue_built_from_a_url_uses_wal(
    sqlite_template: Path, tmp_path: Path
) -> None:
    path = _queue_file(sqlite_template, tmp_path, "delete")
    app = SQLQueue(f"sqlite:///{path}")
    try:
        app.send_task("t.anything")
        with app.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        app.engine.dispose()


def test_a_claim_that_waited_for_the_write_lock_leases_from_when_it_got_it(
    sqlite_template: Path, tmp_path: Path
) -> None:
    # Given a ready job, and another process holding the write lock for a while,
    path = _queue_file(sqlite_template, tmp_path, "wal")
    app = SQLQueue(f"sqlite:///{path}")
    job_id = app.send_task("t.anything").id
    locked, released = threading.Event(), threading.Event()
    released_at: list[datetime] = []

    def hold_the_lock() -> None:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(1.5)
        released_at.append(datetime.now(UTC))
        holder.execute("COMMIT")
        holder.close()
        released.set()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert locked.wait(5)
        # when a worker's claim waits for it,
        claimed = app.store.claim_jobs(1, None, "worker-1", lease=30)
        holder.join()

        # I expect the job's start and lease to count from when the claim held the lock.
        assert [job.id for job in claimed] == [job_id]
        job = claimed[0]
        assert job.started_at is not None and job.lease_expires_at is not None
        assert job.started_at >= released_at[0] - timedelta(milliseconds=50)
        assert job.lease_expires_at >= released_at[0] + timedelta(seconds=30, milliseconds=-50)
    finally:
        holder.join()
        app.engine.dispose()
