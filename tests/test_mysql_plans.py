"""Issue 17: MariaDB's plans of the claim, finish and renewal among many jobs that are not
ready, read with ``ANALYZE FORMAT=JSON`` (the statement run, its real rows counted) and
``EXPLAIN FORMAT=JSON``.

MySQL 8 writes its plans in another shape (``query_block.table.key``, ``rows_examined_per_scan``,
and ``EXPLAIN ANALYZE`` as text rather than ``ANALYZE FORMAT=JSON``); these tests read
MariaDB's, the server the suite runs on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from sqlqueue import SQLQueue
from sqlqueue.dialects.mysql import CLAIM_IN_QUEUE_INDEX, CLAIM_INDEX, MySQLDialect
from sqlqueue.outcomes import Outcome

pytestmark = pytest.mark.mysql

FINISHED = 10_000
NOT_YET_DUE = 5_000
READY = 40  # in each of the queues "a" and "b"
LIMIT = 10


@pytest.fixture
def crowded_app(mysql_app: SQLQueue) -> SQLQueue:
    """The session's MariaDB queue with, besides ``READY`` jobs due now in queues "a" and
    "b", many finished jobs and many not due for an hour, at the ready jobs' priority, all in
    queue "a" (the claim of queue "a" must read past neither), and fresh statistics."""
    job = mysql_app.task(name="t.job")(lambda: None)
    job.delay_many([() for _ in range(NOT_YET_DUE)], countdown=3600, queue="a")
    for queue in ("a", "b"):
        job.delay_many([() for _ in range(READY)], queue=queue)
    with mysql_app.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO sqlqueue_jobs (id, task_name, queue, priority, args, kwargs, status,"
            " scheduled_at, created_at, finished_at, attempts) WITH RECURSIVE n(i) AS (SELECT 1"
            " UNION ALL SELECT i + 1 FROM n WHERE i < 100) SELECT UUID(), 't.job', 'a', 0,"
            " '[]', '{}', 'SUCCESS', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), 1"
            f" FROM n AS x CROSS JOIN n AS y LIMIT {FINISHED}"
        )
        conn.exec_driver_sql("ANALYZE TABLE sqlqueue_jobs").all()
        rows = conn.exec_driver_sql("SELECT status, count(*) FROM sqlqueue_jobs GROUP BY 1")
        counts = {status: count for status, count in rows}
    assert counts == {"SUCCESS": FINISHED, "PENDING": NOT_YET_DUE + 2 * READY}
    return mysql_app


def tables(plan: Any) -> Iterator[dict[str, Any]]:
    """Every table access of a MariaDB JSON plan, however nested."""
    if isinstance(plan, dict):
        if "table_name" in plan:
            yield plan
        for value in plan.values():
            yield from tables(value)
    elif isinstance(plan, list):
        for value in plan:
            yield from tables(value)


@pytest.mark.parametrize(("queue", "index"), [(None, CLAIM_INDEX), ("a", CLAIM_IN_QUEUE_INDEX)])
def test_the_claims_locking_read_reads_its_index_and_about_limit_rows(
    crowded_app: SQLQueue, queue: str | None, index: str
) -> None:
    statement = MySQLDialect().ready_jobs(LIMIT, queue)
    compiled = statement.compile(
        dialect=crowded_app.engine.dialect, compile_kwargs={"literal_binds": True}
    )
    with crowded_app.engine.connect() as conn:
        plan = json.loads(conn.exec_driver_sql(f"ANALYZE FORMAT=JSON {compiled}").scalar_one())
        conn.rollback()  # ANALYZE ran the locking read: let its locks go

    (table,) = tables(plan)
    assert (table["key"], table["access_type"]) == (index, "ref"), plan
    assert table["r_loops"] == 1 and table["r_rows"] == LIMIT, plan
    assert "filesort" not in json.dumps(plan), plan  # the index's order is the claim's


def test_finishes_and_renewals_find_their_jobs_by_primary_key(crowded_app: SQLQueue) -> None:
    store = crowded_app.store
    taken = store.claim_jobs(LIMIT, None, "w1", lease=30)
    takes = [(job.id, job.attempts) for job in taken]
    ran = record_statements(crowded_app)

    assert store.extend_leases(takes, lease=60) == set(takes)
    assert store.record_outcomes(
        [(take, Outcome.succeeded(json.dumps(n))) for n, take in enumerate(takes)]
    ) == set(takes)

    assert len(ran) >= 6, ran  # for each: find, lock, change, answer
    with crowded_app.engine.connect() as conn:
        for statement in ran:
            plan = json.loads(conn.exec_driver_sql(f"EXPLAIN FORMAT=JSON {statement}").scalar_one())
            for table in tables(plan):
                if table.get("table_function") == "json_table":
                    continue  # the statement's own rows (a batch of outcomes), not a table
                assert table.get("key") == "PRIMARY", (statement, plan)
                assert table["rows"] <= LIMIT, (statement, plan)


def record_statements(app: SQLQueue) -> list[str]:
    """The statements the app's engine runs from now on that read or change jobs, with their
    values in place (the first row's, for one run over many rows)."""
    ran: list[str] = []

    def before(_conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "sqlqueue_jobs" in statement and statement.lstrip().startswith(("SELECT", "UPDATE")):
            many = isinstance(parameters, list)
            ran.append(cursor.mogrify(statement, parameters[0] if many else parameters))

    event.listen(app.engine, "before_cursor_execute", before)
    return ran
