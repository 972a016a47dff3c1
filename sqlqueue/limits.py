"""Rate limits and concurrency limits of a task: checked when the task is declared, written
with each job when it is sent, and held by the claim (docs/limits.md).

A limited job carries three columns: its ``limit_key`` (the task's name, the separator
``KEY_SEPARATOR``, then its ``concurrency_key`` or nothing), its ``concurrency_limit`` and its
``rate_interval`` (seconds between two starts). The claim reads the limits from the job, so
every worker, whatever code it runs, holds the limits its sender declared. The separator
sorts below every printable character: the keys of one task are contiguous in the key's
order, which lets a claim skip all of them at once, and take its locks in one order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlqueue.exceptions import InvalidOptionError

KEY_SEPARATOR = "\x1f"
"""Between a task's name and its concurrency key in ``limit_key``."""

BURST_SECONDS = 0.1
"""A rate limit's bucket holds what its rate allows in this many seconds, and at least one
job: after an idle spell, that many jobs may start at once (the burst)."""

PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}
"""Celery's rate units: per second, minute, hour."""

_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*([smh]))?\s*")


def rate_interval(rate_limit: str | float | None) -> float | None:
    """Seconds between two starts for Celery's ``rate_limit`` ("10/s", "100/m", "5/h", or a
    number, per second); None for none (None, 0, "0", as in Celery)."""
    if rate_limit is None:
        return None
    if isinstance(rate_limit, int | float) and not isinstance(rate_limit, bool):
        per_second = float(rate_limit)
    elif isinstance(rate_limit, str) and (match := _RATE.fullmatch(rate_limit)):
        per_second = float(match[1]) / PERIODS[match[2] or "s"]
    else:
        raise InvalidOptionError(
            f"rate_limit={rate_limit!r} is not a rate: write a number of jobs per second, "
            'minute or hour as "10/s", "100/m" or "5/h".'
        )
    if not math.isfinite(per_second) or per_second < 0:
        raise InvalidOptionError(f"rate_limit={rate_limit!r} must be a positive rate.")
    return 1.0 / per_second if per_second else None


def burst(interval: float) -> int:
    """How many jobs a full bucket lets start at once (``BURST_SECONDS``)."""
    return max(1, math.floor(BURST_SECONDS / interval))


def tokens(full_at: datetime, now: datetime, interval: float) -> int:
    """How many jobs a bucket lets start ``now``: a full bucket's ``burst``, less one for
    each ``interval`` it still needs to be full again (at ``full_at``)."""
    return math.floor(burst(interval) - max(0.0, (full_at - now).total_seconds()) / interval)


def check_concurrency(limit: Any, key: Any) -> int | None:
    """The task's ``concurrency_limit``, checked with its ``concurrency_key``."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidOptionError(
            f"concurrency_limit={limit!r} must be a whole number of jobs, 1 or more."
        )
    if key is not None and not callable(key):
        raise InvalidOptionError(
            f"concurrency_key={key!r} must be a function of the task's arguments returning a "
            "string, e.g. lambda account_id, **_: f'account:{account_id}'."
        )
    if key is not None and limit is None:
        raise InvalidOptionError(
            "concurrency_key= needs concurrency_limit=: the key groups jobs, the limit says "
            "how many of each group may run at once."
        )
    return limit


@dataclass(frozen=True, slots=True)
class Limits:
    """What a send writes with each job of a limited task."""

    keys: list[str]
    """Each job's ``limit_key``."""
    concurrency_limit: int | None
    rate_interval: float | None


def limits_of(
    name: str,
    concurrency_limit: int | None,
    concurrency_key: Callable[..., Any] | None,
    interval: float | None,
    calls: Sequence[tuple[Sequence[Any], Mapping[str, Any]]],
) -> Limits | None:
    """The limits of a send's jobs, their keys computed from each call now; None for a task
    without limits."""
    if concurrency_limit is None and interval is None:
        return None
    prefix = f"{name}{KEY_SEPARATOR}"
    if concurrency_key is None:
        keys = [prefix] * len(calls)
    else:
        keys = [prefix + _key(name, concurrency_key, args, kwargs) for args, kwargs in calls]
    return Limits(keys, concurrency_limit, interval)


def _key(
    name: str, concurrency_key: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> str:
    try:
        key = concurrency_key(*args, **kwargs)
    except Exception as exc:
        raise InvalidOptionError(
            f"The concurrency_key of task {name!r} raised {type(exc).__name__}: {exc}; it is "
            "called with the task's arguments when a job is sent, and nothing was sent."
        ) from exc
    if not isinstance(key, str):
        raise InvalidOptionError(
            f"The concurrency_key of task {name!r} returned {key!r}; it must return a string "
            "(nothing was sent)."
        )
    if len(name) + len(key) + 1 > 255 or any(ord(c) < 32 for c in key):
        raise InvalidOptionError(
            f"The concurrency_key of task {name!r} returned {key[:50]!r}: a key is printable "
            "text, and with the task's name at most 254 characters (nothing was sent)."
        )
    return key
