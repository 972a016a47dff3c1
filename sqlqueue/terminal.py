"""How the operator commands print: aligned tables, short ages, and progress that shows on
a terminal and stays out of pipes.

A few dozen lines of our own rather than ``rich``: a bare ``pip install sqlqueue`` keeps its
three dependencies, and the tables are plain text, so they read the same in a pipe, a log
and a terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

import click


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns aligned under their headers; numbers to the right, text to the left."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [
        max([len(header), *(len(row[at]) for row in cells)]) for at, header in enumerate(headers)
    ]
    numeric = [
        bool(cells) and all(_is_number(row[at]) for row in cells) for at in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(headers), *(line(row) for row in cells)])


def _is_number(text: str) -> bool:
    return text in ("-", "") or text.rstrip("+").replace(",", "").replace(".", "").isdigit()


def age(seconds: float | None) -> str:
    """A duration in its largest units: 45s, 12m 5s, 3h 20m, 2d 4h; "-" for none."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    for unit, size, smaller, smaller_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "m", 60),
        ("m", 60, "s", 1),
    ):
        if whole >= size:
            rest = (whole % size) // smaller_size
            return f"{whole // size}{unit}" + (f" {rest}{smaller}" if rest else "")
    return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"


def capped(count: int, cap: int) -> str:
    """A count that stopped at its cap reads as "at least"."""
    return f"{cap}+" if count >= cap else str(count)


class Progress:
    """A line redrawn in place on a terminal (stderr), as work goes on; nothing when stderr
    is not a terminal, so that a pipe or a log gets only the final line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._shown = self._stream.isatty()
        self._drawn = False

    def show(self, text: str) -> None:
        if self._shown:
            click.echo(f"\r\x1b[2K{text}", nl=False, file=self._stream)
            self._drawn = True

    def done(self) -> None:
        """Leave the line, so that what follows starts on a fresh one."""
        if self._drawn:
            click.echo("\r\x1b[2K", nl=False, file=self._stream)
            self._drawn = False
