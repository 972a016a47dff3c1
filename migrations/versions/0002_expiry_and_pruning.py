"""Jobs that expire before they start, and an index for pruning finished jobs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FINISHED = sa.text("status IN ('SUCCESS', 'FAILURE', 'REVOKED')")


def upgrade() -> None:
    with op.batch_alter_table("sqlqueue_jobs") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_sqlqueue_jobs_finished",
        "sqlqueue_jobs",
        ["finished_at"],
        postgresql_where=FINISHED,
        sqlite_where=FINISHED,
    )


def downgrade() -> None:
    op.drop_index("ix_sqlqueue_jobs_finished", table_name="sqlqueue_jobs")
    with op.batch_alter_table("sqlqueue_jobs") as batch:
        batch.drop_column("expires_at")
