"""SendOptions: how the jobs of one send are written (queue, priority, start, expiry, transaction).

Every way of sending (``delay``, ``apply_async``, ``delay_many``, their async forms,
``send_task``, the Django backend) builds one ``SendOptions`` and hands it on to the store,
so an option is checked, and falls back to its default, in this module only. A copy with
other options is ``dataclasses.replace(options, queue="mail")``, checked like the first.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from sqlqueue.celery_names import JSON_NAMES, SEND_OPTIONS_REFUSED, SEND_OPTIONS_WITHOUT_EFFECT
from sqlqueue.conf import DEFAULT_PRIORITY, DEFAULT_QUEUE, Settings
from sqlqueue.exceptions import CeleryCompatibilityWarning, InvalidOptionError
from sqlqueue.options import (
    check_aware,
    check_countdown,
    check_job_id,
    check_name,
    check_priority,
    check_unique_key,
)

if TYPE_CHECKING:
    from sqlqueue.caller_connections import AsyncCallerConnection, CallerConnection
    from sqlqueue.tasks import Task


@dataclass(frozen=True, slots=True, kw_only=True)
class SendOptions:
    """The options of one send, the same for every job it writes; refused when built if one
    is malformed or out of range, so nothing is written."""

    countdown: float | None = None
    """Seconds after the insert before the jobs may run; None: at once (or at ``eta``)."""
    eta: datetime | None = None
    """When the jobs may run, in UTC (an aware datetime of any zone is converted)."""
    expires: float | datetime | None = None
    """Seconds after the insert, or a time in UTC, after which a job not yet started is
    never run; None: never."""
    queue: str = DEFAULT_QUEUE
    priority: int = DEFAULT_PRIORITY
    """Higher runs first."""
    task_id: str | None = None
    """The job's id, chosen by the caller (Celery's ``task_id=``); None: a new UUID. Only for
    a send of one job; an id taken already is refused when the job is written."""
    unique_key: str | None = None
    """At most one unfinished job per key (docs/tasks.md, "Unique jobs"): while one is
    unfinished, a send with its key writes nothing and answers with that job. None: the
    task's own key when it is ``unique=True``, else no key."""
    connection: CallerConnection | AsyncCallerConnection | None = None
    """A connection whose open transaction the jobs join. None: a transaction of their own,
    or, for a sync send, the connection of the ``app.using()`` block around the send (looked
    up when the jobs are written, not here)."""

    def __post_init__(self) -> None:
        check_name(self.queue, "queue name")
        check_priority(self.priority)
        if self.task_id is not None:
            object.__setattr__(self, "task_id", check_job_id(self.task_id))
        if self.unique_key is not None:
            check_unique_key(self.unique_key)
        if self.countdown is not None and self.eta is not None:
            raise InvalidOptionError("Give countdown= or eta=, not both.")
        # Normalised once here, so what is written never depends on how it was given.
        if self.countdown is not None:
            object.__setattr__(self, "countdown", check_countdown(self.countdown))
        if self.eta is not None:
            object.__setattr__(self, "eta", check_aware(self.eta, "eta"))
        if isinstance(self.expires, datetime):
            object.__setattr__(self, "expires", check_aware(self.expires, "expires"))
        elif self.expires is not None:
            object.__setattr__(self, "expires", check_countdown(self.expires, "expires"))
        if self._expires_before_start():
            raise InvalidOptionError(
                "expires= comes before the job may start (countdown=/eta=), so it could never "
                "run; give a later expiry."
            )

    @classmethod
    def build(
        cls,
        conf: Settings,
        task: Task[..., Any] | None = None,
        *,
        name: str | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **given: Any,
    ) -> SendOptions:
        """The options of a send from those its caller gave, where None means not given.

        ``queue`` and ``priority`` fall back to the task's own, then to the route that
        ``conf.task_routes`` gives for the task's name (asked with the call's ``args`` and
        ``kwargs``), then to the app's defaults (``conf.task_default_queue``,
        ``conf.task_default_priority``, ``DEFAULT_PRIORITY``), in Celery's order. ``task`` is
        None for a name sent with ``send_task`` that is not registered here: ``name`` is then
        the name sent.
        """
        celery_options = given.keys() & CELERY_OPTION_NAMES
        if celery_options:
            check_celery_options({name: given.pop(name) for name in celery_options})
        unknown = given.keys() - OPTION_NAMES
        if unknown:
            raise InvalidOptionError(
                f"Unknown send option {', '.join(map(repr, sorted(unknown)))}; the options are "
                f"{', '.join(OPTION_NAMES)} (those of apply_async)."
            )
        queue, priority = given.pop("queue", None), given.pop("priority", None)
        if task is not None:
            queue = task.queue if queue is None else queue
            priority = task.priority if priority is None else priority
            if given.get("expires") is None and task.expires is not None:
                given["expires"] = task.expires
        routes = conf.routes
        if routes is not None and (queue is None or priority is None):
            route = routes.route(
                task.name if task is not None else name or "",
                args,
                kwargs or {},
                {key: value for key, value in given.items() if value is not None},
                task=task,
            )
            queue = route.queue if queue is None else queue
            priority = route.priority if priority is None else priority
        if priority is None:
            priority = conf.task_default_priority
        return cls(
            queue=conf.task_default_queue if queue is None else queue,
            priority=DEFAULT_PRIORITY if priority is None else priority,
            **given,
        )

    @property
    def expires_at(self) -> datetime | None:
        """The expiry when given as a time."""
        return self.expires if isinstance(self.expires, datetime) else None

    @property
    def expires_in(self) -> float | None:
        """The expiry when given in seconds after the insert."""
        return None if isinstance(self.expires, datetime) else self.expires

    def _expires_before_start(self) -> bool:
        if self.expires is None:
            return False
        now = datetime.now(UTC)
        start = self.eta or now + timedelta(seconds=self.countdown or 0)
        if self.expires_at is not None:
            return self.expires_at <= start
        return now + timedelta(seconds=self.expires_in or 0) <= start


OPTION_NAMES = tuple(field.name for field in fields(SendOptions))
"""The options a send takes, in the order ``apply_async`` lists them."""


class CelerySendOptions(TypedDict, total=False):
    """Options of Celery's ``apply_async`` that sqlqueue takes only to say what they do here:
    those in ``SEND_OPTIONS_WITHOUT_EFFECT`` warn, the others are refused naming the way."""

    retry: bool
    retry_policy: Mapping[str, Any]
    serializer: str
    compression: str
    add_to_parent: bool
    link: Any
    link_error: Any
    headers: Mapping[str, Any]
    ignore_result: bool
    time_limit: float
    soft_time_limit: float
    exchange: str
    routing_key: str
    shadow: str


CELERY_OPTION_NAMES = frozenset(CelerySendOptions.__annotations__)


def check_celery_options(given: Mapping[str, Any]) -> None:
    """Refuse Celery's send options that would change where or how the job runs, naming the
    sqlqueue way, and warn once for those that change nothing here; nothing is sent when one
    is refused. Also what a signature's options go through when set (``canvas``)."""
    refused = [name for name in given if name in SEND_OPTIONS_REFUSED]
    if given.get("serializer", "json") not in JSON_NAMES:
        raise InvalidOptionError(
            f"serializer={given['serializer']!r}: jobs are JSON only, never pickle (which runs "
            "code chosen by whoever can write a job); leave serializer= out."
        )
    if refused:
        raise InvalidOptionError(
            "; ".join(f"{name}= is Celery's: {SEND_OPTIONS_REFUSED[name]}" for name in refused)
            + "."
        )
    warnings.warn(
        "These options of Celery's apply_async have no effect in sqlqueue: "
        + "; ".join(f"{name} ({SEND_OPTIONS_WITHOUT_EFFECT[name]})" for name in given)
        + ".",
        CeleryCompatibilityWarning,
        stacklevel=4,  # this function, build(), apply_async() or send_task(), the caller
    )
