"""The scheduler: sends each periodic task's job at its ticks, once across a cluster.

Every worker runs one, on a thread of its own (unless ``--no-beat``), and ``sqlqueue beat``
runs one alone. However many run, each tick of each periodic task is sent once, and the
database decides which scheduler sends it:

- A pass reads the database's clock (never the host's), and for each periodic task its
  latest tick at or before that instant (``sqlqueue.schedules``): every scheduler computes
  the same instants.
- A tick later than the task's row in ``sqlqueue_schedules`` is taken by an UPDATE that
  moves the row's ``last_tick`` forward, in the transaction that writes the job. A
  scheduler whose UPDATE matched no row (another took the tick, or a later one, first)
  writes nothing. No lock outlives its transaction, so a scheduler killed at any moment
  leaves nothing to repair: its transaction is rolled back, and the next pass of any
  scheduler takes the tick.
- After downtime, the latest tick is the one taken: the missed ticks before it are not
  sent. A periodic task seen first starts at its next tick (its row is written with the
  latest tick, skipped).

Between passes a scheduler sleeps until the next tick of any periodic task, or a stop; an
app without periodic tasks starts no scheduler, and costs no query.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from sqlqueue.app import SQLQueue
from sqlqueue.conf import MAX_DATABASE_BACKOFF
from sqlqueue.exceptions import DatabaseError, SQLQueueError
from sqlqueue.outages import Outage
from sqlqueue.periodic import PeriodicTask

logger = logging.getLogger(__name__)

FIRST_BACKOFF = 1.0
"""Seconds a scheduler waits before trying a database that is down again; doubled on each
failure up to ``MAX_DATABASE_BACKOFF``."""


def zone_of(app: SQLQueue) -> tzinfo:
    """The zone in which the app's crontabs are read (``app.conf.timezone``)."""
    name: str = app.conf.timezone
    return UTC if name == "UTC" else ZoneInfo(name)


def schedule_rows(
    app: SQLQueue, periodic: Sequence[PeriodicTask]
) -> list[tuple[str, str, str, str, str, str]]:
    """What ``sqlqueue schedules`` and the dashboard show of each periodic task: name, task,
    schedule, last run, last job, next run; times in the app's timezone."""
    zone = zone_of(app)
    now = app.store.database_now()
    known = app.store.get_schedules([entry.name for entry in periodic])

    def shown_time(instant: datetime) -> str:
        return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")

    rows = []
    for entry in periodic:
        state = known.get(entry.name)
        latest = entry.schedule.latest(now, zone)
        if state is not None and latest > state.last_tick:
            following = f"{shown_time(latest)} (due, not sent yet)"
        else:
            following = shown_time(entry.schedule.next_after(now, zone))
        sent = state is not None and state.job_id is not None
        rows.append(
            (
                entry.name,
                entry.task,
                str(entry.schedule),
                shown_time(state.last_tick) if state is not None and sent else "never",
                state.job_id or "-" if state is not None else "-",
                following,
            )
        )
    return rows


class Scheduler:
    """Sends the periodic tasks' jobs at their ticks until ``stopping`` is set."""

    def __init__(
        self,
        app: SQLQueue,
        periodic: Sequence[PeriodicTask],
        stopping: threading.Event,
        failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._app = app
        self._periodic = list(periodic)
        self._zone = zone_of(app)
        self._stopping = stopping
        self._failed = failed
        """Called with an error that waiting cannot mend, on the thread; None: ``run`` raises it."""
        self._thread = threading.Thread(target=self._run_thread, name="sqlqueue-scheduler")

    def start(self) -> None:
        """Run on a thread of its own (a worker's)."""
        self._thread.start()

    def join(self) -> None:
        """Wait for the thread, once ``stopping`` is set."""
        self._thread.join()

    def _run_thread(self) -> None:
        # As the chores do: an error waiting cannot mend stops the worker, which says why.
        try:
            self.run()
        except DatabaseError as exc:
            logger.error("scheduler: stopping the worker: %s", exc)
            self._fail(exc)
        except BaseException as exc:  # a defect: nothing may die silently on a side thread
            logger.exception("scheduler: stopping the worker")
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self._failed is not None:
            self._failed(exc)

    def run(self) -> None:
        """Send ticks until ``stopping`` is set.

        Raises:
            DatabaseError: a non-transient one (no ``sqlqueue_schedules`` table: run
                ``sqlqueue migrate``); a database that is down is tried again.
        """
        logger.info(
            "scheduler started: %d periodic task(s), timezone %s",
            len(self._periodic),
            self._app.conf.timezone,
        )
        backoff = FIRST_BACKOFF
        outage = Outage(logger, "scheduler")
        while not self._stopping.is_set():
            try:
                now = self._app.store.database_now()
                # Counted from the answer, not the question: a wait counted from before the
                # query would end that much before the tick, and cost a pass for nothing.
                read_at = time.monotonic()
                following = self.send_due(now)
            except DatabaseError as exc:
                if not exc.transient:
                    raise
                outage.failed(exc)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_DATABASE_BACKOFF)
                continue
            outage.answered()
            backoff = FIRST_BACKOFF
            wait = (following - now).total_seconds() - (time.monotonic() - read_at)
            self._stopping.wait(max(0.0, wait))
        logger.info("scheduler stopped")

    def send_due(self, now: datetime) -> datetime:
        """One pass at ``now`` (the database's clock): send the ticks that are due and not yet
        sent; the next tick of any periodic task."""
        store = self._app.store
        known = store.get_schedules([periodic.name for periodic in self._periodic])
        for periodic in self._periodic:
            tick = periodic.schedule.latest(now, self._zone)
            state = known.get(periodic.name)
            if state is None:
                store.insert_schedule(periodic.name, periodic.task, tick)
            elif tick > state.last_tick:
                self._send(periodic, tick)
        return min(periodic.schedule.next_after(now, self._zone) for periodic in self._periodic)

    def _send(self, periodic: PeriodicTask, tick: datetime) -> None:
        def send(connection: Connection) -> str:
            return self._app.send_task(
                periodic.task,
                periodic.args,
                periodic.kwargs,
                connection=connection,
                eta=tick,
                **periodic.options,
            ).id

        try:
            job_id = self._app.store.send_tick(periodic.name, periodic.task, tick, send)
        except DatabaseError:
            raise
        except SQLQueueError as exc:  # a send refused (arguments that are not JSON): only this one
            logger.error("periodic task %s: tick %s not sent: %s", periodic.name, tick, exc)
            return
        if job_id is not None:
            logger.info(
                "periodic task %s: sent %s id=%s tick=%s",
                periodic.name,
                periodic.task,
                job_id,
                tick.isoformat(),
            )
