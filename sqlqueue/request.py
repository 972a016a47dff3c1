"""Request: what a running task can know about its own job (``self.request``), and the
request of the job running in this thread."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlqueue.exceptions import Retry

HOSTNAME = socket.gethostname()
"""The machine's name, as ``self.request.hostname`` gives it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """What a running task can know about its own job, as ``self.request`` with ``bind=True``."""

    id: str
    task: str
    args: Sequence[Any]
    kwargs: Mapping[str, Any]
    retries: int = 0
    """How many times this job has been retried before this run."""
    attempts: int = 1
    """How many times a worker has taken this job, this run included."""
    queue: str | None = None
    is_eager: bool = False
    called_directly: bool = False
    """True outside a run: the task was called as a function."""
    hostname: str = HOSTNAME
    retry_later: list[Retry] = field(default_factory=list, repr=False, compare=False)
    """The retry asked for by ``retry(throw=False)``, which ends the run once it returns."""

    @property
    def delivery_info(self) -> dict[str, Any]:
        """Celery's message delivery details, as far as a row has them: the queue (Celery's
        routing key) and whether the job was taken before (``redelivered``)."""
        return {"routing_key": self.queue, "redelivered": self.attempts > 1}


current_request: ContextVar[Request | None] = ContextVar("sqlqueue_request", default=None)
"""The request of the job running in this thread (each worker thread has its own)."""
