"""Every query of ``sqlqueue status``, ``workers``, ``inspect`` and ``purge`` reads an index
on PostgreSQL, on a table whose finished jobs far outnumber the live ones: their plans, not
their times (benchmarks/status_queries.py times them on 5 million)."""

from __future__ import annotations

import re

import psycopg
import pytest
import sqlalchemy as sa
from conftest import explain

from sqlqueue import SQLQueue
from sqlqueue.schema import READY_PARTS, jobs
from sqlqueue.status import (
    HISTORY_COUNT_CAP,
    history_statement,
    queues_with_history,
    running_statement,
    waiting_statement,
    workers_statement,
)

pytestmark = pytest.mark.postgresql

FINISHED = 200_000
LIVE = 10_000


@pytest.fixture
def big_app(pg_app: SQLQueue, postgres_url: str) -> SQLQueue:
    """Many finished jobs over two days, most succeeded; live ones ready, deferred, retrying
    and running; five queues."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO sqlqueue_jobs (id, task_name, queue, priority, args, kwargs, status,
                                       scheduled_at, created_at, finished_at)
            SELECT 'f' || n, 't', 'q' || n %% 5, 0, '[]', '{}',
                   CASE WHEN n %% 10 = 0 THEN 'FAILURE' ELSE 'SUCCESS' END,
                   now() - interval '2 days', now() - interval '2 days',
                   now() - (n %% 172800) * interval '1 second'
            FROM generate_series(1, %s) AS n
            """,
            (FINISHED,),
        )
        conn.execute(
            """
            INSERT INTO sqlqueue_jobs (id, task_name, queue, priority, args, kwargs, status,
                                       scheduled_at, created_at, lease_expires_at)
            SELECT 'l' || n, 't', 'q' || n %% 5, 0, '[]', '{}',
                   (ARRAY['PENDING', 'PENDING', 'RETRY', 'STARTED'])[n %% 4 + 1],
                   now() + (n %% 3 - 1) * interval '1 hour', now() - interval '1 hour',
                   CASE WHEN n %% 4 = 3 THEN now() + interval '1 minute' END
            FROM generate_series(1, %s) AS n
            """,
            (LIVE,),
        )
        conn.execute("VACUUM ANALYZE sqlqueue_jobs")
    return pg_app


def assert_reads_index(plan: str, index: str) -> None:
    assert re.search(rf"\b{index}\b", plan), plan
    assert "Seq Scan on sqlqueue_jobs" not in plan, plan


def test_the_waiting_jobs_per_queue_are_read_from_the_ready_index(big_app: SQLQueue) -> None:
    plan = explain(big_app, waiting_statement(big_app.dialect.now()))

    assert_reads_index(plan, "ix_sqlqueue_jobs_ready_in_queue|ix_sqlqueue_jobs_ready")
    assert_reads_index(plan, "ix_sqlqueue_jobs_limited")


def test_the_running_jobs_are_read_from_the_lease_index(big_app: SQLQueue) -> None:
    assert_reads_index(explain(big_app, running_statement()), "ix_sqlqueue_jobs_leased")


def test_the_queues_with_history_are_a_skip_scan_of_the_outcomes_index(
    big_app: SQLQueue,
) -> None:
    plan = explain(big_app, queues_with_history())

    assert_reads_index(plan, "ix_sqlqueue_jobs_outcomes")
    # One probe per queue found (and one that finds none), not one row per finished job.
    loops = [int(n) for n in re.findall(r"Index Only Scan.*loops=(\d+)", plan)]
    assert loops and max(loops) <= 6, plan


def test_each_count_of_history_reads_at_most_its_cap(big_app: SQLQueue) -> None:
    plan = explain(big_app, history_statement(big_app.dialect, "q0"))

    assert_reads_index(plan, "ix_sqlqueue_jobs_outcomes")
    rows = [int(n) for n in re.findall(r"Index Only Scan.*actual time=\S+ rows=(\d+)", plan)]
    assert len(rows) == 3 and max(rows) <= HISTORY_COUNT_CAP, plan
    assert max(rows) == HISTORY_COUNT_CAP  # q0 succeeded more than that in the last day


def test_purge_counts_a_queues_ready_jobs_from_the_ready_index(big_app: SQLQueue) -> None:
    unlimited, limited = (
        sa.select(sa.func.count()).where(part, jobs.c.queue == "q1") for part in READY_PARTS
    )

    assert_reads_index(explain(big_app, unlimited), "ix_sqlqueue_jobs_ready_in_queue")
    assert_reads_index(explain(big_app, limited), "ix_sqlqueue_jobs_limited")


def test_inspect_reads_one_job_by_its_key(big_app: SQLQueue) -> None:
    plan = explain(big_app, sa.select(jobs).where(jobs.c.id == "f12345"))

    assert_reads_index(plan, "pk_sqlqueue_jobs")


def test_the_workers_are_read_from_their_own_small_table(big_app: SQLQueue) -> None:
    plan = explain(big_app, workers_statement(big_app.dialect.now()))

    assert "sqlqueue_jobs" not in plan
