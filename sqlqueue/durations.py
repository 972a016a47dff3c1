"""Durations on the command line as people write them: ``7d``, ``12h``, ``90m``, ``1h30m``,
``45s`` or plain seconds (``30``, ``0.5``)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    # Generic in the click that type-checks this; a plain class in the oldest we support.
    ParamType = click.ParamType[float, Any]
else:
    ParamType = click.ParamType

UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}

NUMBER = r"(?:\d+(?:\.\d+)?|\.\d+)"
"""Digits, with a fraction or not: not ``float()``'s language, which reads ``nan``, ``inf``,
``1e3`` and ``1_000`` too."""

SECONDS = re.compile(NUMBER)
PART = re.compile(f"({NUMBER})([wdhms])")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ValueError saying what is accepted when it reads as none."""
    written = text.strip().lower()
    if SECONDS.fullmatch(written):
        return float(written)
    parts = PART.findall(written)
    if not parts or "".join(number + unit for number, unit in parts) != written.replace(" ", ""):
        raise ValueError(
            f"{text!r} is not a duration: write seconds (90, 0.5) or a number and a unit, "
            "w, d, h, m or s (7d, 12h, 90m, 1h30m)"
        )
    return sum(float(number) * UNITS[unit] for number, unit in parts)


class Duration(ParamType):
    """A click option's duration in seconds, at least ``minimum`` (or more, ``open``)."""

    name = "duration"

    def __init__(self, minimum: float = 0.0, open: bool = False) -> None:
        self.minimum = minimum
        self.open = open

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            seconds = float(value)
        else:
            try:
                seconds = parse_duration(str(value))
            except ValueError as exc:
                self.fail(str(exc), param, ctx)
        if seconds < self.minimum or (self.open and seconds == self.minimum):
            bound = "more than" if self.open else "at least"
            self.fail(f"{value} is too short: give {bound} {self.minimum:g}s", param, ctx)
        return seconds
