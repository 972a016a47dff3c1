"""Celery's signals, with its names and keyword arguments, for integrations: error trackers,
tracing, logging, metrics.

    from sqlqueue.signals import task_failure

    @task_failure.connect
    def report(sender, task_id, exception, **kwargs):
        ...

The task signals are sent by the process that runs the task: the worker's job thread, a
``--pool process`` child, or the caller of an eager run (``task_always_eager``). In order:
``task_prerun`` before the task starts; then ``task_success``, ``task_failure`` or
``task_retry`` for its outcome, once its own hooks (``on_success``…) have run; then
``task_postrun``. ``worker_ready`` is sent when a worker has started and is about to take
jobs, ``worker_shutdown`` when it has stopped; their sender is the ``Worker``.

A receiver that raises is logged with its traceback and changes nothing: the job's outcome is
the task's. As with Celery, receivers should be quick; they run in the job's thread.

Unlike Celery's, receivers are held by strong references: a receiver defined in a function
stays connected until ``disconnect``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, overload

logger = logging.getLogger("sqlqueue.signals")

Receiver = Callable[..., Any]


class Signal:
    """Receivers connected to one event, each for every sender or for one."""

    def __init__(self, name: str, arguments: tuple[str, ...]) -> None:
        self.name = name
        self.arguments = arguments
        """The keyword arguments receivers get besides ``sender`` (and ``signal``)."""
        self._receivers: list[tuple[Receiver, Any, Any]] = []
        """(receiver, sender or None for any, dispatch_uid or None), in order of connection."""
        self._lock = threading.Lock()

    @overload
    def connect(
        self, receiver: Receiver, *, sender: Any = None, dispatch_uid: Any = None
    ) -> Receiver: ...

    @overload
    def connect(
        self, receiver: None = None, *, sender: Any = None, dispatch_uid: Any = None
    ) -> Callable[[Receiver], Receiver]: ...

    def connect(
        self, receiver: Receiver | None = None, *, sender: Any = None, dispatch_uid: Any = None
    ) -> Receiver | Callable[[Receiver], Receiver]:
        """Call ``receiver`` for each send: as ``signal.connect(f)``, ``@signal.connect`` or
        ``@signal.connect(sender=task)``. ``sender``: only for sends by this sender (a task
        object, or a task's name). ``dispatch_uid``: connected once whatever how many times
        this is called with it (a module imported twice)."""
        if receiver is None:
            return lambda given: self.connect(given, sender=sender, dispatch_uid=dispatch_uid)
        with self._lock:
            if not any(
                (uid is not None and uid == dispatch_uid)
                or (uid is None and dispatch_uid is None and known is receiver and wanted is sender)
                for known, wanted, uid in self._receivers
            ):
                self._receivers.append((receiver, sender, dispatch_uid))
        return receiver

    def disconnect(
        self, receiver: Receiver | None = None, *, sender: Any = None, dispatch_uid: Any = None
    ) -> bool:
        """Stop calling a receiver (for this sender), or the one of ``dispatch_uid``; whether
        one was connected."""
        with self._lock:
            kept = [
                entry
                for entry in self._receivers
                if not (
                    (dispatch_uid is not None and entry[2] == dispatch_uid)
                    or (dispatch_uid is None and entry[0] is receiver and entry[1] is sender)
                )
            ]
            found = len(kept) != len(self._receivers)
            self._receivers = kept
        return found

    @property
    def receivers(self) -> list[Receiver]:
        with self._lock:
            return [receiver for receiver, _, _ in self._receivers]

    def send(self, sender: Any, **named: Any) -> list[tuple[Receiver, Any]]:
        """Call the receivers for this sender with these arguments; (receiver, what it
        returned or raised) for each. One that raises is logged, and the others still run."""
        if not self._receivers:  # the usual case, sent for every job: no lock to contend for
            return []
        with self._lock:
            chosen = [
                receiver
                for receiver, wanted, _ in self._receivers
                if wanted is None or wanted is sender or wanted == getattr(sender, "name", None)
            ]
        responses: list[tuple[Receiver, Any]] = []
        for receiver in chosen:
            try:
                responses.append((receiver, receiver(signal=self, sender=sender, **named)))
            except Exception as exc:
                logger.exception(
                    "signal %s: receiver %s raised; the job goes on",
                    self.name,
                    getattr(receiver, "__qualname__", receiver),
                )
                responses.append((receiver, exc))
        return responses

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"


task_prerun = Signal("task_prerun", ("task_id", "task", "args", "kwargs"))
task_postrun = Signal("task_postrun", ("task_id", "task", "args", "kwargs", "retval", "state"))
task_success = Signal("task_success", ("result",))
task_failure = Signal(
    "task_failure", ("task_id", "exception", "args", "kwargs", "traceback", "einfo")
)
task_retry = Signal("task_retry", ("request", "reason", "einfo"))
worker_ready = Signal("worker_ready", ())
worker_shutdown = Signal("worker_shutdown", ())

__all__ = [
    "Signal",
    "task_failure",
    "task_postrun",
    "task_prerun",
    "task_retry",
    "task_success",
    "worker_ready",
    "worker_shutdown",
]
