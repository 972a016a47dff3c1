"""Unique jobs' keys: given with a send (``unique_key=``), or made from the call of a task
declared ``@app.task(unique=True)``. The database holds the rest: a unique index on the
keys of unfinished jobs (``schema``, ``ix_sqlqueue_jobs_unique``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlqueue.conf import MAX_JOB_ID_LENGTH
from sqlqueue.exceptions import SerializationError

if TYPE_CHECKING:
    from sqlqueue.send_options import SendOptions
    from sqlqueue.tasks import Task


def unique_keys(
    task: Task[..., Any] | None,
    name: str,
    calls: Sequence[tuple[Sequence[Any], Mapping[str, Any]]],
    options: SendOptions,
) -> list[str] | None:
    """Each call's key: ``unique_key=`` for every call of the send, else, for a unique task,
    the key of its call (``call_key``); None when the send has no keys."""
    if options.unique_key is not None:
        return [options.unique_key] * len(calls)
    if task is not None and task.unique:
        return [call_key(name, args, kwargs) for args, kwargs in calls]
    return None


def call_key(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """The task's name and the canonical JSON of the call (keys sorted), so that equal calls
    have equal keys; its SHA-256 when that is longer than a key may be."""
    try:
        arguments = json.dumps(
            [list(args), dict(kwargs)], sort_keys=True, separators=(",", ":"), allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"The arguments of task {name!r} must be JSON-serialisable (str, int, float, bool, "
            f"None, list, dict): {exc}. Pass plain data, such as an id instead of an object."
        ) from exc
    key = f"{name}:{arguments}"
    if len(key) <= MAX_JOB_ID_LENGTH:
        return key
    return f"{name[:150]}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
