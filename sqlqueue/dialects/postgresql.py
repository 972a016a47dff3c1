"""PostgreSQL: row locks make the claim safe for any number of workers on any machines.

The claim is one statement: a CTE selects the next ready rows ``FOR UPDATE SKIP LOCKED``
and the UPDATE over it marks them taken, so two workers never lock the same row and
neither waits for the other. Times come from the database's clock
(``statement_timestamp()``), never from the workers', so machines with skewed clocks agree
on when a job is due and when a lease has run out.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from sqlqueue.dialects.base import Dialect


class PostgreSQLDialect(Dialect):
    name = "postgresql"

    def create_engine(self, url: URL) -> Engine:
        # postgresql:// means psycopg 3 here, whatever SQLAlchemy's default driver is.
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return sa.create_engine(url, pool_pre_ping=True)

    def create_async_engine(self, url: URL) -> AsyncEngine:
        # psycopg 3 is sync and async in one driver.
        return super().create_async_engine(url.set(drivername="postgresql+psycopg"))

    def now(self) -> sa.ColumnElement[datetime]:
        # statement_timestamp(), not now(): a job enqueued late in a caller's long
        # transaction must count its countdown from the call, not from the BEGIN.
        return sa.func.statement_timestamp(type_=sa.DateTime(timezone=True))

    def now_plus(self, seconds: float) -> sa.ColumnElement[datetime]:
        return self.now() + timedelta(seconds=seconds)
