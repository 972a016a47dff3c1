"""MySQL and MariaDB: the forms the table takes there (nothing changes on PostgreSQL or SQLite).

Revisions 0001-0012 run on MySQL only on a new database, in one go (this revision is the
first that supports it), and leave there what they create elsewhere, but for three things
MySQL lacks or does otherwise, which this revision puts right:

- Times: ``DATETIME`` keeps whole seconds; they become ``DATETIME(6)`` (UTC, microseconds).
- Job ids: compared byte by byte (``utf8mb4_bin``), as PostgreSQL's "C" collation does; the
  default collation would find "a" and "A" to be one id.
- Partial indexes: MySQL has none, so each index 0001-0012 made with a predicate holds every
  job there. That is only wasteful for most, but wrong for two: the claim's indexes must hold
  the ready jobs first (InnoDB locks every index record a locking read scans), and the
  unique index must hold only unfinished jobs (else a finished job keeps its key forever).
  Two stored generated columns take the predicates' place: ``claim_ready`` (1 for a ready
  job without limits, else NULL) leads the claim's indexes, and ``unique_unfinished`` (the
  key of an unfinished job, else NULL, which a unique index never finds in conflict) holds
  the unique index.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMES = {
    "sqlqueue_jobs": (
        ("scheduled_at", "NOT NULL"),
        ("created_at", "NOT NULL"),
        ("started_at", "NULL"),
        ("finished_at", "NULL"),
        ("lease_expires_at", "NULL"),
        ("expires_at", "NULL"),
    ),
    "sqlqueue_rate_limits": (("full_at", "NOT NULL"), ("next_at", "NOT NULL")),
    "sqlqueue_schedules": (("last_tick", "NOT NULL"), ("sent_at", "NULL")),
    "sqlqueue_workers": (("started_at", "NOT NULL"), ("last_seen_at", "NOT NULL")),
}

IDS = {
    "sqlqueue_jobs": (
        ("id", "NOT NULL"),
        ("workflow_id", "NULL"),
        ("parent_id", "NULL"),
        ("group_id", "NULL"),
        ("limit_key", "NULL"),
    ),
    "sqlqueue_schedules": (("job_id", "NULL"),),
}

CLAIM_READY = (
    "claim_ready TINYINT AS "
    "(CASE WHEN status IN ('PENDING', 'RETRY') AND limit_key IS NULL THEN 1 END) STORED"
)
UNIQUE_UNFINISHED = (
    "unique_unfinished VARCHAR(255) AS (CASE WHEN status IN "
    "('WAITING', 'PENDING', 'RETRY', 'STARTED') THEN unique_key END) STORED"
)

UPGRADE = [
    *(
        f"ALTER TABLE {table} "
        + ", ".join(f"MODIFY {column} DATETIME(6) {null}" for column, null in columns)
        for table, columns in TIMES.items()
    ),
    *(
        f"ALTER TABLE {table} "
        + ", ".join(
            f"MODIFY {column} VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin {null}"
            for column, null in columns
        )
        for table, columns in IDS.items()
    ),
    "ALTER TABLE sqlqueue_jobs DROP INDEX ix_sqlqueue_jobs_ready, "
    "DROP INDEX ix_sqlqueue_jobs_ready_in_queue, DROP INDEX ix_sqlqueue_jobs_unique, "
    f"ADD COLUMN {CLAIM_READY}, ADD COLUMN {UNIQUE_UNFINISHED}",
    "CREATE INDEX ix_sqlqueue_jobs_claim "
    "ON sqlqueue_jobs (claim_ready, priority DESC, scheduled_at, id)",
    "CREATE INDEX ix_sqlqueue_jobs_claim_in_queue "
    "ON sqlqueue_jobs (claim_ready, queue, priority DESC, scheduled_at, id)",
    "CREATE UNIQUE INDEX ix_sqlqueue_jobs_unique ON sqlqueue_jobs (unique_unfinished)",
]


def upgrade() -> None:
    if _on_mysql():
        for statement in UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    # No sqlqueue before this revision runs on MySQL: there is nothing to go back to.
    if _on_mysql():
        raise RuntimeError(
            "sqlqueue supports MySQL and MariaDB from revision 0013 on: a MySQL database "
            "cannot go below it (drop the sqlqueue_ tables instead)."
        )


def _on_mysql() -> bool:
    return op.get_context().dialect.name in ("mysql", "mariadb")
