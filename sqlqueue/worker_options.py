"""WorkerOptions: how a worker runs, one definition for the CLI, the app, Django and tests.

Like ``SendOptions`` for sends, an option is checked, and refused with ``InvalidOptionError``,
in this module only; ``None`` means the app's setting, read when the worker starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlqueue.conf import warn_renamed
from sqlqueue.exceptions import InvalidOptionError
from sqlqueue.options import check_listen_url, check_name


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerOptions:
    """How a worker runs; the CLI, the app and tests share this one definition."""

    queues: Sequence[str] | None = None
    """Queues to take jobs from; None means every queue."""
    concurrency: int | None = None
    """Jobs run at once, each in its own thread (and child process, with a process pool);
    None means ``conf.default_concurrency(pool)``: 8 threads, or one child per CPU."""
    burst: bool = False
    """Exit once no ready job is left instead of waiting for more."""
    lease: float | None = None
    """Seconds of each lease; None means the app's ``conf.lease``."""
    poll_interval: float | None = None
    """Seconds between looks for work when idle; None means the app's ``conf.poll_interval``."""
    listen_url: str | None = None
    """PostgreSQL: the URL of a direct connection for the worker's LISTEN, when its database
    URL goes through a pooler in transaction mode (PgBouncer), where LISTEN cannot work; None
    means the app's ``conf.listen_url``, where None means the database URL."""
    pool: Literal["thread", "process"] = "thread"
    """Run each job in the worker's thread (default), or in a child process per thread, for
    CPU-bound tasks and hard time limits."""
    app_spec: str | None = None
    """``module[:attribute]`` of the app, which process-pool children import."""
    max_tasks_per_child: int | None = None
    """Jobs a process-pool child runs before a new child replaces it (memory that a task
    leaks goes with it); None means the app's ``conf.worker_max_tasks_per_child``, where
    None means never."""
    beat: bool = True
    """Send the app's periodic tasks at their ticks, on a thread of the worker's
    (``sqlqueue.scheduler``); however many workers do, each tick is sent once. False:
    ``--no-beat``."""
    metrics_port: int | None = None
    """Serve Prometheus metrics at this port (``metrics``; the ``metrics`` extra); None:
    none."""
    visibility_timeout: float | None = None
    """The first release's name for ``lease``; still accepted, with a warning, and copied
    into ``lease``."""

    def __post_init__(self) -> None:
        if self.visibility_timeout is not None:
            warn_renamed("WorkerOptions(visibility_timeout=...)", "lease=...", stacklevel=3)
            if self.lease is not None:
                raise InvalidOptionError(
                    "Give lease or visibility_timeout (its old name), not both."
                )
            # A frozen dataclass: its own __post_init__ is the one place that may set it.
            object.__setattr__(self, "lease", self.visibility_timeout)
        if self.concurrency is not None and self.concurrency < 1:
            raise InvalidOptionError(f"concurrency must be 1 or more, not {self.concurrency}.")
        for value, what in (
            (self.lease, "lease"),
            (self.poll_interval, "poll interval"),
        ):
            if value is not None and value <= 0:
                raise InvalidOptionError(f"The {what} must be more than 0 seconds, not {value}.")
        for queue in self.queues or ():
            check_name(queue, "queue name")
        if self.listen_url is not None:
            check_listen_url(self.listen_url)
        if self.metrics_port is not None and not 0 < self.metrics_port < 65536:
            raise InvalidOptionError(f"metrics_port must be a TCP port, not {self.metrics_port}.")
        if self.pool not in ("thread", "process"):
            raise InvalidOptionError(f"pool must be 'thread' or 'process', not {self.pool!r}.")
        if self.max_tasks_per_child is not None:
            if self.max_tasks_per_child < 1:
                raise InvalidOptionError(
                    f"max_tasks_per_child must be 1 or more, not {self.max_tasks_per_child}."
                )
            if self.pool != "process":
                raise InvalidOptionError(
                    "max_tasks_per_child replaces process-pool children; it needs "
                    "pool='process' (--pool process)."
                )
        if self.pool == "process" and not self.app_spec:
            raise InvalidOptionError(
                "A process pool needs app_spec, the module[:attribute] its children import."
            )
