"""The overview's chart: jobs finished per minute over the last hour.

Each minute is one range of ``ix_sqlqueue_jobs_finished`` (finished_at, the index pruning
reads), counted no further than ``PER_MINUTE_CAP``, so a page costs at most 60 capped
ranges however busy the queue and however long its history; a minute that finished more
shows as the cap, with a "+". Minutes are whole minutes of the database's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from sqlqueue.jobs import as_utc
from sqlqueue.schema import FINISHED_WHERE, Timestamp, jobs
from sqlqueue.store import JobStore

MINUTES = 60
PER_MINUTE_CAP = 10_000
"""Where a minute's count stops: 10,000 jobs a minute (167 a second) and more show as
"10000+". Counting further would read each one."""


@dataclass(frozen=True, slots=True)
class Minute:
    start: datetime
    finished: int
    """At most ``PER_MINUTE_CAP``."""


def read_throughput(store: JobStore) -> list[Minute]:
    """The last ``MINUTES`` whole minutes, oldest first, the current one last (so far)."""
    now = store.database_now()
    current = now.replace(second=0, microsecond=0)
    starts = [current - timedelta(minutes=MINUTES - 1 - n) for n in range(MINUTES)]
    (rows,) = store.read([throughput_statement(starts)])
    counts = rows[0]
    return [Minute(as_utc(start), counts[f"m{n}"]) for n, start in enumerate(starts)]  # type: ignore[arg-type]


def throughput_statement(starts: list[datetime]) -> sa.Select[Any]:
    return sa.select(*(_capped(start).label(f"m{n}") for n, start in enumerate(starts)))


def _capped(start: datetime) -> Any:
    some = (
        sa.select(sa.literal(1))
        .where(FINISHED_WHERE)
        .where(
            jobs.c.finished_at >= sa.literal(start, Timestamp),
            jobs.c.finished_at < sa.literal(start + timedelta(minutes=1), Timestamp),
        )
        .limit(PER_MINUTE_CAP)
        .subquery()
    )
    return sa.select(sa.func.count()).select_from(some).scalar_subquery()
