"""Progress: what a running task says of itself (Celery's ``update_state``), for any process.

A task's ``self.update_state(state="PROGRESS", meta={...})`` writes ``{"state": ..., "meta":
...}`` to its job's ``progress`` column, fenced by the take that runs it (id, attempts,
STARTED): a run that has lost its job (its lease ran out, it was revoked) writes nothing.
``AsyncResult.state`` and ``.info`` show it while the job runs; every way a job leaves
STARTED (an outcome, a retry, a give-back, a rescue, a revoke) clears it, so a finished job
shows its outcome, as Celery's result does once the task returns.

In a process-pool child the write goes through the child's own app (it loads the app, and
its engine, on start): the pipe to the worker carries only whole batches and their outcomes,
and a write made before ``update_state`` returns is one that a reader can see at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlqueue.exceptions import InvalidOptionError, NotRunningError
from sqlqueue.jobs import JobStatus
from sqlqueue.serialization import encode_json

if TYPE_CHECKING:
    from sqlqueue.app import SQLQueue
    from sqlqueue.request import Request

logger = logging.getLogger(__name__)

OWN_STATES = frozenset(JobStatus) - {JobStatus.STARTED}
"""States a task may not report: a job is in them only by what the worker records, and
``r.state`` saying SUCCESS while ``r.ready()`` says False would mislead every reader."""


def update_state(
    app: SQLQueue,
    request: Request | None,
    task_id: str | None,
    state: str | None,
    meta: Any,
    extra: Mapping[str, Any],
) -> None:
    """Write the running job's progress (see the module's docstring); checked the same way in
    eager mode, where there is no row to write it to."""
    if extra:
        raise InvalidOptionError(
            f"update_state() takes task_id, state and meta; {', '.join(sorted(extra))} "
            "would only reach Celery's result backend, which sqlqueue does not have."
        )
    if request is None or not request.id:
        raise NotRunningError(
            "update_state() writes the progress of the job that is running, and none is: "
            "call it from a bind=True task while a worker (or eager mode) runs it."
        )
    if task_id is not None and task_id != request.id:
        raise InvalidOptionError(
            f"update_state(task_id={task_id!r}) names another job than the one running "
            f"({request.id}); a job's progress is written only by the run that holds it. "
            "Leave task_id out."
        )
    progress = {"state": check_state(state), "meta": check_meta(meta)}
    if request.is_eager:
        return
    if not app.store.update_progress((request.id, request.attempts), progress):
        logger.warning(
            "update_state of job id=%s attempt=%d not written: this run no longer holds the "
            "job (revoked, or its lease ran out and another worker took it)",
            request.id,
            request.attempts,
        )


def check_state(state: str | None) -> str:
    """A state a task may report, or a clear refusal."""
    if not isinstance(state, str) or not state:
        raise InvalidOptionError(
            f"update_state() needs a state name, such as state='PROGRESS', not {state!r}."
        )
    if state in OWN_STATES:
        raise InvalidOptionError(
            f"update_state(state={state!r}): {state} is a state the worker records from the "
            "job's outcome; report progress under a name of your own, such as 'PROGRESS'."
        )
    return state


def check_meta(meta: Any) -> Any:
    """The meta as the row will give it back (JSON), or a ``SerializationError``."""
    return json.loads(encode_json(meta, "update_state(meta=...)"))
