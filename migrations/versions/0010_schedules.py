"""Periodic tasks: ``sqlqueue_schedules``, one row per periodic task, the latest tick taken.

A scheduler sends a tick's job only if its statement moves ``last_tick`` forward, in the
transaction that writes the job: each tick is sent once, however many schedulers run, and no
lock outlives a transaction. A new table: nothing else changes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JobId = sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "sqlqueue_schedules",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("task_name", sa.String(200), nullable=False),
        sa.Column("last_tick", sa.DateTime(timezone=True), nullable=False),
        sa.Column("job_id", JobId),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("name", name="pk_sqlqueue_schedules"),
    )


def downgrade() -> None:
    op.drop_table("sqlqueue_schedules")
