"""Checks on what callers pass to ``@app.task`` and ``apply_async``: refuse early, write nothing."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from sqlqueue.conf import MAX_JOB_ID_LENGTH, MAX_NAME_LENGTH, MAX_PRIORITY, MIN_PRIORITY
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


def check_listen_url(value: Any) -> str:
    """A worker's ``listen_url``: a PostgreSQL URL (only PostgreSQL has LISTEN)."""
    if isinstance(value, str):
        try:
            if make_url(value).get_backend_name() in ("postgresql", "postgres"):
                return value
        except ArgumentError:
            pass
    raise InvalidOptionError(
        f"listen_url must be a PostgreSQL URL (postgresql://…), not {value!r}."
    )


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
    """A job id: text of 1 to ``MAX_JOB_ID_LENGTH`` characters, as a caller may choose it
    (Celery's ``task_id=``), or a ``uuid.UUID``, in the canonical form sqlqueue's own ids take."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_JOB_ID_LENGTH or "\0" in value:
        raise InvalidOptionError(
            f"{value!r} is not a job id; a job id is a string of 1 to {MAX_JOB_ID_LENGTH} "
            "characters (sqlqueue's own are UUIDs, e.g. the .id of an AsyncResult)."
        )
    return value


def check_unique_key(value: Any) -> str:
    """A unique job's key (``unique_key=``): text of 1 to ``MAX_JOB_ID_LENGTH`` characters."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_JOB_ID_LENGTH or "\0" in value:
        raise InvalidOptionError(
            f"unique_key={value!r}: a unique key is a string of 1 to {MAX_JOB_ID_LENGTH} "
            "characters, e.g. 'sync-account-42'."
        )
    return value


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
