"""A table full of finished jobs: taking the next job reads as little as on an empty table,
and pruning gets through them in batches. Measured in buffers read, not in seconds."""

from __future__ import annotations

import psycopg
import pytest
from conftest import claim_buffers, explain, explain_claim, uses_index

from sqlqueue import SQLQueue
from sqlqueue.dialects.base import DriverStatement
from sqlqueue.outcomes import Outcome

pytestmark = [pytest.mark.postgresql, pytest.mark.slow]

FINISHED = 1_000_000


def buffers_to_find_ready_jobs(app: SQLQueue) -> tuple[int, str]:
    """Shared buffers the claim touches to find and lock the next jobs, and its plan."""
    plan = explain_claim(
        app.engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
    )
    return claim_buffers(plan), plan


def test_a_million_finished_jobs_do_not_make_the_claim_read_more(
    pg_app: SQLQueue, postgres_url: str
) -> None:
    for n in range(10):
        pg_app.send_task("t.ready", args=[n])
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("ANALYZE sqlqueue_jobs")
    empty, _ = buffers_to_find_ready_jobs(pg_app)

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO sqlqueue_jobs (id, task_name, queue, priority, args, kwargs, status,
                                       scheduled_at, created_at, finished_at, result)
            SELECT gen_random_uuid(), 't.old', 'default', 0, '[]', '{}', 'SUCCESS',
                   now() - interval '2 days', now() - interval '2 days',
                   now() - interval '2 days' + n * interval '1 ms', '1'
            FROM generate_series(1, %s) AS n
            """,
            (FINISHED,),
        )
        conn.execute("VACUUM ANALYZE sqlqueue_jobs")
    full, plan = buffers_to_find_ready_jobs(pg_app)

    # The claim walks the partial index of ready jobs; a million finished rows are not in it.
    assert "ix_sqlqueue_jobs_ready" in plan
    assert full <= empty * 1.2, f"{empty} buffers on an empty table, {full} now:\n{plan}"

    pruned = pg_app.store.delete_finished_jobs(older_than=86400, batch_size=10_000)
    assert pruned == FINISHED
    assert len(pg_app.store.claim_jobs(100, None, "w", 30)) == 10


def test_statements_that_find_live_jobs_by_id_go_through_the_primary_key(
    pg_app: SQLQueue, postgres_url: str
) -> None:
    # Given a table whose statistics say that almost no job runs or waits (ANALYZE among
    # finished jobs), while hundreds run and thousands of workflow steps wait
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO sqlqueue_jobs (id, task_name, queue, priority, args, kwargs, status,
                                       scheduled_at, created_at, finished_at, result)
            SELECT gen_random_uuid(), 't.old', 'default', 0, '[]', '{}', 'SUCCESS',
                   now(), now(), now(), '1'
            FROM generate_series(1, 100000)
            """
        )
        conn.execute("VACUUM ANALYZE sqlqueue_jobs")
        conn.execute(
            """
            INSERT INTO sqlqueue_jobs (id, task_name, queue, priority, args, kwargs, status,
                                       scheduled_at, created_at, waiting_for, workflow_id)
            SELECT 'step-' || n, 't.step', 'default', 0, '[]', '{}', 'WAITING', now(), now(),
                   1, 'flow'
            FROM generate_series(1, 3000) AS n
            """
        )
    for n in range(300):
        pg_app.send_task("t.ready", args=[n])
    takes = [(job.id, job.attempts) for job in pg_app.store.claim_jobs(300, None, "w", 30)]
    assert len(takes) == 300
    steps = [f"step-{n}" for n in range(1, 301)]

    # I expect the finish, the lease renewal and the release of steps to look each one up by
    # id, and not to walk every running or unfinished job for each (plans that made drains
    # four times slower)
    dialect = pg_app.dialect
    outcomes = [(take, Outcome.succeeded("1")) for take in takes]
    plans = [
        explain(pg_app, statement)
        for statement in (
            dialect.extend_leases(takes, 30),
            dialect.lock_waiting(steps),
            dialect.release_waiting(steps[0], 0),
            dialect.drop_waiting(steps),
        )
    ]
    with psycopg.connect(postgres_url) as conn:
        for releasing in (False, True):
            finish = dialect.record_outcomes(outcomes, releasing=releasing)[-1]
            assert isinstance(finish, DriverStatement)
            rows = conn.execute(f"EXPLAIN {finish.sql}", finish.params)
            plans.append("\n".join(row[0] for row in rows))
    for plan in plans:
        assert uses_index(plan, "pk_sqlqueue_jobs"), plan
        assert not uses_index(plan, "ix_sqlqueue_jobs_leased"), plan
        assert not uses_index(plan, "ix_sqlqueue_jobs_unique"), plan
