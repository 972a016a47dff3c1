"""When and how often a job is tried again, and how long it waits: no I/O."""

from __future__ import annotations

import random
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlqueue.conf import DEFAULT_MAX_RETRIES, DEFAULT_RETRY_BACKOFF_MAX, DEFAULT_RETRY_DELAY
from sqlqueue.exceptions import Ignore, InvalidOptionError, Reject
from sqlqueue.options import check_countdown

MAX_DOUBLINGS = sys.float_info.max_exp - 1
"""The largest n for which ``2.0**n`` is a float; past it, Python raises OverflowError."""


def backoff_delay(retries: int, *, factor: float, maximum: float, jitter: bool = True) -> float:
    """Exponential backoff as Celery computes it: ``factor * 2**retries``, capped at
    ``maximum``, then with full jitter (a uniform pick below the cap) so that jobs that
    failed together do not all come back at the same moment. Any number of retries is
    fine: the doubling stops where a float would overflow, long past any cap."""
    delay = min(maximum, factor * 2.0 ** min(retries, MAX_DOUBLINGS))
    return random.uniform(0, delay) if jitter else delay  # noqa: S311 - spreading, not secrecy


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When and how often a failed run is tried again, from a task's options, checked."""

    max_retries: int | None = DEFAULT_MAX_RETRIES
    default_retry_delay: float = DEFAULT_RETRY_DELAY
    retry_backoff: bool | float = False
    retry_backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX
    retry_jitter: bool = True
    autoretry_for: tuple[type[BaseException], ...] = ()
    dont_autoretry_for: tuple[type[BaseException], ...] = ()
    retry_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """What ``autoretry_for`` passes to ``retry()``: ``max_retries`` and ``countdown``."""

    def __post_init__(self) -> None:
        if self.max_retries is not None and (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise InvalidOptionError(
                f"max_retries must be a whole number, 0 or more, or None (no limit), "
                f"not {self.max_retries!r}."
            )
        check_countdown(self.default_retry_delay, "default_retry_delay")
        check_countdown(self.retry_backoff_max, "retry_backoff_max")
        if not isinstance(self.retry_backoff, bool):
            check_countdown(self.retry_backoff, "retry_backoff")
        for what in ("autoretry_for", "dont_autoretry_for"):
            kinds = getattr(self, what)
            if isinstance(kinds, list | set | frozenset):  # as Celery, which takes tuple(...)
                object.__setattr__(self, what, kinds := tuple(kinds))
            _check_exception_types(kinds, what)
        unknown = set(self.retry_kwargs) - {"max_retries", "countdown"}
        if unknown:
            raise InvalidOptionError(
                f"retry_kwargs takes max_retries and countdown, not {sorted(unknown)}."
            )
        if "countdown" in self.retry_kwargs:
            check_countdown(self.retry_kwargs["countdown"], "retry_kwargs countdown")

    def delay(self, retries: int) -> float:
        """Seconds before an automatic retry (``autoretry_for``): the backoff when
        ``retry_backoff`` is set, else ``retry_kwargs``' countdown, else
        ``default_retry_delay``, as in Celery."""
        if self.retry_backoff:
            factor = 1.0 if self.retry_backoff is True else float(self.retry_backoff)
            return backoff_delay(
                retries, factor=factor, maximum=self.retry_backoff_max, jitter=self.retry_jitter
            )
        return float(self.retry_kwargs.get("countdown", self.default_retry_delay))

    def exhausted(self, retries: int, max_retries: int | None = None) -> bool:
        """Whether a job that has been retried ``retries`` times may not be retried again,
        under the task's ``max_retries`` or the one given (None: the task's)."""
        limit = self.max_retries if max_retries is None else max_retries
        return limit is not None and retries >= limit

    def autoretries(self, exc: BaseException, retries: int) -> bool:
        """Whether this exception, raised by the task, retries the job by itself."""
        return (
            isinstance(exc, self.autoretry_for)
            and not isinstance(exc, self.dont_autoretry_for)
            and not isinstance(exc, Reject | Ignore)
            and not self.exhausted(retries, self.retry_kwargs.get("max_retries"))
        )


def _check_exception_types(value: Any, what: str) -> None:
    if not isinstance(value, tuple) or not all(
        isinstance(kind, type) and issubclass(kind, BaseException) for kind in value
    ):
        raise InvalidOptionError(
            f"{what} must be a tuple of exception classes, e.g. (ConnectionError,), not {value!r}."
        )
