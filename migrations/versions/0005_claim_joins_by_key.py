"""The claim updates its jobs by primary key, whatever the statistics say (PostgreSQL).

0004's claim finds its jobs in the ready index and then updates them through a join on the
job id. The claim's size is a parameter, so the planner guesses a tenth of the ready rows;
with a backlog of a few thousand jobs that guess makes hashing the whole table look cheaper
than one primary-key lookup per job, and every claim read every row, at a cost that grows
with the table (docs/benchmarks.md). A claim's jobs are
few by design (no more than a worker's free slots), so the join is always a nested loop over
the primary key; the new SET clauses leave the planner no other choice, for the claim alone.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLAIM = "sqlqueue_claim(integer, double precision, text, text[])"


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"ALTER FUNCTION {CLAIM} SET enable_hashjoin = off")
        op.execute(f"ALTER FUNCTION {CLAIM} SET enable_mergejoin = off")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"ALTER FUNCTION {CLAIM} RESET enable_hashjoin")
        op.execute(f"ALTER FUNCTION {CLAIM} RESET enable_mergejoin")
