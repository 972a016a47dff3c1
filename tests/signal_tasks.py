"""The test tasks' app (``tasks``) with receivers of every signal, for workers started with
``-A signal_tasks``: each receiver appends a JSON line to $SIGNAL_LOG saying which signal,
in which process, with what."""

from __future__ import annotations

import json
import os
from typing import Any

from tasks import app

from sqlqueue import signals

__all__ = ["app"]


def log(signal: signals.Signal, sender: Any, **named: Any) -> None:
    line = {
        "signal": signal.name,
        "pid": os.getpid(),
        "sender": getattr(sender, "name", type(sender).__name__),
        **{
            name: repr(value) if name in ("exception", "reason", "retval") else value
            for name, value in named.items()
            if name
            in ("task_id", "args", "kwargs", "state", "result", "exception", "reason", "retval")
        },
    }
    with open(os.environ["SIGNAL_LOG"], "a") as file:
        file.write(json.dumps(line) + "\n")


for each in (
    signals.task_prerun,
    signals.task_postrun,
    signals.task_success,
    signals.task_failure,
    signals.task_retry,
    signals.worker_ready,
    signals.worker_shutdown,
):
    each.connect(log)
