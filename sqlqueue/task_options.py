"""The options of ``@app.task`` and ``@shared_task``: their names and types, and Celery's
options that change nothing here."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

from sqlqueue.exceptions import CeleryCompatibilityWarning, InvalidOptionError

if TYPE_CHECKING:
    from sqlqueue.tasks import Task


class TaskOptions(TypedDict, total=False):
    """The options of ``@app.task`` and ``@shared_task`` besides ``bind`` (see docs/tasks.md)."""

    name: str
    queue: str
    priority: int
    base: type[Task[Any, Any]]
    max_retries: int | None
    default_retry_delay: float
    autoretry_for: tuple[type[BaseException], ...]
    dont_autoretry_for: tuple[type[BaseException], ...]
    retry_kwargs: Mapping[str, Any]
    retry_backoff: bool | float
    retry_backoff_max: float
    retry_jitter: bool
    time_limit: float | None
    soft_time_limit: float | None
    ignore_result: bool
    expires: float | datetime | None
    unique: bool
    rate_limit: str | float | None
    concurrency_limit: int | None
    concurrency_key: Callable[..., str] | None
    # Celery's, accepted with a warning that says why they change nothing here.
    acks_late: bool
    acks_on_failure_or_timeout: bool
    reject_on_worker_lost: bool
    track_started: bool
    serializer: str
    store_errors_even_if_ignored: bool
    throws: tuple[type[BaseException], ...]
    typing: bool


OPTIONS = frozenset(TaskOptions.__annotations__) - {"base"}
"""The options a task takes (``base`` chooses the class instead)."""

WITHOUT_EFFECT = {
    "acks_late": "a job is taken under a lease and finished only once it has run",
    "acks_on_failure_or_timeout": "a job is taken under a lease and finished once it has run",
    "reject_on_worker_lost": "a job whose worker dies runs again after its lease",
    "track_started": "a job is always STARTED while it runs",
    "serializer": "jobs are always JSON",
    "store_errors_even_if_ignored": "a failure is always stored",
    "throws": "every failure is logged with its traceback",
    "typing": "arguments are always checked against the signature at send time",
}
"""Celery's task options that change nothing here, and why; given, each warns once."""


def set_options(task: Task[..., Any], options: Mapping[str, Any]) -> None:
    """Set the decorator's options on a task, over its class's: Celery's names, an attribute
    the base class defines (a project's own option), or one of Celery's that does nothing
    here (with a warning); any other name is refused, naming the nearest."""
    for option, value in options.items():
        if option in WITHOUT_EFFECT:
            warnings.warn(
                f"Task option {option}= has no effect in sqlqueue: {WITHOUT_EFFECT[option]}.",
                CeleryCompatibilityWarning,
                stacklevel=4,
            )
        elif option not in OPTIONS and not hasattr(type(task), option):
            nearest = difflib.get_close_matches(option, OPTIONS, n=1)
            hint = f"did you mean {nearest[0]}=? " if nearest else ""
            raise InvalidOptionError(
                f"Unknown task option {option}=; {hint}the options are "
                f"{', '.join(sorted(OPTIONS - WITHOUT_EFFECT.keys()))}, and any attribute of "
                "the base= class."
            )
        setattr(task, option, value)
