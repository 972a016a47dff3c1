"""The claim as a function that always walks the ready index in order (PostgreSQL).

The claim wants the first N ready jobs in (priority DESC, scheduled_at, id) order, which the
partial ready index holds in exactly that order: an index scan that stops after N rows. But
the planner chooses from statistics, and a queue's statistics are nearly always stale: taken
when few jobs were ready, they make it expect a handful of rows, and it picks a bitmap scan
of every ready row and a sort: a cost that grows with the backlog, paid by every claim until
the next ANALYZE, which is exactly when a backlog needs draining (docs/benchmarks.md). The function's SET clauses take those two plans off the table for the claim alone;
nothing else in the session is affected.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# statement_timestamp() is the calling statement's, as everywhere in sqlqueue.
CREATE = """
CREATE FUNCTION sqlqueue_claim(max_jobs integer, lease_seconds double precision,
                               worker text, queues text[])
RETURNS SETOF sqlqueue_jobs
LANGUAGE sql
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
    WITH ready AS (
        SELECT id FROM sqlqueue_jobs
        WHERE status IN ('PENDING', 'RETRY') AND scheduled_at <= statement_timestamp()
          AND (expires_at IS NULL OR expires_at > statement_timestamp())
          AND (queues IS NULL OR queue = ANY (queues))
        ORDER BY priority DESC, scheduled_at, id
        LIMIT max_jobs
        FOR UPDATE SKIP LOCKED
    )
    UPDATE sqlqueue_jobs AS job
    SET status = 'STARTED', attempts = job.attempts + 1, started_at = statement_timestamp(),
        lease_expires_at = statement_timestamp() + lease_seconds * interval '1 second',
        worker_id = worker
    FROM ready WHERE job.id = ready.id
    RETURNING job.*
$$
"""


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(CREATE)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION sqlqueue_claim(integer, double precision, text, text[])")
