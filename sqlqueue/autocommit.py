"""The autocommit path: statements that stand alone, sent straight through psycopg.

A statement atomic on its own (a send outside any transaction of the caller, a claim, a batch
of outcomes) needs no transaction around it. Where the dialect says so
(``Dialect.driver_autocommit``: PostgreSQL, whose driver is psycopg), ``JobStore`` sends such a
``DriverStatement`` in autocommit through the pooled psycopg connection itself: one round trip,
where BEGIN, statement and COMMIT are three, and no SQLAlchemy Connection around it, which cost
a good part of a send. A large send is a ``CopyStatement``: BEGIN, its three steps and
COMMIT, still on the psycopg connection alone. Errors are the driver's own; ``JobStore``
translates them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeGuard, cast

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from sqlalchemy.engine import Engine

from sqlqueue.dialects.base import CopyStatement, Dialect, DriverStatement, Statement, Take
from sqlqueue.jobs import Job


def goes_alone(statement: Statement, dialect: Dialect) -> TypeGuard[DriverStatement]:
    """Whether this statement takes the autocommit path."""
    return isinstance(statement, DriverStatement) and dialect.driver_autocommit


def execute_alone(engine: Engine, statement: DriverStatement) -> None:
    """Run a statement whose rows, if any, nobody reads (a send)."""
    with _autocommit_connection(engine) as driver:
        driver.execute(statement.sql, statement.params)


def fetch_rows_alone(engine: Engine, statement: DriverStatement) -> list[tuple[Any, ...]]:
    """Run a statement whose rows are read (a send of unique jobs)."""
    with _autocommit_connection(engine) as driver:
        return driver.execute(statement.sql, statement.params).fetchall()


def copy_alone(engine: Engine, statement: CopyStatement) -> None:
    """Run a ``CopyStatement`` (a large send) in a transaction of its own."""
    with _autocommit_connection(engine) as driver, driver.transaction():
        shared = driver.execute(statement.before.sql, statement.before.params).fetchone()
        copy_rest(driver, statement, cast(tuple[Any, ...], shared))


def copy_rest(
    driver: psycopg.Connection[Any], statement: CopyStatement, shared: Sequence[Any]
) -> None:
    """The COPY and ``after`` of a ``CopyStatement`` whose ``before`` returned ``shared``, in
    the connection's transaction (the caller's own, or one opened for them)."""
    with driver.cursor() as cursor:
        with cursor.copy(statement.copy) as copy:
            for chunk in statement.rows(shared):
                copy.write(chunk)
        cursor.execute(statement.after.sql, statement.after.params)


def fetch_jobs_alone(engine: Engine, statement: DriverStatement) -> list[Job]:
    """Run a statement that returns job rows (a claim), as Jobs."""
    # Binary rows and plain dicts: turning a claim's rows into Jobs was the largest part of
    # a busy worker's CPU, and these make it much cheaper (docs/benchmarks.md, "Drains").
    with _autocommit_connection(engine) as driver:
        cursor = driver.cursor(binary=True, row_factory=dict_row)
        return [Job.from_row(row) for row in cursor.execute(statement.sql, statement.params)]


def fetch_takes_alone(engine: Engine, statement: DriverStatement) -> set[Take]:
    """Run a statement that returns takes, (job id, attempt) (a batch of outcomes)."""
    with _autocommit_connection(engine) as driver:
        return {(str(row[0]), row[1]) for row in driver.execute(statement.sql, statement.params)}


@contextmanager
def _autocommit_connection(engine: Engine) -> Iterator[psycopg.Connection[Any]]:
    pooled = engine.raw_connection()
    driver = cast(psycopg.Connection[Any], pooled.driver_connection)
    try:
        driver.autocommit = True
        try:
            yield driver
        finally:
            # Never hand the pool a dead connection, or one still in autocommit (one left
            # mid-statement by an interrupt cannot leave it).
            if driver.info.transaction_status is TransactionStatus.IDLE:
                driver.autocommit = False
            else:
                pooled.invalidate()
    finally:
        pooled.close()
