"""When a periodic task's ticks fall: ``crontab`` and ``schedule`` (an interval).

    from sqlqueue.schedules import crontab, schedule

    crontab(minute=30, hour=7, day_of_week="mon-fri")
    crontab(minute="*/15")
    schedule(30.0)                      # or a plain 30.0, or timedelta(seconds=30)

Pure arithmetic, with no clock and no database: a schedule answers, for an instant, the
latest tick at or before it (``latest``) and the first tick after it (``next_after``).
Every scheduler of a cluster asks with the database's clock and gets the same instants,
which is what lets the database hold each tick to one job (``sqlqueue.scheduler``).

An interval ticks at whole multiples of its length counted from the Unix epoch (UTC), not
from when a process started: ``schedule(30)`` ticks at :00 and :30 of every minute, on every
machine.

A crontab is read in a time zone (``app.conf.timezone``). A local time the zone skips (the
hour lost when clocks go forward) fires at the first instant after the gap; a local time it
repeats (the hour when clocks go back) fires once, at its first occurrence. As in Celery
(and unlike Unix cron), ``day_of_month`` and ``day_of_week`` must both match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlqueue.exceptions import InvalidOptionError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Where every interval's ticks are counted from."""

MICROSECOND = timedelta(microseconds=1)

SEARCH_DAYS = 366 * 400
"""Days a crontab's next tick is searched over: the Gregorian calendar repeats every 400
years, so a crontab that matches no day in them never fires (refused when constructed)."""

WEEKDAYS = {
    name: number
    for number, names in enumerate(
        [
            ("sun", "sunday"),
            ("mon", "monday"),
            ("tue", "tuesday"),
            ("wed", "wednesday"),
            ("thu", "thursday"),
            ("fri", "friday"),
            ("sat", "saturday"),
        ]
    )
    for name in names
}
"""Celery's day names: 0 is Sunday."""

MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may", "may"),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}

_PART = re.compile(r"^(?:(\*)|(\w+)(?:-(\w+))?)(?:/(\w+))?$")
"""One comma-separated part of a field: ``*``, ``a`` or ``a-b``, each with an optional ``/n``."""


class Field:
    """One field of a crontab: its name, range, and the names it takes."""

    def __init__(self, name: str, low: int, high: int, names: dict[str, int] | None = None) -> None:
        self.name = name
        self.low = low
        self.high = high
        self.names = names or {}

    def parse(self, spec: Any) -> frozenset[int]:
        """The values ``spec`` (an int, a string of Celery's syntax, or ints) stands for."""
        if isinstance(spec, bool):
            raise self._error(spec, "give a number, a string or a set of numbers")
        if isinstance(spec, int):
            return frozenset([self._check(spec, spec)])
        if isinstance(spec, str):
            values: set[int] = set()
            for part in spec.split(","):
                values |= self._part(spec, part.strip().lower())
            return frozenset(values)
        if isinstance(spec, Iterable):
            items = list(spec)
            if items and all(isinstance(i, int) and not isinstance(i, bool) for i in items):
                return frozenset(self._check(spec, i) for i in items)
        raise self._error(spec, "give a number, a string or a set of numbers")

    def _part(self, spec: str, part: str) -> set[int]:
        match = _PART.match(part)
        if match is None:
            raise self._error(spec, f"{part!r} is not *, a, a-b, */n or a-b/n")
        star, first, last, step_text = match.groups()
        step = 1
        if step_text is not None:
            step = self._number(spec, step_text, named=False)
            if step < 1:
                raise self._error(spec, f"the step of {part!r} must be 1 or more")
        if star:
            start, end = self.low, self.high
        else:
            start = self._check(spec, self._number(spec, first))
            if last is None:
                if step_text is not None:
                    raise self._error(spec, f"{part!r}: a step goes with * or a range a-b/n")
                return {start}
            end = self._check(spec, self._number(spec, last))
        if end < start:  # a range that wraps, as Celery's "fri-mon"
            values = [*range(start, self.high + 1), *range(self.low, end + 1)]
        else:
            values = list(range(start, end + 1))
        return set(values[::step])

    def _number(self, spec: str, text: str, named: bool = True) -> int:
        if text.isdigit():
            return int(text)
        if named and text in self.names:
            return self.names[text]
        raise self._error(spec, f"{text!r} is not a number{' or a name' if self.names else ''}")

    def _check(self, spec: Any, value: int) -> int:
        if self.name == "day_of_week" and value == 7:
            return 0  # cron's other Sunday
        if not self.low <= value <= self.high:
            raise self._error(spec, f"{value} is out of range {self.low}-{self.high}")
        return value

    def _error(self, spec: Any, reason: str) -> InvalidOptionError:
        return InvalidOptionError(f"crontab({self.name}={spec!r}): {reason}.")


MINUTE = Field("minute", 0, 59)
HOUR = Field("hour", 0, 23)
DAY_OF_WEEK = Field("day_of_week", 0, 6, WEEKDAYS)
DAY_OF_MONTH = Field("day_of_month", 1, 31)
MONTH_OF_YEAR = Field("month_of_year", 1, 12, MONTHS)

_LONGEST_MONTH = {2: 29, 4: 30, 6: 30, 9: 30, 11: 30}


class crontab:
    """Ticks at the minutes matching every field, read in ``app.conf.timezone``.

    Each field takes Celery's syntax: an int, ``"*"``, a list ``"1,15"``, a range ``"1-5"``
    (``"fri-mon"`` wraps), steps ``"*/15"`` and ``"8-18/2"``, or a set of ints; day and month
    names (``"mon"``, ``"jan"``) where they apply. ``day_of_week`` counts from Sunday = 0.
    A malformed field, or a crontab that no date matches (``day_of_month=30,
    month_of_year=2``), raises ``InvalidOptionError`` at once.
    """

    def __init__(
        self,
        minute: Any = "*",
        hour: Any = "*",
        day_of_week: Any = "*",
        day_of_month: Any = "*",
        month_of_year: Any = "*",
    ) -> None:
        self._specs = (minute, hour, day_of_month, month_of_year, day_of_week)
        self.minute = MINUTE.parse(minute)
        self.hour = HOUR.parse(hour)
        self.day_of_week = DAY_OF_WEEK.parse(day_of_week)
        self.day_of_month = DAY_OF_MONTH.parse(day_of_month)
        self.month_of_year = MONTH_OF_YEAR.parse(month_of_year)
        if not any(
            day <= _LONGEST_MONTH.get(month, 31)
            for month in self.month_of_year
            for day in self.day_of_month
        ):
            raise InvalidOptionError(
                f"{self}: no month of month_of_year={month_of_year!r} has a day "
                f"day_of_month={day_of_month!r}, so it would never fire."
            )
        self._minutes = sorted(self.minute)
        self._hours = sorted(self.hour)

    @classmethod
    def from_string(cls, expression: str) -> crontab:
        """A crontab from cron's five fields, ``"minute hour day_of_month month day_of_week"``."""
        fields = expression.split()
        if len(fields) != 5:
            raise InvalidOptionError(
                f"crontab.from_string({expression!r}): give five fields, "
                "'minute hour day_of_month month_of_year day_of_week'."
            )
        minute, hour, day_of_month, month_of_year, day_of_week = fields
        return cls(minute, hour, day_of_week, day_of_month, month_of_year)

    def __str__(self) -> str:
        return f"crontab({' '.join(str(spec) for spec in self._specs)})"

    def __repr__(self) -> str:
        return f"<{self} (m/h/dM/MY/dW)>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, crontab) and self._sets() == other._sets()

    def __hash__(self) -> int:
        return hash(self._sets())

    def _sets(self) -> tuple[frozenset[int], ...]:
        return (self.minute, self.hour, self.day_of_week, self.day_of_month, self.month_of_year)

    def next_after(self, at: datetime, zone: tzinfo = UTC) -> datetime:
        """The first tick strictly after ``at`` (aware), in UTC."""
        local = at.astimezone(zone).replace(tzinfo=None)
        start = local.replace(second=0, microsecond=0) + timedelta(minutes=1)
        # Local times after ``at``'s may still fall before it: in the repeated hour, at is in
        # the second pass and its minutes fire in the first.
        while (tick := _instant(self._first_match(start), zone)) <= at:
            start = tick.astimezone(zone).replace(tzinfo=None) + timedelta(minutes=1)
        return tick

    def latest(self, at: datetime, zone: tzinfo = UTC) -> datetime:
        """The last tick at or before ``at`` (aware), in UTC."""
        local = at.astimezone(zone).replace(tzinfo=None).replace(second=0, microsecond=0)
        tick = _instant(self._last_match(local), zone)
        # In the repeated hour, local times after at's may have fired before it (first pass).
        while (later := self.next_after(tick, zone)) <= at:
            tick = later
        return tick

    def _day_matches(self, day: date) -> bool:
        return (
            day.month in self.month_of_year
            and day.day in self.day_of_month
            and (day.weekday() + 1) % 7 in self.day_of_week
        )

    def _first_match(self, start: datetime) -> datetime:
        """The first local minute at or after ``start`` (naive, whole minute) that matches."""
        day, earliest = start.date(), (start.hour, start.minute)
        for _ in range(SEARCH_DAYS):
            if self._day_matches(day):
                for hour in self._hours:
                    for minute in self._minutes:
                        if (hour, minute) >= earliest:
                            return datetime.combine(day, time(hour, minute))
            day, earliest = day + timedelta(days=1), (0, 0)
        raise AssertionError(f"{self} matches no day in 400 years")  # refused when made

    def _last_match(self, end: datetime) -> datetime:
        """The last local minute at or before ``end`` (naive, whole minute) that matches."""
        day, latest = end.date(), (end.hour, end.minute)
        for _ in range(SEARCH_DAYS):
            if self._day_matches(day):
                for hour in reversed(self._hours):
                    for minute in reversed(self._minutes):
                        if (hour, minute) <= latest:
                            return datetime.combine(day, time(hour, minute))
            day, latest = day - timedelta(days=1), (23, 59)
        raise AssertionError(f"{self} matches no day in 400 years")


class schedule:
    """Ticks every ``run_every`` (seconds, or a ``timedelta``), at whole multiples of it since
    the Unix epoch, so that every machine computes the same instants."""

    def __init__(self, run_every: float | timedelta) -> None:
        if isinstance(run_every, timedelta):
            step = run_every // MICROSECOND
        elif isinstance(run_every, int | float) and not isinstance(run_every, bool):
            step = round(run_every * 1_000_000)
        else:
            raise InvalidOptionError(
                f"schedule(run_every={run_every!r}): give seconds (a number) or a timedelta."
            )
        if step < 1:
            raise InvalidOptionError(
                f"schedule(run_every={run_every!r}): an interval must be more than 0 seconds."
            )
        self._step = step
        self.run_every = timedelta(microseconds=step)

    def __str__(self) -> str:
        return f"every {self.run_every.total_seconds():g}s"

    def __repr__(self) -> str:
        return f"<schedule: {self}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, schedule) and self._step == other._step

    def __hash__(self) -> int:
        return hash(self._step)

    def next_after(self, at: datetime, zone: tzinfo = UTC) -> datetime:
        """The first tick strictly after ``at`` (aware), in UTC; ``zone`` plays no part."""
        return EPOCH + (((at - EPOCH) // MICROSECOND) // self._step + 1) * self._step * MICROSECOND

    def latest(self, at: datetime, zone: tzinfo = UTC) -> datetime:
        """The last tick at or before ``at`` (aware), in UTC."""
        return EPOCH + (((at - EPOCH) // MICROSECOND) // self._step) * self._step * MICROSECOND


Schedule = crontab | schedule
"""What a periodic task ticks by."""


def as_schedule(value: Any) -> Schedule:
    """A schedule from what Celery's ``beat_schedule`` and ``add_periodic_task`` take:
    seconds, a ``timedelta``, a ``crontab`` or a ``schedule``."""
    if isinstance(value, crontab | schedule):
        return value
    if isinstance(value, timedelta | int | float) and not isinstance(value, bool):
        return schedule(value)
    kind = type(value)
    if kind.__module__.startswith("celery"):
        raise InvalidOptionError(
            f"{kind.__name__} is Celery's: import crontab and schedule from sqlqueue.schedules"
            + (" (solar schedules are not supported)" if kind.__name__ == "solar" else "")
            + "."
        )
    raise InvalidOptionError(
        f"a schedule is seconds, a timedelta, a crontab or a schedule, not {value!r}."
    )


def _instant(local: datetime, zone: tzinfo) -> datetime:
    """The instant (UTC) at which the local time ``local`` (naive) fires in ``zone``: its
    only occurrence; the first, when clocks go back; when clocks go forward past it, the end
    of the gap."""
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == local:
        return first
    # In a gap, fold=0 reads the time with the offset from before the gap, fold=1 with the
    # one after: the transition lies between the two instants. zoneinfo does not expose its
    # transitions, so find it to the second.
    before = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after = first
    offset_before = before.astimezone(zone).utcoffset()
    while after - before > timedelta(seconds=1):
        middle = before + (after - before) // 2
        middle = middle.replace(microsecond=0)
        if middle.astimezone(zone).utcoffset() == offset_before:
            before = middle
        else:
            after = middle
    return after
