"""Create the jobs table.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
READY = sa.text("status IN ('PENDING', 'RETRY')")
LEASED = sa.text("status = 'STARTED'")


def upgrade() -> None:
    op.create_table(
        "sqlqueue_jobs",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("task_name", sa.String(200), nullable=False),
        sa.Column("queue", sa.String(200), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("args", JSON, nullable=False),
        sa.Column("kwargs", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("retries", sa.Integer(), server_default="0", nullable=False),
        sa.Column("expired_leases", sa.Integer(), server_default="0", nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
        sa.Column("worker_id", sa.String(255)),
        sa.Column("result", JSON),
        sa.Column("error_type", sa.String(255)),
        sa.Column("error_message", sa.Text()),
        sa.Column("traceback", sa.Text()),
        sa.CheckConstraint(
            "status IN ('PENDING', 'STARTED', 'RETRY', 'SUCCESS', 'FAILURE', 'REVOKED')",
            name=op.f("ck_sqlqueue_jobs_status"),
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sqlqueue_jobs"),
    )
    op.create_index(
        "ix_sqlqueue_jobs_ready",
        "sqlqueue_jobs",
        [sa.text("priority DESC"), "scheduled_at", "id"],
        postgresql_where=READY,
        sqlite_where=READY,
    )
    op.create_index(
        "ix_sqlqueue_jobs_leased",
        "sqlqueue_jobs",
        ["lease_expires_at"],
        postgresql_where=LEASED,
        sqlite_where=LEASED,
    )


def downgrade() -> None:
    op.drop_index("ix_sqlqueue_jobs_leased", table_name="sqlqueue_jobs")
    op.drop_index("ix_sqlqueue_jobs_ready", table_name="sqlqueue_jobs")
    op.drop_table("sqlqueue_jobs")
