"""Periodic tasks as a project declares them, with Celery's names: ``app.conf.beat_schedule``,
``app.add_periodic_task``, and the ``on_after_configure``/``on_after_finalize`` signals in
which Celery projects call it. Read into ``PeriodicTask`` values, which the scheduler
(``sqlqueue.scheduler``) sends at their ticks.

An entry is checked when it is set (``app.conf.beat_schedule = ...``, ``add_periodic_task``)
and again when a scheduler reads them all, since Celery projects also write entries into the
dict in place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlqueue.exceptions import ConfigurationError, InvalidOptionError, SQLQueueError
from sqlqueue.options import check_name
from sqlqueue.schedules import Schedule, as_schedule
from sqlqueue.send_options import SendOptions
from sqlqueue.signatures import Signature

if TYPE_CHECKING:
    from sqlqueue.app import SQLQueue

MAX_SCHEDULE_NAME_LENGTH = 255
"""Longest name of a periodic task, in characters (the key of its row in
``sqlqueue_schedules``)."""

ENTRY_KEYS = ("task", "schedule", "args", "kwargs", "options")
"""The keys of a ``beat_schedule`` entry, as Celery's."""

REFUSED_OPTIONS = {
    **dict.fromkeys(["countdown", "eta"], "a periodic task's job is due at its tick"),
    "task_id": "each tick's job has an id of its own",
    "connection": "each tick's job is written in the scheduler's own transaction",
    **dict.fromkeys(
        ["link", "link_error"],
        "send the next step from the task, or schedule a task that sends the workflow",
    ),
}
"""Send options a periodic task does not take, and why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeriodicTask:
    """A task sent at each tick of its schedule, under a name that keeps its history."""

    name: str
    task: str
    """The name of the task to send (registered here or not, as ``send_task``)."""
    schedule: Schedule
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    """Send options (``queue``, ``priority``, ``expires``, ``unique_key``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleState:
    """What the database knows of a periodic task (its row in ``sqlqueue_schedules``)."""

    name: str
    task_name: str
    last_tick: datetime
    """The latest tick taken: sent, or, for a periodic task first seen, skipped."""
    job_id: str | None
    """The job sent for ``last_tick``; None when it was skipped."""
    sent_at: datetime | None
    """When that job was sent, by the database's clock."""


def periodic_task(name: Any, entry: Any) -> PeriodicTask:
    """A ``beat_schedule`` entry, checked; ``ConfigurationError`` names the entry and what is
    wrong with it."""
    try:
        if not isinstance(name, str) or not name or len(name) > MAX_SCHEDULE_NAME_LENGTH:
            raise InvalidOptionError(
                f"its name must be text of 1 to {MAX_SCHEDULE_NAME_LENGTH} characters"
            )
        if not isinstance(entry, Mapping):
            raise InvalidOptionError(f"give a dict with {', '.join(ENTRY_KEYS)}, not {entry!r}")
        unknown = sorted(set(entry) - set(ENTRY_KEYS))
        if "relative" in unknown:
            raise InvalidOptionError(
                "relative= is not supported: every interval ticks at whole multiples of its "
                "length since the Unix epoch"
            )
        if unknown:
            raise InvalidOptionError(
                f"unknown key {', '.join(map(repr, unknown))}; the keys are {', '.join(ENTRY_KEYS)}"
            )
        if "task" not in entry or "schedule" not in entry:
            raise InvalidOptionError("give at least 'task' and 'schedule'")
        task = check_name(entry["task"], "task name")
        args, kwargs, options = entry.get("args", ()), entry.get("kwargs"), entry.get("options")
        if isinstance(args, str | bytes) or not isinstance(args, Sequence):
            raise InvalidOptionError(f"args must be a list or tuple, not {args!r}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise InvalidOptionError(f"kwargs must be a dict, not {kwargs!r}")
        if options is not None and not isinstance(options, Mapping):
            raise InvalidOptionError(f"options must be a dict, not {options!r}")
        refused = sorted(set(options or {}) & REFUSED_OPTIONS.keys())
        if refused:
            raise InvalidOptionError(
                "; ".join(f"options {key}= is refused: {REFUSED_OPTIONS[key]}" for key in refused)
            )
        return PeriodicTask(
            name=name,
            task=task,
            schedule=as_schedule(entry["schedule"]),
            args=tuple(args),
            kwargs=dict(kwargs or {}),
            options=dict(options or {}),
        )
    except InvalidOptionError as exc:
        raise ConfigurationError(f"beat_schedule[{name!r}]: {str(exc).rstrip('.')}.") from None


def check_beat_schedule(value: Any) -> dict[str, Any]:
    """``app.conf.beat_schedule`` as set: a dict of entries, each checked; kept as given, so
    that entries added to it in place are read too."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidOptionError(
            "give a dict of periodic tasks by name, e.g. {'add-every-30s': {'task': "
            f"'tasks.add', 'schedule': 30.0, 'args': (16, 16)}}}}, not {value!r}."
        )
    for name, entry in value.items():
        periodic_task(name, entry)
    return dict(value)


class Signal:
    """Celery's app signals ``on_after_configure`` and ``on_after_finalize``. Their receivers
    (``@app.on_after_configure.connect``) are called once, with ``sender=app``, when the
    app's periodic tasks are first read: as a worker, ``sqlqueue beat`` or
    ``sqlqueue schedules`` starts."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._receivers: dict[Any, Callable[..., Any]] = {}

    def connect(
        self,
        receiver: Callable[..., Any] | None = None,
        *,
        sender: Any = None,
        weak: bool = True,
        dispatch_uid: Any = None,
    ) -> Any:
        """Call ``receiver(sender=app, **kwargs)`` when the signal is sent; as a decorator,
        with or without arguments. A second receiver with the same ``dispatch_uid`` replaces
        nothing and is not added (Celery's rule). ``sender`` and ``weak`` are accepted for
        Celery's sake: the app is the only sender, and receivers are held strongly."""
        if receiver is None:
            return lambda function: self.connect(
                function, sender=sender, weak=weak, dispatch_uid=dispatch_uid
            )
        self._receivers.setdefault(dispatch_uid or receiver, receiver)
        return receiver

    def disconnect(
        self, receiver: Callable[..., Any] | None = None, dispatch_uid: Any = None
    ) -> None:
        self._receivers.pop(dispatch_uid or receiver, None)

    def send(self, sender: Any, **kwargs: Any) -> list[tuple[Callable[..., Any], Any]]:
        return [
            (receiver, receiver(sender=sender, signal=self, **kwargs))
            for receiver in list(self._receivers.values())
        ]

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"


def add_periodic_task(
    app: SQLQueue,
    schedule: Any,
    sig: Any,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | Sequence[Any] = (),
    name: str | None = None,
    **options: Any,
) -> str:
    """Celery's ``app.add_periodic_task``: an entry in ``app.conf.beat_schedule``, named
    ``name`` or, as in Celery, by the signature's ``repr`` (``tasks.add(1, 2)``); its key."""
    if isinstance(sig, Signature):
        if sig.subtask_type is not None:
            raise ConfigurationError(
                f"add_periodic_task({sig!r}): a periodic task sends one task, not a "
                f"{sig.subtask_type}; schedule a task that sends the workflow."
            )
        sig = sig.clone(args or None, dict(kwargs) or None)
    elif hasattr(sig, "s") and hasattr(sig, "name"):  # a task: Celery takes its signature too
        sig = sig.s(*args, **dict(kwargs))
    else:
        raise ConfigurationError(
            f"add_periodic_task takes a signature, e.g. add.s(1, 2), not {sig!r}."
        )
    key = name or repr(sig)
    entry = {
        "task": sig.task,
        "schedule": schedule,
        "args": tuple(sig.args),
        "kwargs": dict(sig.kwargs),
        "options": {**sig.options, **options},
    }
    periodic_task(key, entry)
    app.conf.beat_schedule[key] = entry
    return key


def read_periodic_tasks(app: SQLQueue) -> list[PeriodicTask]:
    """The app's periodic tasks, by name; the first read sends the signals in which Celery
    projects add them."""
    if not app.periodic_signals_sent:
        app.periodic_signals_sent = True
        app.on_after_configure.send(sender=app, source=app.conf)
        app.on_after_finalize.send(sender=app)
    periodic = [
        periodic_task(name, entry) for name, entry in sorted(app.conf.beat_schedule.items())
    ]
    for entry in periodic:
        # Checked as a send of it would be, before its first tick.
        task = app.tasks.get(entry.task)
        try:
            if task is not None:
                task.check_arguments(entry.args, entry.kwargs)
            SendOptions.build(
                app.conf,
                task,
                name=entry.task,
                args=entry.args,
                kwargs=entry.kwargs,
                **entry.options,
            )
        except SQLQueueError as exc:
            raise ConfigurationError(
                f"beat_schedule[{entry.name!r}]: {str(exc).rstrip('.')}."
            ) from None
    return periodic
