"""A workflow as it is written: its jobs, and which of them wait for which.

``planning`` turns signatures, chains, groups and chords into a ``WorkflowPlan``; the store
writes a plan in one statement (``JobStore.insert_workflow``). A job with prerequisites is
stored ``WAITING``, with a count of the prerequisites still to finish, and is released (made
``PENDING``) in the transaction that records the last one's success (``settle``): the
database, not a worker's memory, decides when a step may run. What it receives from them is
read when it is taken (``fed``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlqueue.jobs import Job
from sqlqueue.serialization import encode_calls

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


def released_by(plan: WorkflowPlan) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """For each job of the plan that others wait for: the jobs its success releases (its
    dependents), and those its failure releases (its ``link_error`` callbacks)."""
    dependents: dict[str, list[str]] = {}
    errbacks: dict[str, list[str]] = {}
    for job in plan.jobs:
        released = errbacks if job.feed is Feed.FAILED_ID else dependents
        for prerequisite in dict.fromkeys(job.prerequisites):
            released.setdefault(prerequisite, []).append(job.id)
    return dependents, errbacks


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedRow:
    """One job of a plan as its row is written, every check made: its arguments are JSON
    texts, and its times wait for the database's clock."""

    id: str
    task_name: str
    queue: str
    priority: int
    args: str
    kwargs: str
    eta: datetime | None
    countdown: float
    """Seconds after the insert; for a waiting job, after its release."""
    expires_at: datetime | None
    expires_in: float | None
    parent_id: str | None
    group_id: str | None
    group_index: int | None
    group_members: list[str] | None
    """On a group's first job: the ids of all its jobs, in order."""
    waiting_for: int
    """Prerequisites still to finish: 0 for a job ready at once."""
    prerequisites: list[str] | None
    feed: str | None
    dependents: list[str] | None
    errbacks: list[str] | None


def planned_rows(plan: WorkflowPlan, max_payload_bytes: int) -> list[PlannedRow]:
    """The rows of a plan's jobs; raises ``SerializationError`` or ``InvalidOptionError``
    for the first job whose arguments cannot be stored, before anything is written."""
    dependents, errbacks = released_by(plan)
    members: dict[str, list[str]] = {}
    for job in sorted(plan.jobs, key=lambda job: job.group_index or 0):
        if job.group_id is not None:
            members.setdefault(job.group_id, []).append(job.id)
    rows = []
    for job in plan.jobs:
        if job.feed in (Feed.RESULT, Feed.FAILED_ID) and job.prerequisites != (job.parent_id,):
            raise ValueError(  # what ``fed`` relies on: such a step follows its parent alone
                f"job {job.id} receives from its prerequisites {job.prerequisites} one value, "
                f"but its parent is {job.parent_id}"
            )
        (args,), (kwargs,) = encode_calls(
            job.task_name, [(job.args, job.kwargs)], max_payload_bytes
        )
        prerequisites = list(dict.fromkeys(job.prerequisites))
        rows.append(
            PlannedRow(
                id=job.id,
                task_name=job.task_name,
                queue=job.options.queue,
                priority=job.options.priority,
                args=args,
                kwargs=kwargs,
                eta=job.options.eta,
                countdown=job.options.countdown or 0.0,
                expires_at=job.options.expires_at,
                expires_in=job.options.expires_in,
                parent_id=job.parent_id,
                group_id=job.group_id,
                group_index=job.group_index,
                group_members=members.get(job.group_id or "") if job.group_index == 0 else None,
                waiting_for=len(prerequisites),
                prerequisites=list(job.prerequisites) or None,
                feed=None if job.feed is None else job.feed.value,
                dependents=dependents.get(job.id),
                errbacks=errbacks.get(job.id),
            )
        )
    return rows


def fed(job: Job, received: Mapping[str, Any]) -> Job:
    """A taken job with what it receives put before its own arguments: ``received`` holds
    the result of each job that feeds one, by that job's id (a step receiving one result
    follows that job alone, its parent), and the list a chord's body receives, by the
    body's id."""
    if job.feed == Feed.RESULT:
        value = received.get(cast(str, job.parent_id))
    elif job.feed == Feed.RESULTS:
        value = received.get(job.id, [])
    elif job.feed == Feed.FAILED_ID:
        value = job.parent_id
    else:
        return job
    return replace(job, args=[value, *job.args])


def follows_group(feed: str | None, parent_id: str | None, prerequisites: Sequence[str]) -> bool:
    """Whether a step is a chord's body: it follows a group, whose results it receives (or
    would, but for ``.si()``); its parent is then the group, not one of the jobs it waits for."""
    return feed == Feed.RESULTS or (parent_id is not None and parent_id not in prerequisites)
