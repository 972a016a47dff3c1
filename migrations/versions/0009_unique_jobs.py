"""Unique jobs: a ``unique_key`` column, held by at most one unfinished job.

The partial unique index covers exactly the unfinished statuses (WAITING, PENDING, RETRY,
STARTED): a job moving among them keeps its one entry, and a finished job leaves it, which
frees its key. Adding a nullable column rewrites nothing on PostgreSQL, and on SQLite it is
a plain ``ALTER TABLE ... ADD COLUMN``; the index is empty until keys are sent.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_sqlqueue_jobs_unique"
UNFINISHED = "status IN ('WAITING', 'PENDING', 'RETRY', 'STARTED')"


def upgrade() -> None:
    op.add_column("sqlqueue_jobs", sa.Column("unique_key", sa.String(255)))
    op.create_index(
        INDEX,
        "sqlqueue_jobs",
        ["unique_key"],
        unique=True,
        postgresql_where=sa.text(UNFINISHED),
        sqlite_where=sa.text(UNFINISHED),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="sqlqueue_jobs")
    # SQLite (3.35 and later) drops a column in place, as PostgreSQL does.
    op.drop_column("sqlqueue_jobs", "unique_key")
