"""MySQL and MariaDB: the forms limits need there (nothing changes on PostgreSQL or SQLite).

Revision 0012 made the limited jobs' two indexes with predicates, which MySQL drops: there
they hold every job, finished ones too, and the claim of limited jobs would walk the whole
history of a task's groups to find the next ready job. As 0013 did for the claim's indexes,
two stored generated columns take the predicates' place, each the job's ``limit_key`` while
the predicate holds and NULL otherwise:

- ``limited_ready`` (a ready job with limits) leads ``ix_sqlqueue_jobs_limited``, in claim
  order within each group, so a claim finds the next group with one probe and its first
  jobs in order;
- ``limited_running`` (a running job with limits) is ``ix_sqlqueue_jobs_limited_running``,
  which a claim counts.

Unique keys become ``utf8mb4_bin``, as ids and limit keys are (0013): the table's default
collation compares text without case or accents, and would find the keys "A" and "a" (the
calls ``f("A")`` and ``f("a")`` of a task with ``unique=True``) to be one. So do the names
of the rate limits' buckets: the tasks "t.A" and "t.a" would share one.

And a table PostgreSQL does without: ``sqlqueue_limit_groups``, one row per group of jobs
with a concurrency limit, which a claim locks before it counts the group's running jobs (the
row lock stands in for PostgreSQL's transaction-scoped advisory lock; MySQL's named locks
belong to the session, not the transaction, and would be held past the commit or lost).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
"""The type of ``limit_key`` on MySQL (0013): compared byte by byte, as the claim walks it."""

TASK_NAME = "VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
"""A rate limit's bucket's name, the task's: compared byte by byte."""

LIMITED_READY = (
    f"limited_ready {KEY} AS (CASE WHEN status IN ('PENDING', 'RETRY') THEN limit_key END) STORED"
)
LIMITED_RUNNING = (
    f"limited_running {KEY} AS (CASE WHEN status = 'STARTED' THEN limit_key END) STORED"
)

UNIQUE_UNFINISHED = (
    "unique_unfinished {} AS (CASE WHEN status IN "
    "('WAITING', 'PENDING', 'RETRY', 'STARTED') THEN unique_key END) STORED"
)
"""0013's column, of the type given."""


def unique_keys_of_type(key_type: str) -> str:
    """The unique key and its generated column made ``key_type``, in one ALTER: MySQL does
    all of it or nothing (the unique index is built again in the new collation)."""
    return (
        f"ALTER TABLE sqlqueue_jobs MODIFY unique_key {key_type} NULL, "
        f"MODIFY {UNIQUE_UNFINISHED.format(key_type)}"
    )


UPGRADE = [
    unique_keys_of_type(KEY),
    f"ALTER TABLE sqlqueue_rate_limits MODIFY task_name {TASK_NAME} NOT NULL",
    "ALTER TABLE sqlqueue_jobs DROP INDEX ix_sqlqueue_jobs_limited, "
    "DROP INDEX ix_sqlqueue_jobs_limited_running, "
    f"ADD COLUMN {LIMITED_READY}, ADD COLUMN {LIMITED_RUNNING}",
    "CREATE INDEX ix_sqlqueue_jobs_limited "
    "ON sqlqueue_jobs (limited_ready, priority DESC, scheduled_at, id)",
    "CREATE INDEX ix_sqlqueue_jobs_limited_running ON sqlqueue_jobs (limited_running)",
    f"CREATE TABLE sqlqueue_limit_groups (limit_key {KEY} NOT NULL, "
    "CONSTRAINT pk_sqlqueue_limit_groups PRIMARY KEY (limit_key)) ENGINE=InnoDB",
]

DOWNGRADE = [
    # MySQL commits each statement as it runs: the one that may fail comes first, and
    # changes nothing when it does. Unfinished jobs whose unique keys differ only in case
    # are one key in the collation the keys go back to: the unique index refuses them
    # (a duplicate entry); finish or revoke one of each, and downgrade again.
    unique_keys_of_type("VARCHAR(255)"),
    # Buckets of tasks whose names differ only in case would be one row there: all are
    # emptied (a claim makes a full one again, so each rate-limited task may start one burst
    # more than its rate).
    "DELETE FROM sqlqueue_rate_limits",
    "ALTER TABLE sqlqueue_rate_limits MODIFY task_name VARCHAR(200) NOT NULL",
    "DROP TABLE sqlqueue_limit_groups",
    "ALTER TABLE sqlqueue_jobs DROP INDEX ix_sqlqueue_jobs_limited, "
    "DROP INDEX ix_sqlqueue_jobs_limited_running, "
    "DROP COLUMN limited_ready, DROP COLUMN limited_running",
    # The two indexes as 0012 left them on MySQL: without their predicates.
    "CREATE INDEX ix_sqlqueue_jobs_limited "
    "ON sqlqueue_jobs (limit_key, priority DESC, scheduled_at, id)",
    "CREATE INDEX ix_sqlqueue_jobs_limited_running ON sqlqueue_jobs (limit_key)",
]


def upgrade() -> None:
    if _on_mysql():
        for statement in UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    if _on_mysql():
        for statement in DOWNGRADE:
            op.execute(statement)


def _on_mysql() -> bool:
    return op.get_context().dialect.name in ("mysql", "mariadb")
