"""What the statements of ``mysql``, ``mysql_workflows`` and ``mysql_limits`` share, in a
module of its own: ``mysql`` imports the other two, which cannot import it back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sqlqueue.schema import Timestamp, jobs

KEY_TYPE = "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
"""Ids and keys as the table stores them (migrations 0013, 0014): compared byte by byte."""

UTC_NOW: sa.ColumnElement[datetime] = sa.literal_column("UTC_TIMESTAMP(6)", Timestamp)
"""The database's clock, in UTC, to the microsecond, as DATETIME(6) stores times."""


def with_index(statement: sa.Select[Any], index: str) -> sa.Select[Any]:
    """``statement`` reading ``sqlqueue_jobs`` through ``index``, whatever the optimizer
    would choose: the index decides which rows a locking read locks."""
    hint = f"FORCE INDEX ({index})"
    return statement.with_hint(jobs, hint, "mysql").with_hint(jobs, hint, "mariadb")
