"""Rate limits and concurrency limits (docs/limits.md).

- Three nullable columns on ``sqlqueue_jobs``, written when a limited task's job is sent:
  ``limit_key`` (its task's name and concurrency key: the group its limit counts in),
  ``concurrency_limit`` and ``rate_interval`` (seconds between two starts of its task).
- The claim's two ready indexes hold only the jobs without limits (``limit_key IS NULL``);
  ``ix_sqlqueue_jobs_limited`` holds the ready limited jobs by group, in claim order within
  each, and ``ix_sqlqueue_jobs_limited_running`` the running ones by group, which a claim
  counts. A backlog held back by a limit is in neither of the first two: the claim of other
  jobs never walks past it.
- ``sqlqueue_rate_limits``: one token bucket per rate-limited task, kept as two times.
- On PostgreSQL the claim function takes the limited jobs first, group by group (see
  ``CLAIM``), then the others as before.

Building the two ready indexes again reads the ready jobs once: with a large backlog, run
this when the queue may pause for that long.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

import runpy
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READY = "status IN ('PENDING', 'RETRY')"
UNLIMITED_READY = f"{READY} AND limit_key IS NULL"
LIMITED_READY = f"{READY} AND limit_key IS NOT NULL"
LIMITED_RUNNING = "status = 'STARTED' AND limit_key IS NOT NULL"
CLAIM_ORDER = [sa.text("priority DESC"), "scheduled_at", "id"]

READY_INDEXES = {
    "ix_sqlqueue_jobs_ready": CLAIM_ORDER,
    "ix_sqlqueue_jobs_ready_in_queue": ["queue", *CLAIM_ORDER],
}

REVISION_0006 = "0006_queue_and_schedule_indexes.py"
"""The file holding the claim function this revision replaces (as 0007 made it again)."""

# The limited jobs come first: few (their limits bound them), and each group's are found by
# one probe. Groups are visited in key order, so every claim takes its locks in one order
# and two claims never wait for each other in a cycle: a task's bucket row (FOR UPDATE),
# then each of its groups (an advisory lock on the key, held to the commit). Under the
# group's lock the claim counts the group's running jobs, those STARTED whose lease has not
# run out, with a snapshot taken after the lock: a claim of the same group that committed
# meanwhile is counted, and one still open holds the lock (rows become visible at commit,
# so counting alone would not do). A killed worker's jobs stop counting when their leases
# run out. A group that may start nothing is skipped; a task whose bucket is empty, with
# all of its groups. The time until the bucket next holds a job is kept beside it, for an
# idle worker to sleep until (``next_at``). Groups are found whatever their queue, and a
# worker given queues looks for its queues' jobs only in a group its limits let start one:
# a held backlog in another queue costs it one probe, not a walk through the backlog.
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
    candidates text[];
    tried text[] := '{}';
    taken integer := 0;
    now_taken integer;
    after_key text := '';
    head record;
    room integer;
    running integer;
    bucket_full timestamptz;
    burst integer;
    tokens integer;
    bucket_task text;
BEGIN
    LOOP
        EXIT WHEN taken >= max_jobs;
        SELECT limit_key, task_name, concurrency_limit, rate_interval INTO head
        FROM sqlqueue_jobs
        WHERE status IN ('PENDING', 'RETRY') AND limit_key IS NOT NULL
          AND limit_key > after_key
          AND scheduled_at <= statement_timestamp()
          AND (expires_at IS NULL OR expires_at > statement_timestamp())
        ORDER BY limit_key
        LIMIT 1;
        EXIT WHEN NOT FOUND;
        after_key := head.limit_key;
        room := max_jobs - taken;
        IF head.rate_interval IS NOT NULL THEN
            IF bucket_task IS DISTINCT FROM head.task_name THEN
                INSERT INTO sqlqueue_rate_limits (task_name, full_at, next_at)
                VALUES (head.task_name, statement_timestamp(), statement_timestamp())
                ON CONFLICT (task_name) DO NOTHING;
                bucket_task := head.task_name;
            END IF;
            SELECT full_at INTO bucket_full FROM sqlqueue_rate_limits
            WHERE task_name = head.task_name FOR UPDATE;
            burst := greatest(1, floor(0.1 / head.rate_interval))::integer;
            tokens := floor(burst - extract(epoch FROM greatest(bucket_full, statement_timestamp())
                                            - statement_timestamp()) / head.rate_interval)::integer;
            IF tokens < 1 THEN
                -- Past every group of this task: their keys all lie below its name and a space.
                after_key := head.task_name || ' ';
                CONTINUE;
            END IF;
            room := least(room, tokens);
        END IF;
        IF head.concurrency_limit IS NOT NULL THEN
            PERFORM pg_advisory_xact_lock(hashtextextended('sqlqueue:' || head.limit_key, 0));
            SELECT count(*) INTO running FROM sqlqueue_jobs
            WHERE limit_key = head.limit_key AND status = 'STARTED' AND limit_key IS NOT NULL
              AND lease_expires_at > statement_timestamp();
            room := least(room, head.concurrency_limit - running);
            CONTINUE WHEN room < 1;
        END IF;
        RETURN QUERY
        WITH ready AS (
            SELECT id FROM sqlqueue_jobs
            WHERE limit_key = head.limit_key
              AND status IN ('PENDING', 'RETRY') AND limit_key IS NOT NULL
              AND scheduled_at <= statement_timestamp()
              AND (expires_at IS NULL OR expires_at > statement_timestamp())
              AND (queues IS NULL OR queue = ANY (queues))
            ORDER BY limit_key, priority DESC, scheduled_at, id
            LIMIT room
            FOR UPDATE SKIP LOCKED
        )
        UPDATE sqlqueue_jobs AS job
        SET status = 'STARTED', attempts = job.attempts + 1, started_at = statement_timestamp(),
            lease_expires_at = statement_timestamp() + lease_seconds * interval '1 second',
            worker_id = worker
        FROM ready WHERE job.id = ready.id
        RETURNING job.*;
        GET DIAGNOSTICS now_taken = ROW_COUNT;
        taken := taken + now_taken;
        IF head.rate_interval IS NOT NULL AND now_taken > 0 THEN
            bucket_full := greatest(bucket_full, statement_timestamp())
                           + now_taken * head.rate_interval * interval '1 second';
            UPDATE sqlqueue_rate_limits
            SET full_at = bucket_full,
                next_at = bucket_full - (burst - 1) * head.rate_interval * interval '1 second'
            WHERE task_name = head.task_name;
        END IF;
    END LOOP;
    IF taken >= max_jobs THEN
        RETURN;
    END IF;
    IF queues IS NULL THEN
        RETURN QUERY
        WITH ready AS (
            SELECT id FROM sqlqueue_jobs
            WHERE status IN ('PENDING', 'RETRY') AND limit_key IS NULL
              AND scheduled_at <= statement_timestamp()
              AND (expires_at IS NULL OR expires_at > statement_timestamp())
            ORDER BY priority DESC, scheduled_at, id
            LIMIT max_jobs - taken
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
                  AND status IN ('PENDING', 'RETRY') AND limit_key IS NULL
                  AND scheduled_at <= statement_timestamp()
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


def upgrade() -> None:
    op.add_column("sqlqueue_jobs", sa.Column("limit_key", _key_type()))
    op.add_column("sqlqueue_jobs", sa.Column("concurrency_limit", sa.Integer))
    op.add_column("sqlqueue_jobs", sa.Column("rate_interval", sa.Float))
    _ready_indexes(UNLIMITED_READY)
    op.create_index(
        "ix_sqlqueue_jobs_limited",
        "sqlqueue_jobs",
        ["limit_key", *CLAIM_ORDER],
        postgresql_where=sa.text(LIMITED_READY),
        sqlite_where=sa.text(LIMITED_READY),
    )
    op.create_index(
        "ix_sqlqueue_jobs_limited_running",
        "sqlqueue_jobs",
        ["limit_key"],
        postgresql_where=sa.text(LIMITED_RUNNING),
        sqlite_where=sa.text(LIMITED_RUNNING),
    )
    op.create_table(
        "sqlqueue_rate_limits",
        sa.Column("task_name", sa.String(200), nullable=False),
        sa.Column("full_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("task_name", name="pk_sqlqueue_rate_limits"),
    )
    if op.get_context().dialect.name == "postgresql":
        op.execute(CLAIM)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        # 0006's claim, as 0007 made it again (its id arrays text[]).
        claim: str = runpy.run_path(str(Path(__file__).with_name(REVISION_0006)))["CLAIM"]
        for variable in ("candidates", "tried"):
            claim = claim.replace(f"{variable} uuid[]", f"{variable} text[]")
        op.execute(claim)
    op.drop_table("sqlqueue_rate_limits")
    op.drop_index("ix_sqlqueue_jobs_limited_running", table_name="sqlqueue_jobs")
    op.drop_index("ix_sqlqueue_jobs_limited", table_name="sqlqueue_jobs")
    _ready_indexes(READY)
    op.drop_column("sqlqueue_jobs", "rate_interval")
    op.drop_column("sqlqueue_jobs", "concurrency_limit")
    op.drop_column("sqlqueue_jobs", "limit_key")


def _ready_indexes(where: str) -> None:
    """Build the claim's two ready indexes again, holding the ready jobs ``where`` says."""
    for name, columns in READY_INDEXES.items():
        op.drop_index(name, table_name="sqlqueue_jobs")
        op.create_index(
            name,
            "sqlqueue_jobs",
            columns,
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(where),
        )


def _key_type() -> sa.types.TypeEngine[str]:
    """Text compared byte by byte, as the ids are: a claim walks the keys in that order."""
    return sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql")
