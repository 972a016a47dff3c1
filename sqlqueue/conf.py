"""Settings of an app, their defaults, and the one environment variable sqlqueue reads."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlqueue.routes import Routes

DATABASE_URL_ENV = "SQLQUEUE_DATABASE_URL"
"""The environment variable naming the database when the app is given no URL or engine."""

DEFAULT_DATABASE_URL = "sqlite:///sqlqueue.db"
"""The embedded default: a SQLite file in the current directory."""

DEFAULT_QUEUE = "default"
"""The queue a job goes to when neither the task nor the call names one."""

DEFAULT_PRIORITY = 0
"""Priority of a job when none is given; higher runs first."""

MIN_PRIORITY = -100
"""Lowest priority accepted (the same range as Django's task framework)."""

MAX_PRIORITY = 100
"""Highest priority accepted."""

MAX_NAME_LENGTH = 200
"""Longest task or queue name accepted, in characters."""

MAX_JOB_ID_LENGTH = 255
"""Longest job id a caller may choose (Celery's ``task_id=``), in characters."""

DEFAULT_LEASE = 60.0
"""Seconds a taken job stays leased to its worker without a renewal; the worker renews it
while the job runs, so only a dead or frozen worker lets it run out."""

DEFAULT_MAX_LEASE_EXPIRIES = 3
"""How many times a job may lose its worker (lease ran out) before it is failed."""

HEARTBEAT_INTERVAL = 10.0
"""Seconds between a worker's heartbeats: its row in ``sqlqueue_workers`` says when it was
last seen, by the database's clock, and how many jobs it runs."""

WORKER_GONE_AFTER = 3 * HEARTBEAT_INTERVAL
"""Seconds without a heartbeat (three missed) after which a worker is shown as gone."""

WORKER_FORGET_AFTER = 3600.0
"""Seconds without a heartbeat after which a gone worker's row is deleted (by any worker's
chores): long enough for an operator to see which workers died lately."""

DEFAULT_CONCURRENCY = 8
"""Threads of a worker that is given no ``--concurrency``: see docs/worker.md. A process pool's
default is one child per CPU instead (``default_concurrency``)."""


def default_concurrency(pool: str) -> int:
    """Jobs a worker runs at once when not told: ``DEFAULT_CONCURRENCY`` threads, which wait on
    I/O; or, for CPU-bound work in a process pool, one child per CPU, as Celery's default."""
    return DEFAULT_CONCURRENCY if pool == "thread" else os.cpu_count() or 1


DEFAULT_POLL_INTERVAL = 1.0
"""Seconds an idle worker waits before looking for ready jobs again."""

DEFAULT_MAX_RETRIES = 3
"""How many times ``task.retry()`` may re-queue a job (Celery's default)."""

DEFAULT_RETRY_DELAY = 180.0
"""Seconds before a retried job runs again when ``retry()`` is given no countdown (Celery's default)."""

EAGER_MAX_RETRIES = 100
"""Retries an eager run allows when the task's ``max_retries`` is None (or lower): eager retries
run at once, inside ``delay()``, so one that always asks again would never return."""

DEFAULT_RETRY_BACKOFF_MAX = 600.0
"""Longest delay, in seconds, exponential retry backoff may reach (Celery's default)."""

DEFAULT_RESULT_EXPIRES = 86400.0
"""Seconds a finished job is kept before workers prune it (one day, Celery's default)."""

DEFAULT_MAX_PAYLOAD_BYTES = 1_000_000
"""Largest JSON encoding of a job's arguments accepted, in bytes."""

PRUNE_INTERVAL = 60.0
"""Seconds between two prunes of finished jobs by a worker."""

PRUNE_BATCH_SIZE = 1000
"""Finished jobs deleted per statement, so that a prune never holds long locks."""

RETRY_BATCH_SIZE = 1000
"""Jobs ``sqlqueue retry`` puts back per transaction, for the same reason."""

MAX_DATABASE_BACKOFF = 30.0
"""Longest pause, in seconds, between a worker's attempts to reach a database that is down."""

SQLITE_BUSY_TIMEOUT = 30.0
"""Seconds a SQLite connection waits for another process's write lock before giving up."""

PING_AFTER_IDLE = 10.0
"""Seconds a pooled PostgreSQL connection may sit unused before it is checked with a ping
on its next checkout; one in steady use is not pinged (see ``engines.ping_when_idle``)."""

LONG_TRANSACTION = 60.0
"""Seconds after which ``sqlqueue status`` names a transaction that holds back vacuum
(PostgreSQL): the dead row versions of every job taken since then stay in the claim's way."""


@dataclass(kw_only=True)
class Settings:
    """The app's settings, as ``app.conf``; names follow Celery's where Celery has one.

    Every assignment is checked, whether made as ``app.conf.name = value``, through
    ``app.conf.update(...)`` or by ``config_from_object``: a malformed value or a name that is
    not a setting is refused (``ConfigurationError``, with the nearest name), and a setting
    of Celery's that has no effect here is accepted with a ``CeleryCompatibilityWarning``
    that says why (see ``sqlqueue.setting_checks`` and docs/celery.md).
    """

    task_always_eager: bool = False
    """Run tasks inline in ``delay()`` instead of writing a job (tests, scripts)."""

    task_eager_propagates: bool = False
    """In eager mode, raise the task's exception from ``delay()`` instead of storing it."""

    task_default_queue: str = DEFAULT_QUEUE
    """The queue of tasks that do not name one."""

    task_ignore_result: bool = False
    """Keep no return value of tasks that do not set ``ignore_result`` themselves."""

    task_default_priority: int | None = None
    """The priority of jobs whose task, call and route give none; None means
    ``DEFAULT_PRIORITY``."""

    task_routes: Any = None
    """Celery's routers, which pick a job's queue (and priority) from its task's name: a
    dict of names or glob patterns, a router function, or a list of these (``routes``)."""

    task_time_limit: float | None = None
    """Seconds after which a running job of a task with no ``time_limit`` of its own is
    stopped; None: no limit."""

    task_soft_time_limit: float | None = None
    """Seconds after which a task with no ``soft_time_limit`` of its own gets
    ``SoftTimeLimitExceeded``; None: no limit."""

    lease: float = DEFAULT_LEASE
    """Seconds of a job's lease; see ``DEFAULT_LEASE``."""

    max_lease_expiries: int = DEFAULT_MAX_LEASE_EXPIRIES
    """See ``DEFAULT_MAX_LEASE_EXPIRIES``."""

    poll_interval: float = DEFAULT_POLL_INTERVAL
    """See ``DEFAULT_POLL_INTERVAL``."""

    listen_url: str | None = None
    """PostgreSQL: the URL of a direct connection for workers' LISTEN, when the app's URL goes
    through a pooler in transaction mode (docs/databases.md); None: the app's own URL."""

    result_expires: float | None = DEFAULT_RESULT_EXPIRES
    """Seconds finished jobs are kept; None keeps them until ``sqlqueue prune`` removes them.
    Set as seconds or a ``timedelta``; 0 means None, as in Celery."""

    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    """See ``DEFAULT_MAX_PAYLOAD_BYTES``."""

    worker_concurrency: int | None = None
    """Jobs a worker runs at once when not given ``--concurrency``; None:
    ``default_concurrency``."""

    worker_max_tasks_per_child: int | None = None
    """Jobs a process-pool child runs before it is replaced by a new one, when the worker is
    not given ``--max-tasks-per-child``; None: children are never replaced for age."""

    timezone: str = "UTC"
    """The zone (an IANA name) in which crontabs are read; checked with ``zoneinfo``."""

    beat_schedule: dict[str, Any] = field(default_factory=dict)
    """Periodic tasks by name, in Celery's format: ``{"name": {"task": ..., "schedule": ...,
    "args": ..., "kwargs": ..., "options": ...}}`` (docs/scheduling.md)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self._update({name: value})

    def __getattr__(self, name: str) -> Any:
        # Only called for a name that is not a field: one of Celery's that has no effect
        # here (it reads back as set), else a typo.
        if not name.startswith("_"):
            from sqlqueue.setting_checks import missing_setting

            ignored = self.__dict__.get("_ignored", {})
            if name in ignored:
                return ignored[name]
            raise missing_setting(self, name)
        raise AttributeError(name)

    def __getitem__(self, name: str) -> Any:
        from sqlqueue.setting_checks import NOT_A_MAPPING

        raise TypeError(f"app.conf[{name!r}]: {NOT_A_MAPPING}")

    def update(self, settings: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Set several settings at once, as Celery's ``app.conf.update``: by their lower-case
        names, Celery's old upper-case names (``CELERY_ALWAYS_EAGER``) read as the new ones,
        and any other upper-case key ignored (so a web framework's whole config may be
        passed). Every value is checked before any is set."""
        self._update(dict(settings or {}, **more))

    def _update(self, given: dict[str, Any]) -> None:
        # Called by update() and __setattr__ alike, so warnings count the same frames up to
        # the user's line.
        from sqlqueue.setting_checks import apply_settings

        for old in RENAMED_SETTINGS.keys() & given.keys():
            _warn_renamed(old, stacklevel=4)
            given[RENAMED_SETTINGS[old]] = given.pop(old)
        apply_settings(self, given, stacklevel=4)

    @property
    def routes(self) -> Routes | None:
        """``task_routes`` compiled, as sends ask it (None: no routes)."""
        routes: Routes | None = self.__dict__.get("_routes")
        return routes

    @property
    def visibility_timeout(self) -> float:
        """The first release's name for ``lease``; still read and set, with a warning."""
        _warn_renamed("visibility_timeout")
        return self.lease


RENAMED_SETTINGS = {"visibility_timeout": "lease"}
"""Settings of the first release that have a new name, old name to new; the old one keeps
working, with a warning, for one more release."""


def warn_renamed(old: str, new: str, *, stacklevel: int) -> None:
    """Say that a name of the first release is now ``new``. A FutureWarning, not a
    DeprecationWarning: Python's default filters hide the latter unless ``__main__`` raised
    it, and these names are set in a project's settings modules, which the user must hear
    about. ``stacklevel`` counts as it would for the caller's own ``warnings.warn``."""
    warnings.warn(
        f"{old} is now {new}; the old name goes away in the next release.",
        FutureWarning,
        stacklevel=stacklevel + 1,
    )


def _warn_renamed(old: str, stacklevel: int = 3) -> None:
    warn_renamed(f"app.conf.{old}", f"app.conf.{RENAMED_SETTINGS[old]}", stacklevel=stacklevel)


def database_url_from_env() -> str:
    """The URL to use when the app was given neither a URL nor an engine."""
    return os.environ.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL
