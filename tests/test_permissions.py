"""A worker needs no DDL: it runs as a PostgreSQL role with only SELECT, INSERT, UPDATE and
DELETE on the sqlqueue_ tables (the migrations run once, as a more privileged role)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
import sqlalchemy as sa
from conftest import sqlqueue_command, start_worker

from sqlqueue import SQLQueue

pytestmark = pytest.mark.postgresql


@contextmanager
def role_url(
    postgres_url: str,
    privileges: str,
    tables: str = "sqlqueue_jobs, sqlqueue_rate_limits, sqlqueue_schedules, sqlqueue_workers",
) -> Iterator[str]:
    """The session database's URL for a new role with these privileges on these tables (by
    default sqlqueue's, as databases.md says to grant them)."""
    role = f"sqlqueue_worker_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("TRUNCATE sqlqueue_jobs")
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT {privileges} ON {tables} TO "{role}"')
    try:
        yield sa.make_url(postgres_url).set(username=role).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'REVOKE ALL ON {tables} FROM "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


@pytest.fixture
def dml_only_url(postgres_url: str) -> Iterator[str]:
    """A role that may only read and write job rows."""
    with role_url(postgres_url, "SELECT, INSERT, UPDATE, DELETE") as url:
        yield url


def test_the_role_really_cannot_change_the_schema(dml_only_url: str) -> None:
    with psycopg.connect(dml_only_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("ALTER TABLE sqlqueue_jobs ADD COLUMN x integer")


def test_a_worker_with_only_dml_privileges_runs_jobs_prunes_and_retries(dml_only_url: str) -> None:
    app = SQLQueue(dml_only_url)
    try:
        done = app.send_task("tasks.add", args=[2, 3])
        failed = app.send_task("tasks.fail", args=["as planned"])

        worker = start_worker(dml_only_url, "--burst", "--poll-interval", "0.1")
        output, _ = worker.communicate(timeout=60)
        requeue = subprocess.run(
            [*sqlqueue_command(), "retry", "--url", dml_only_url, failed.id],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert worker.returncode == 0, output
        assert done.get(timeout=5) == 5
        assert requeue.returncode == 0, requeue.stderr
        assert failed.status == "PENDING"
        assert app.store.delete_finished_jobs(older_than=0, batch_size=100) == 1
    finally:
        app.engine.dispose()


def test_a_burst_worker_whose_chores_are_refused_stops_and_says_why(postgres_url: str) -> None:
    # Given a role that may run jobs but not delete them (so every prune is refused)
    with role_url(postgres_url, "SELECT, INSERT, UPDATE") as url:
        app = SQLQueue(url)
        try:
            done = app.send_task("tasks.add", args=[2, 3])

            # When a burst worker runs as that role
            worker = start_worker(url, "--burst", "--poll-interval", "0.1")
            output, _ = worker.communicate(timeout=60)

            # I expect it to stop with the refusal, not to wait for its chores forever
            assert worker.returncode == 1, output
            assert "permission denied" in output
            assert done.status in ("PENDING", "SUCCESS")  # never left held by a gone worker
        finally:
            app.engine.dispose()


def test_a_worker_granted_only_the_jobs_table_still_runs_jobs_and_says_what_to_grant(
    postgres_url: str,
) -> None:
    # Given a role granted every sqlqueue table but the workers' (migration 0011 added it): its
    # worker cannot write its row there.
    tables = "sqlqueue_jobs, sqlqueue_rate_limits, sqlqueue_schedules"
    with role_url(postgres_url, "SELECT, INSERT, UPDATE, DELETE", tables) as url:
        app = SQLQueue(url)
        try:
            done = app.send_task("tasks.add", args=[2, 3])

            worker = start_worker(url, "--burst", "--poll-interval", "0.1")
            output, _ = worker.communicate(timeout=60)

            # The row only informs people: the jobs run, and the log says why it is missing.
            assert worker.returncode == 0, output
            assert done.get(timeout=5) == 5
            assert "heartbeat: could not write this worker's row" in output
            assert "permission denied for table sqlqueue_workers" in output
        finally:
            app.engine.dispose()
