"""Vacuum the jobs table early and often (PostgreSQL).

Every job leaves dead row versions behind: taking it, renewing its lease and recording its
outcome each write a new version, and none of these updates can be HOT, because they change
columns the partial indexes are defined on. Until vacuum removes them, the dead versions of
jobs that were ready stay in the ready index, and every claim walks over them. PostgreSQL's
default waits for dead rows to reach a fifth of the table, which on a table holding a
million finished jobs is two hundred thousand; these settings vacuum after about one percent,
and without the cost-based pauses that would make it lag a busy queue.

SQLite has no vacuum of this kind; the revision does nothing there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SETTINGS = {
    "autovacuum_vacuum_scale_factor": "0.01",
    "autovacuum_vacuum_threshold": "1000",
    "autovacuum_vacuum_insert_scale_factor": "0.01",
    "autovacuum_analyze_scale_factor": "0.02",
    "autovacuum_vacuum_cost_delay": "0",
}


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    values = ", ".join(f"{name} = {value}" for name, value in SETTINGS.items())
    op.execute(f"ALTER TABLE sqlqueue_jobs SET ({values})")


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE sqlqueue_jobs RESET ({', '.join(SETTINGS)})")
