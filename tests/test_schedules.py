"""Schedules as pure arithmetic: crontab parsing, the ticks of crontabs across DST
transitions, and intervals anchored to the epoch. No database, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sqlqueue.exceptions import InvalidOptionError
from sqlqueue.schedules import as_schedule, crontab, schedule

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "spec", "values"),
    [
        ("minute", "*", set(range(60))),
        ("minute", 5, {5}),
        ("minute", "0,15, 30", {0, 15, 30}),
        ("minute", "*/15", {0, 15, 30, 45}),
        ("minute", "10-20/5", {10, 15, 20}),
        ("minute", {1, 2}, {1, 2}),
        ("minute", [59], {59}),
        ("hour", "22-2", {22, 23, 0, 1, 2}),  # a range that wraps
        ("hour", "8-18/2", {8, 10, 12, 14, 16, 18}),
        ("day_of_week", "mon-fri", {1, 2, 3, 4, 5}),
        ("day_of_week", "sun", {0}),
        ("day_of_week", "7", {0}),  # cron's other Sunday
        ("day_of_week", "Saturday,SUN", {6, 0}),
        ("day_of_week", "fri-mon", {5, 6, 0, 1}),
        ("day_of_month", "*/10", {1, 11, 21, 31}),
        ("day_of_month", "1,15", {1, 15}),
        ("month_of_year", "jan,jul", {1, 7}),
        ("month_of_year", "*/3", {1, 4, 7, 10}),
        ("month_of_year", "mar-may", {3, 4, 5}),
    ],
)
def test_crontab_fields_read_celerys_syntax(field: str, spec: Any, values: set[int]) -> None:
    assert getattr(crontab(**{field: spec}), field) == values


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"minute": 60}, r"crontab\(minute=60\): 60 is out of range 0-59"),
        ({"hour": "25"}, r"crontab\(hour='25'\): 25 is out of range 0-23"),
        ({"hour": "-1"}, r"'-1' is not \*, a, a-b, \*/n or a-b/n"),
        ({"minute": "*/0"}, r"the step of '\*/0' must be 1 or more"),
        ({"minute": "5/10"}, r"a step goes with \* or a range"),
        ({"minute": "mon"}, r"'mon' is not a number\."),
        ({"day_of_week": "funday"}, r"'funday' is not a number or a name"),
        ({"day_of_week": 8}, r"8 is out of range 0-6"),
        ({"day_of_month": 0}, r"0 is out of range 1-31"),
        ({"month_of_year": "13"}, r"13 is out of range 1-12"),
        ({"month_of_year": "foo-dec"}, r"'foo' is not a number or a name"),
        ({"minute": "1,,2"}, r"'' is not \*"),
        ({"minute": 1.5}, r"give a number, a string or a set of numbers"),
        ({"minute": True}, r"give a number, a string or a set of numbers"),
        ({"minute": []}, r"give a number, a string or a set of numbers"),
        ({"day_of_month": 30, "month_of_year": "feb"}, r"no month .* would never fire"),
        ({"day_of_month": 31, "month_of_year": "apr,jun"}, r"would never fire"),
    ],
)
def test_crontab_refuses_bad_fields_saying_what_is_wrong(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        crontab(**fields)


def test_crontab_from_string_reads_cron_order() -> None:
    assert crontab.from_string("30 7 * * mon-fri") == crontab(
        minute=30, hour=7, day_of_week="mon-fri"
    )
    with pytest.raises(InvalidOptionError, match="give five fields"):
        crontab.from_string("30 7 * *")


def test_february_29th_is_a_day_a_crontab_can_wait_years_for() -> None:
    leap_monday = crontab(minute=0, hour=0, day_of_month=29, month_of_year=2, day_of_week="mon")
    assert leap_monday.next_after(utc(2024, 3, 1)) == utc(2044, 2, 29)


@pytest.mark.parametrize(
    ("cron", "zone", "after", "ticks"),
    [
        # Europe/Paris, clocks forward on 2024-03-31 at 02:00 CET (01:00 UTC) to 03:00 CEST.
        # 02:30 does not exist that day: it fires at the end of the gap, 03:00 CEST.
        (
            crontab(minute=30, hour=2),
            PARIS,
            utc(2024, 3, 30, 12),
            [utc(2024, 3, 31, 1, 0), utc(2024, 4, 1, 0, 30)],
        ),
        # Hourly: 02:00 and 03:00 are one instant that day, which fires once.
        (
            crontab(minute=0),
            PARIS,
            utc(2024, 3, 30, 23, 30),
            [utc(2024, 3, 31, 0), utc(2024, 3, 31, 1), utc(2024, 3, 31, 2)],
        ),
        # Europe/Paris, clocks back on 2024-10-27 at 03:00 CEST (01:00 UTC) to 02:00 CET.
        # 02:30 happens twice that day: it fires at the first, 02:30 CEST (00:30 UTC).
        (
            crontab(minute=30, hour=2),
            PARIS,
            utc(2024, 10, 26, 12),
            [utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)],
        ),
        # Hourly: the repeated 02:00 fires once, so 01:00 UTC (02:00 CET) does not.
        (
            crontab(minute=0),
            PARIS,
            utc(2024, 10, 26, 23, 30),
            [utc(2024, 10, 27, 0), utc(2024, 10, 27, 2), utc(2024, 10, 27, 3)],
        ),
        # America/New_York, clocks forward on 2024-03-10 at 02:00 EST (07:00 UTC) to 03:00.
        (
            crontab(minute=15, hour=2),
            NEW_YORK,
            utc(2024, 3, 9, 12),
            [utc(2024, 3, 10, 7, 0), utc(2024, 3, 11, 6, 15)],
        ),
        # America/New_York, clocks back on 2024-11-03 at 02:00 EDT (06:00 UTC) to 01:00 EST.
        (
            crontab(minute=30, hour=1),
            NEW_YORK,
            utc(2024, 11, 2, 12),
            [utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)],
        ),
        # A weekday crontab in New York keeps 09:00 local through the change (EDT -> EST).
        (
            crontab(minute=0, hour=9, day_of_week="fri-mon"),
            NEW_YORK,
            utc(2024, 11, 1, 12),
            [
                *(utc(2024, 11, 1, 13), utc(2024, 11, 2, 13)),  # Friday, Saturday: EDT
                *(utc(2024, 11, 3, 14), utc(2024, 11, 4, 14)),  # Sunday, Monday: EST
                utc(2024, 11, 8, 14),  # then Friday
            ],
        ),
        # UTC has no transitions: 02:30 every day.
        (
            crontab(minute=30, hour=2),
            UTC,
            utc(2024, 3, 30, 12),
            [utc(2024, 3, 31, 2, 30), utc(2024, 4, 1, 2, 30)],
        ),
    ],
)
def test_crontab_ticks_across_dst_transitions(
    cron: crontab, zone: ZoneInfo, after: datetime, ticks: list[datetime]
) -> None:
    found = []
    at = after
    for _ in ticks:
        at = cron.next_after(at, zone)
        found.append(at)
    assert found == ticks
    # latest() agrees: each tick is the latest at its own instant and a second after it,
    # and the one before it is the latest a second before.
    for before, tick in zip([None, *ticks], ticks, strict=False):
        assert cron.latest(tick, zone) == tick
        assert cron.latest(tick + timedelta(seconds=1), zone) == tick
        if before is not None:
            assert cron.latest(tick - timedelta(seconds=1), zone) == before


def test_the_latest_tick_inside_the_repeated_hour_is_its_first_pass() -> None:
    every_minute = crontab()
    # 02:10 CET, the second pass of 02:10 (01:10 UTC): 02:10..02:59 fired in the first pass,
    # and the second pass fires none of them again.
    second_pass = utc(2024, 10, 27, 1, 10)
    assert every_minute.latest(second_pass, PARIS) == utc(2024, 10, 27, 0, 59)
    assert every_minute.next_after(second_pass, PARIS) == utc(2024, 10, 27, 2, 0)


@pytest.mark.parametrize(
    ("interval", "at", "latest", "following"),
    [
        (30, utc(2024, 1, 1, 10, 0, 47), utc(2024, 1, 1, 10, 0, 30), utc(2024, 1, 1, 10, 1)),
        (30.0, utc(2024, 1, 1, 10, 0, 30), utc(2024, 1, 1, 10, 0, 30), utc(2024, 1, 1, 10, 1)),
        (
            timedelta(hours=1),
            utc(2024, 6, 1, 12, 59, 59),
            utc(2024, 6, 1, 12),
            utc(2024, 6, 1, 13),
        ),
        # 7 s since the epoch: 2024-01-01 00:00 UTC is 1704067200 s = 7 * 243438171 + 3.
        (7, utc(2024, 1, 1), utc(2023, 12, 31, 23, 59, 57), utc(2024, 1, 1, 0, 0, 4)),
        (0.25, utc(2024, 1, 1, 0, 0, 0, 300000), utc(2024, 1, 1, 0, 0, 0, 250000), None),
    ],
)
def test_intervals_tick_at_multiples_of_their_length_since_the_epoch(
    interval: float | timedelta, at: datetime, latest: datetime, following: datetime | None
) -> None:
    every = as_schedule(interval)
    assert every.latest(at) == latest
    # The same instants in any zone, and from any instant of the same interval.
    assert every.latest(at.astimezone(PARIS), PARIS) == latest
    if following is not None:
        assert every.next_after(at) == following
        assert every.next_after(latest) == following


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "more than 0 seconds"),
        (-5, "more than 0 seconds"),
        (timedelta(0), "more than 0 seconds"),
        ("30", "a schedule is seconds, a timedelta, a crontab or a schedule"),
        (True, "a schedule is seconds"),
        (None, "a schedule is seconds"),
    ],
)
def test_bad_schedules_are_refused(value: Any, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        as_schedule(value)


def test_celerys_schedule_class_name_is_an_interval() -> None:
    assert schedule(run_every=timedelta(seconds=10)) == as_schedule(10)
    assert str(as_schedule(timedelta(minutes=2))) == "every 120s"
    assert str(crontab(minute=30, hour=7, day_of_week="mon")) == "crontab(30 7 * * mon)"
