"""Indexes for workers given queues, for the next due time and for expiry; a claim per queue.

Three statements read every ready job until now. A worker given queues (``--queues rare``)
claimed by walking the ready index in priority order and skipping the other queues' jobs:
behind a backlog in another queue, every claim read all of it. An idle worker asked
when the next job is due with a scan of every ready job, and the expiry pass did the same.

- ``ix_sqlqueue_jobs_ready_in_queue`` holds the ready jobs by queue, in claim order: a claim
  given queues reads the first jobs of each queue from it and takes the best.
- ``ix_sqlqueue_jobs_deferred`` and ``ix_sqlqueue_jobs_deferred_in_queue`` hold only the ready
  jobs that were deferred (``scheduled_at > created_at``: a countdown, an eta, a retry), the
  only ones that can wait for their time; the next due time is one probe, or one per queue.
  A job sent to run at once never enters them, so sends pay for them only when deferred.
- ``ix_sqlqueue_jobs_expiring`` holds the ready jobs sent with ``expires``, soonest first.

On PostgreSQL the claim function becomes PL/pgSQL, for three reasons. Given queues, it runs the
per-queue claim; without, the very statement of 0004, so that neither plan carries the other.
The per-queue claim is a loop: it chooses the best jobs still wanted from the first of each
queue, without locking them, then locks those no other claim holds (``SKIP LOCKED``, their
readiness checked again) and takes them; while it has fewer than asked and found any, it
chooses again past the ones it tried. Locking each queue's first jobs and keeping the best
would leave the others locked until the claim commits, for other claims to skip: a second
worker on the same queues would find nothing and sleep while they wait. And PL/pgSQL keeps
its plans for the session, where a SQL function plans its statement at every call.

The function keeps the settings of 0004 and 0005, which both of its claims need: the ready
jobs are read in index order (``enable_sort``, ``enable_bitmapscan``) and updated by primary
key (``enable_hashjoin``, ``enable_mergejoin``). Merging the queues' first jobs needs a sort
all the same, which ``enable_sort = off`` only makes look dear: dear enough to set off JIT
compilation at every claim, hence ``jit = off``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READY = "status IN ('PENDING', 'RETRY')"
DEFERRED = f"{READY} AND scheduled_at > created_at"
EXPIRING = f"{READY} AND expires_at IS NOT NULL"

INDEXES = {
    "ix_sqlqueue_jobs_ready_in_queue": (
        ["queue", sa.text("priority DESC"), "scheduled_at", "id"],
        READY,
    ),
    "ix_sqlqueue_jobs_deferred": (["scheduled_at"], DEFERRED),
    "ix_sqlqueue_jobs_deferred_in_queue": (["queue", "scheduled_at"], DEFERRED),
    "ix_sqlqueue_jobs_expiring": (["expires_at"], EXPIRING),
}

# statement_timestamp() is the calling statement's, as everywhere in sqlqueue: every statement
# of the function sees the same now.
CLAIM = """
CREATE OR REPLACE FUNCTION sqlqueue_claim(max_jobs integer, lease_seconds double precision,
                                          worker text, queues text[])
RETURNS SETOF sqlqueue_jobs
LANGUAGE plpgsql
SET enable_bitmapscan = off
SET enable_sort = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET jit = off
AS $$
DECLARE
    candidates uuid[];
    tried uuid[] := '{}';
    taken integer := 0;
    now_taken integer;
BEGIN
    IF queues IS NULL THEN
        RETURN QUERY
        WITH ready AS (
            SELECT id FROM sqlqueue_jobs
            WHERE status IN ('PENDING', 'RETRY') AND scheduled_at <= statement_timestamp()
              AND (expires_at IS NULL OR expires_at > statement_timestamp())
            ORDER BY priority DESC, scheduled_at, id
            LIMIT max_jobs
            FOR UPDATE SKIP LOCKED
        )
        UPDATE sqlqueue_jobs AS job
        SET status = 'STARTED', attempts = job.attempts + 1, started_at = statement_timestamp(),
            lease_expires_at = statement_timestamp() + lease_seconds * interval '1 second',
            worker_id = worker
        FROM ready WHERE job.id = ready.id
        RETURNING job.*;
        RETURN;
    END IF;
    -- Choose, without locking, the best jobs still wanted from the first of each queue; then
    -- lock and take those of them no other claim holds. A job another claim holds, or took
    -- meanwhile, is tried once: the next round chooses past it.
    LOOP
        SELECT array_agg(best.id) INTO candidates
        FROM (
            SELECT first.id
            FROM (SELECT DISTINCT unnest(queues) AS name) AS wanted
            CROSS JOIN LATERAL (
                SELECT id, priority, scheduled_at FROM sqlqueue_jobs
                -- A range, not "queue =": with an equality the planner drops queue from
                -- the order, and where its statistics call the queue big it may walk the
                -- ready index instead, through every other queue's jobs.
                WHERE queue >= wanted.name AND queue <= wanted.name
                  AND status IN ('PENDING', 'RETRY') AND scheduled_at <= statement_timestamp()
                  AND (expires_at IS NULL OR expires_at > statement_timestamp())
                  AND id <> ALL (tried)
                ORDER BY queue, priority DESC, scheduled_at, id
                LIMIT max_jobs - taken
            ) AS first
            ORDER BY first.priority DESC, first.scheduled_at, first.id
            LIMIT max_jobs - taken
        ) AS best;
        EXIT WHEN candidates IS NULL;
        tried := tried || candidates;
        RETURN QUERY
        WITH ready AS (
            -- One lookup by primary key per candidate: with "id = ANY (candidates)" the
            -- planner may prefer to read a ready index whole, as stale statistics make small.
            SELECT chosen.id
            FROM unnest(candidates) AS candidate (id)
            CROSS JOIN LATERAL (
                SELECT id FROM sqlqueue_jobs
                WHERE id = candidate.id
                  AND status IN ('PENDING', 'RETRY') AND scheduled_at <= statement_timestamp()
                  AND (expires_at IS NULL OR expires_at > statement_timestamp())
                FOR UPDATE SKIP LOCKED
            ) AS chosen
        )
        UPDATE sqlqueue_jobs AS job
        SET status = 'STARTED', attempts = job.attempts + 1, started_at = statement_timestamp(),
            lease_expires_at = statement_timestamp() + lease_seconds * interval '1 second',
            worker_id = worker
        FROM ready WHERE job.id = ready.id
        RETURNING job.*;
        GET DIAGNOSTICS now_taken = ROW_COUNT;
        taken := taken + now_taken;
        EXIT WHEN taken >= max_jobs;
    END LOOP;
END
$$
"""

PREVIOUS_CLAIM = """
CREATE OR REPLACE FUNCTION sqlqueue_claim(max_jobs integer, lease_seconds double precision,
                                          worker text, queues text[])
RETURNS SETOF sqlqueue_jobs
LANGUAGE sql
SET enable_bitmapscan = off
SET enable_sort = off
SET enable_hashjoin = off
SET enable_mergejoin = off
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
"""The claim as 0004 and 0005 left it, for the downgrade."""


def upgrade() -> None:
    for name, (columns, where) in INDEXES.items():
        op.create_index(
            name,
            "sqlqueue_jobs",
            columns,
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(where),
        )
    if op.get_context().dialect.name == "postgresql":
        op.execute(CLAIM)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(PREVIOUS_CLAIM)
    for name in reversed(INDEXES):
        op.drop_index(name, table_name="sqlqueue_jobs")
