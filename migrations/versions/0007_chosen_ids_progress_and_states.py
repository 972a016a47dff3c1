"""Job ids a caller chooses, a task's progress, and Celery's REJECTED and IGNORED states.

- ``id`` becomes text (``VARCHAR(255)``), because Celery's ``apply_async(task_id="order-42")``
  lets a caller choose a job's id, and such ids are rarely UUIDs. The ids sqlqueue makes stay
  UUIDs in their canonical text form. On PostgreSQL the column's collation is ``"C"``: ids are
  compared byte by byte, as UUIDs were, whatever the database's locale. SQLite stored UUIDs
  as 32 hex digits; they are rewritten in the canonical form, so the id a caller holds finds
  its job. PostgreSQL rewrites the table and its indexes: on a big table, run this when the
  queue may pause for that long.
- ``progress``: what a running task last said of itself with ``update_state`` (its state and
  meta, as JSON), read by ``AsyncResult.state`` and ``.info`` from any process.
- The status CHECK admits ``REJECTED`` (``raise Reject()``) and ``IGNORED`` (``raise
  Ignore()``), both finished states, so the index pruning reads gains them too.

The claim function of 0006 declared its id arrays ``uuid[]``; it is made again from 0006's text
with ``text[]`` (PL/pgSQL bodies are not checked against the table until they run).

On SQLite the table is rebuilt (alembic's batch mode), which needs the live database to read
the table from: ``alembic upgrade --sql`` (offline) stops here with a message; run ``sqlqueue
migrate`` instead.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import runpy
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


STATUSES = "'PENDING', 'STARTED', 'RETRY', 'SUCCESS', 'FAILURE', 'REVOKED'"
FINISHED = "'SUCCESS', 'FAILURE', 'REVOKED'"
NEW_STATUSES = ", 'REJECTED', 'IGNORED'"

REVISION_0006 = "0006_queue_and_schedule_indexes.py"
"""The file holding the claim function's text this revision changes."""

TEXT_ID = sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql")
UUID_ID = sa.Uuid(as_uuid=False)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# SQLite kept a UUID as 32 hex digits: dashes go in at 8, 12, 16 and 20.
SQLITE_CANONICAL_IDS = """
UPDATE sqlqueue_jobs
SET id = substr(id, 1, 8) || '-' || substr(id, 9, 4) || '-' || substr(id, 13, 4) || '-'
         || substr(id, 17, 4) || '-' || substr(id, 21, 12)
WHERE length(id) = 32 AND id NOT GLOB '*[^0-9a-f]*'
"""
SQLITE_HEX_IDS = """
UPDATE sqlqueue_jobs SET id = replace(id, '-', '')
WHERE length(id) = 36 AND replace(id, '-', '') NOT GLOB '*[^0-9a-f]*'
"""


_HEX = "[0-9a-f]"
_IS_UUID = {
    "postgresql": f"id ~ '^{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}$'",
    "sqlite": f"id GLOB '{'-'.join(_HEX * n for n in (8, 4, 4, 4, 12))}'",
}
"""Whether a job's id is a UUID in canonical form, the only ids 0006's column holds."""


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite" and op.get_context().as_sql:
        raise RuntimeError(
            "Revision 0007 rebuilds the sqlqueue_jobs table on SQLite, which alembic can only "
            "do on a live database: run `sqlqueue migrate` (or alembic without --sql)."
        )
    _set_statuses(STATUSES + NEW_STATUSES, FINISHED + NEW_STATUSES)
    postgres = op.get_context().dialect.name == "postgresql"
    with op.batch_alter_table("sqlqueue_jobs") as batch:
        if postgres:
            batch.alter_column(
                "id", type_=TEXT_ID, existing_nullable=False, postgresql_using="id::text"
            )
        else:
            batch.alter_column("id", type_=TEXT_ID, existing_nullable=False)
        batch.add_column(sa.Column("progress", JSON))
    if postgres:
        _rewrite_claim("text[]")
    elif op.get_context().dialect.name == "sqlite":
        _restore_descending_priority()
        op.execute(SQLITE_CANONICAL_IDS)
    # MySQL and MariaDB reach this revision only on a new database (0013), with no ids to fix.


def downgrade() -> None:
    # Jobs with a caller's id, or in a new state, cannot go back: refuse before changing anything.
    dialect = op.get_context().dialect.name
    if op.get_context().as_sql:
        raise RuntimeError("Revision 0007 is undone on a live database only: run it without --sql.")
    kept = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT count(*) FROM sqlqueue_jobs "  # noqa: S608 (constants, no input)
                f"WHERE status IN ('REJECTED', 'IGNORED') OR NOT ({_IS_UUID[dialect]})"
            )
        )
        .scalar()
    )
    if kept:
        raise RuntimeError(
            f"{kept} jobs have a caller-chosen id or a REJECTED or IGNORED status, which "
            "revision 0006 cannot hold; delete them (or prune) before downgrading."
        )
    postgres = op.get_context().dialect.name == "postgresql"
    if postgres:
        _rewrite_claim("uuid[]")
    else:
        op.execute(SQLITE_HEX_IDS)
    with op.batch_alter_table("sqlqueue_jobs") as batch:
        batch.drop_column("progress")
        if postgres:
            batch.alter_column(
                "id", type_=UUID_ID, existing_nullable=False, postgresql_using="id::uuid"
            )
        else:
            batch.alter_column("id", type_=UUID_ID, existing_nullable=False)
    if not postgres:
        _restore_descending_priority()
    _set_statuses(STATUSES, FINISHED)


def _set_statuses(statuses: str, finished: str) -> None:
    with op.batch_alter_table("sqlqueue_jobs") as batch:
        batch.drop_constraint(op.f("ck_sqlqueue_jobs_status"), type_="check")
        batch.create_check_constraint(
            op.f("ck_sqlqueue_jobs_status"), sa.text(f"status IN ({statuses})")
        )
    op.drop_index("ix_sqlqueue_jobs_finished", table_name="sqlqueue_jobs")
    where = sa.text(f"status IN ({finished})")
    op.create_index(
        "ix_sqlqueue_jobs_finished",
        "sqlqueue_jobs",
        ["finished_at"],
        postgresql_where=where,
        sqlite_where=where,
    )


def _restore_descending_priority() -> None:
    """SQLite's rebuilt table gets its indexes back from reflection, which loses ``DESC``; the
    claim's two indexes need it to be read in the claim's order."""
    ready = sa.text("status IN ('PENDING', 'RETRY')")
    claim_order = [sa.text("priority DESC"), "scheduled_at", "id"]
    for name, columns in (
        ("ix_sqlqueue_jobs_ready", claim_order),
        ("ix_sqlqueue_jobs_ready_in_queue", ["queue", *claim_order]),
    ):
        op.drop_index(name, table_name="sqlqueue_jobs")
        op.create_index(name, "sqlqueue_jobs", columns, sqlite_where=ready)


def _rewrite_claim(new: str) -> None:
    """Make 0006's claim again, its two id arrays (``candidates``, ``tried``) of type ``new``."""
    claim: str = runpy.run_path(str(Path(__file__).with_name(REVISION_0006)))["CLAIM"]
    for variable in ("candidates", "tried"):
        claim = claim.replace(f"{variable} uuid[]", f"{variable} {new}")
    op.execute(claim)
