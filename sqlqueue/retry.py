"""How long a job waits before its next try: pure arithmetic, no I/O."""

from __future__ import annotations

import random


def backoff_delay(retries: int, *, factor: float, maximum: float, jitter: bool = True) -> float:
    """Exponential backoff as Celery computes it: ``factor * 2**retries``, capped at
    ``maximum``, then with full jitter (a uniform pick below the cap) so that jobs that
    failed together do not all come back at the same moment."""
    delay = min(maximum, factor * (2**retries))
    return random.uniform(0, delay) if jitter else delay  # noqa: S311 - spreading, not secrecy
