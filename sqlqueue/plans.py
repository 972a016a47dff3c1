"""A workflow as it is written: its jobs, and which of them wait for which.

``canvas`` turns signatures, chains, groups and chords into a ``WorkflowPlan``; the store
writes a plan in one transaction (``JobStore.insert_workflow``). A job with prerequisites is
stored ``WAITING``, with a count of the prerequisites still to finish, and is released (made
``PENDING``, its arguments completed from their results) in the transaction that records
the last one's outcome: the database, not a worker's memory, decides when a step may run.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlqueue.caller_connections import CallerConnection
    from sqlqueue.send_options import SendOptions


class Feed(enum.StrEnum):
    """What a waiting job receives from its prerequisites, before its own arguments."""

    RESULT = "result"
    """The one prerequisite's result: a chain's next step, a ``link`` callback."""
    RESULTS = "results"
    """The list of the prerequisites' results, in their order: a chord's body."""
    FAILED_ID = "failed_id"
    """The failed prerequisite's id: a ``link_error`` callback, released by a failure only."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedJob:
    """One job of a workflow, as it will be written."""

    id: str
    task_name: str
    args: list[Any]
    kwargs: dict[str, Any]
    options: SendOptions
    """Its queue, priority, start (a countdown counts from the job's release) and expiry."""
    prerequisites: tuple[str, ...] = ()
    """Ids of the jobs it waits for, in the order their results are fed to it; empty: ready
    at once."""
    feed: Feed | None = None
    """What it receives from its prerequisites; None: nothing (an immutable signature,
    ``.si()``), it only waits for them."""
    parent_id: str | None = None
    """The job, or the group, whose outcome it follows (``AsyncResult.parent``)."""
    group_id: str | None = None
    """The group whose results it is one of (``GroupResult``), at ``group_index``."""
    group_index: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowPlan:
    """Every job of one workflow, a job always after its prerequisites."""

    id: str
    """The workflow's id: that of the handle ``apply_async`` returns (a chain's last job,
    a chord's body, a group). Revoking that handle revokes every step not yet started."""
    jobs: tuple[PlannedJob, ...]
    connection: CallerConnection | None = None
    """A connection whose open transaction the workflow joins; None: one of its own (or
    the ``app.using()`` block's)."""
