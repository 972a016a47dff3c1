"""Celery's state names (``from celery import states``), as sqlqueue stores them.

A job's status is one of ``JobStatus``, whose values are these very strings, so
``result.state == states.SUCCESS`` reads as it does with Celery. ``RECEIVED`` exists for code
that names it; sqlqueue never stores it (a job that is taken is ``STARTED`` at once).
"""

from __future__ import annotations

from sqlqueue.jobs import JobStatus

PENDING = JobStatus.PENDING.value
"""Waiting to be taken, or unknown (Celery's ``AsyncResult`` says PENDING for any unknown id)."""
RECEIVED = "RECEIVED"
STARTED = JobStatus.STARTED.value
SUCCESS = JobStatus.SUCCESS.value
FAILURE = JobStatus.FAILURE.value
REVOKED = JobStatus.REVOKED.value
REJECTED = "REJECTED"
RETRY = JobStatus.RETRY.value
IGNORED = "IGNORED"
WAITING = JobStatus.WAITING.value
"""sqlqueue's own: a workflow's step waiting for the steps before it (Celery sends such a
step only once they finish, so it has no name for it)."""

READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED})
"""States a job never leaves: ``AsyncResult.ready()`` is True."""
UNREADY_STATES = frozenset({WAITING, PENDING, RECEIVED, STARTED, REJECTED, RETRY})
EXCEPTION_STATES = frozenset({RETRY, FAILURE, REVOKED})
"""States whose ``info`` is an exception."""
PROPAGATE_STATES = frozenset({FAILURE, REVOKED})
"""States in which ``AsyncResult.get()`` raises."""
ALL_STATES = frozenset({PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, RETRY, REVOKED})
"""Celery's ``ALL_STATES`` (which, as there, leaves out REJECTED and IGNORED)."""

__all__ = [
    "ALL_STATES",
    "EXCEPTION_STATES",
    "FAILURE",
    "IGNORED",
    "PENDING",
    "PROPAGATE_STATES",
    "READY_STATES",
    "RECEIVED",
    "REJECTED",
    "RETRY",
    "REVOKED",
    "STARTED",
    "SUCCESS",
    "UNREADY_STATES",
    "WAITING",
]
