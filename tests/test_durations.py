from __future__ import annotations

import pytest

from sqlqueue.durations import parse_duration


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("30", 30.0),
        ("0.5", 0.5),
        ("45s", 45.0),
        ("90m", 5400.0),
        ("12h", 43200.0),
        ("7d", 604800.0),
        ("2w", 1209600.0),
        ("1h30m", 5400.0),
        ("1d 12h", 129600.0),
        ("1.5h", 5400.0),
        (" 7D ", 604800.0),
    ],
)
def test_a_duration_reads_as_people_write_it(written: str, seconds: float) -> None:
    assert parse_duration(written) == seconds


@pytest.mark.parametrize(
    "written",
    ["", "7 days", "d", "7x", "1h30", "h1", "-5m", "1h-30m", "-5", "nan", "inf", "1e3", "1_000"],
)
def test_anything_else_is_refused_with_what_is_accepted(written: str) -> None:
    with pytest.raises(ValueError, match="is not a duration: write seconds"):
        parse_duration(written)
