"""Checks on what callers pass to ``@app.task`` and ``apply_async``: refuse early, write nothing."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlqueue.conf import MAX_NAME_LENGTH, MAX_PRIORITY, MIN_PRIORITY
from sqlqueue.exceptions import InvalidOptionError


def check_name(value: Any, what: str) -> str:
    """A task or queue name: a non-empty string of printable characters, not too long."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidOptionError(f"The {what} must be a non-empty string, not {value!r}.")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidOptionError(
            f"The {what} {value[:40]!r}… is {len(value)} characters long; "
            f"use at most {MAX_NAME_LENGTH}."
        )
    if not value.isprintable():
        raise InvalidOptionError(
            f"The {what} {value!r} contains control characters; use printable characters only."
        )
    return value


def check_priority(value: Any) -> int:
    """A priority: an integer in the accepted range, higher runs first."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOptionError(f"priority must be an integer, not {value!r}.")
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise InvalidOptionError(
            f"priority {value} is out of range; use {MIN_PRIORITY} to {MAX_PRIORITY} "
            "(higher runs first)."
        )
    return value


def check_countdown(value: Any, what: str = "countdown") -> float:
    """A delay in seconds: a finite number, zero or more."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidOptionError(f"{what} must be a number of seconds, not {value!r}.")
    if value < 0:
        raise InvalidOptionError(f"{what} must be zero or more seconds, not {value!r}.")
    return float(value)


def check_limit(value: Any, what: str) -> float | None:
    """A time limit: None, or a number of seconds above zero."""
    if value is None:
        return None
    seconds = check_countdown(value, what)
    if seconds == 0:
        raise InvalidOptionError(f"{what} must be more than 0 seconds (or None for no limit).")
    return seconds


def check_job_id(value: Any) -> str:
    """A job id as sqlqueue writes it: a UUID in its canonical text form."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidOptionError(f"{value!r} is not a job id; job ids are UUIDs.") from None


def check_aware(value: Any, what: str) -> datetime:
    """A datetime with a timezone, in UTC; a naive one is refused, not guessed at."""
    if not isinstance(value, datetime):
        raise InvalidOptionError(f"{what} must be a datetime, not {value!r}.")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidOptionError(
            f"{what} {value.isoformat()} has no timezone; pass an aware datetime, "
            "e.g. datetime(..., tzinfo=timezone.utc)."
        )
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """When a job becomes ready (now, after a countdown, or at an eta) and, optionally, when
    it expires unstarted (after some seconds, or at a time)."""

    countdown: float | None = None
    eta: datetime | None = None
    expires_in: float | None = None
    expires_at: datetime | None = None

    @classmethod
    def from_options(cls, countdown: Any, eta: Any, expires: Any = None) -> Schedule:
        """Check ``countdown=``, ``eta=`` and ``expires=`` (seconds or an aware datetime)."""
        if countdown is not None and eta is not None:
            raise InvalidOptionError("Give countdown= or eta=, not both.")
        schedule = cls(
            countdown=check_countdown(countdown) if countdown is not None else None,
            eta=check_aware(eta, "eta") if eta is not None else None,
            expires_in=(
                check_countdown(expires, "expires")
                if expires is not None and not isinstance(expires, datetime)
                else None
            ),
            expires_at=check_aware(expires, "expires") if isinstance(expires, datetime) else None,
        )
        if schedule.expires_before_start():
            raise InvalidOptionError(
                "expires= comes before the job may start (countdown=/eta=), so it could never "
                "run; give a later expiry."
            )
        return schedule

    def expires_before_start(self) -> bool:
        """Whether the expiry falls before (or when) the job becomes ready."""
        now = datetime.now(UTC)
        start = self.eta or now + timedelta(seconds=self.countdown or 0)
        if self.expires_at is not None:
            return self.expires_at <= start
        if self.expires_in is not None:
            return now + timedelta(seconds=self.expires_in) <= start
        return False
