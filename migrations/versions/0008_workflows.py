"""Workflows: steps that wait for others, and the columns that tie a workflow together.

- The status CHECK admits ``WAITING``: a workflow's step stored with the rest of its workflow
  but never claimed until the jobs before it release it (``sqlqueue.plans``). It is neither
  ready nor finished, so neither the claim's indexes nor pruning's hold it.
- ``waiting_for``, ``prerequisites`` and ``feed``: how many jobs a waiting step still waits
  for, which (in the order their results are passed on) and what it receives from them;
  ``dependents`` and ``errbacks``: the jobs a job's success, or its failure, releases.
  Releasing counts down ``waiting_for`` under the waiting row's lock, in the transaction that
  records the prerequisite's outcome.
- ``workflow_id``, ``parent_id``, ``group_id``, ``group_index`` and, on a group's first job,
  ``group_members``: what ``AsyncResult.parent``,
  ``GroupResult.restore`` and the revoke of a whole workflow read, with an index each for
  the workflow's jobs not yet started and for the group (partial: plain jobs never enter them).

Adding nullable columns rewrites nothing on PostgreSQL. On SQLite the new CHECK rebuilds the
table (alembic's batch mode), which needs a live database: ``alembic upgrade --sql`` stops
here with a message; run ``sqlqueue migrate`` instead.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import runpy
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_0007 = runpy.run_path(str(Path(__file__).with_name("0007_chosen_ids_progress_and_states.py")))
STATUSES = _0007["STATUSES"] + _0007["NEW_STATUSES"]
FINISHED = _0007["FINISHED"] + _0007["NEW_STATUSES"]
TEXT_ID = _0007["TEXT_ID"]
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

COLUMNS = (
    ("workflow_id", TEXT_ID),
    ("parent_id", TEXT_ID),
    ("group_id", TEXT_ID),
    ("group_index", sa.Integer()),
    ("group_members", JSON),
    ("waiting_for", sa.Integer()),
    ("prerequisites", JSON),
    ("feed", sa.String(16)),
    ("dependents", JSON),
    ("errbacks", JSON),
)

INDEXES = {
    "ix_sqlqueue_jobs_workflow": (
        ["workflow_id"],
        "workflow_id IS NOT NULL AND status IN ('WAITING', 'PENDING', 'RETRY')",
    ),
    "ix_sqlqueue_jobs_group": (["group_id"], "group_index = 0"),
}


def upgrade() -> None:
    sqlite = op.get_context().dialect.name == "sqlite"
    if sqlite and op.get_context().as_sql:
        raise RuntimeError(
            "Revision 0008 rebuilds the sqlqueue_jobs table on SQLite, which alembic can only "
            "do on a live database: run `sqlqueue migrate` (or alembic without --sql)."
        )
    with op.batch_alter_table("sqlqueue_jobs") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_))
    _0007["_set_statuses"](STATUSES + ", 'WAITING'", FINISHED)
    if sqlite:
        _0007["_restore_descending_priority"]()
    for name, (columns, where) in INDEXES.items():
        op.create_index(
            name,
            "sqlqueue_jobs",
            columns,
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(where),
        )


def downgrade() -> None:
    if op.get_context().as_sql:
        raise RuntimeError("Revision 0008 is undone on a live database only: run it without --sql.")
    waiting = (
        op.get_bind()
        .execute(sa.text("SELECT count(*) FROM sqlqueue_jobs WHERE status = 'WAITING'"))
        .scalar()
    )
    if waiting:
        raise RuntimeError(
            f"{waiting} workflow steps are WAITING, a state revision 0007 cannot hold; let "
            "their workflows finish, or revoke them, before downgrading."
        )
    for name in reversed(INDEXES):
        op.drop_index(name, table_name="sqlqueue_jobs")
    _0007["_set_statuses"](STATUSES, FINISHED)
    with op.batch_alter_table("sqlqueue_jobs") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
    if op.get_context().dialect.name == "sqlite":
        _0007["_restore_descending_priority"]()
