"""How long a job waits before its next try: pure arithmetic, no I/O."""

from __future__ import annotations

import random
import sys

MAX_DOUBLINGS = sys.float_info.max_exp - 1
"""The largest n for which ``2.0**n`` is a float; past it, Python raises OverflowError."""


def backoff_delay(retries: int, *, factor: float, maximum: float, jitter: bool = True) -> float:
    """Exponential backoff as Celery computes it: ``factor * 2**retries``, capped at
    ``maximum``, then with full jitter (a uniform pick below the cap) so that jobs that
    failed together do not all come back at the same moment. Any number of retries is
    fine: the doubling stops where a float would overflow, long past any cap."""
    delay = min(maximum, factor * 2.0 ** min(retries, MAX_DOUBLINGS))
    return random.uniform(0, delay) if jitter else delay  # noqa: S311 - spreading, not secrecy
