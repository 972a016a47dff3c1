"""Prometheus metrics of a worker (``sqlqueue worker --metrics-port 9108``), with
``prometheus_client`` from the ``metrics`` extra, imported only here.

Two kinds. What the queue holds is read from the database at each scrape, with the queries
of ``sqlqueue status`` (``status``): jobs by queue and status, the oldest ready job's age per
queue, the live workers; every worker gives the same values, so aggregate them with ``max``,
not ``sum``. What this worker did is counted in its own process, as its outcomes are written:
jobs finished per task and outcome, and how long their tasks ran; sum those across workers.
No label holds an id (of a job, or a worker): each label's values are the queues, tasks and
statuses, which stay few.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlqueue.exceptions import ConfigurationError, DatabaseError
from sqlqueue.status import read_status
from sqlqueue.store import JobStore

if TYPE_CHECKING:
    from sqlqueue.recorder import Finished

logger = logging.getLogger("sqlqueue.worker")

METRICS_EXTRA_MISSING = (
    "--metrics-port needs prometheus_client, which this install lacks: "
    'pip install "sqlqueue[metrics]".'
)

LIVE_STATUSES = ("ready", "scheduled", "retrying", "running")
"""The values of ``sqlqueue_jobs``' status label: the live counts of ``sqlqueue status``."""


def require_metrics_extra() -> None:
    """Refuse metrics with the fix in the message where prometheus_client is not installed."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(METRICS_EXTRA_MISSING) from exc


class QueueCollector:
    """The queue's gauges, read from the database at each scrape. A scrape while the
    database is unreachable has none of them (and the worker logs why)."""

    def __init__(self, store: JobStore) -> None:
        self._store = store

    def describe(self) -> list[Any]:
        # Nothing to declare ahead: registering must not query the database.
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            status = read_status(self._store)
        except DatabaseError as exc:
            logger.warning("metrics: could not read the queue: %s", exc)
            return
        jobs = GaugeMetricFamily(
            "sqlqueue_jobs", "Live jobs by queue and status.", labels=["queue", "status"]
        )
        oldest = GaugeMetricFamily(
            "sqlqueue_oldest_ready_age_seconds",
            "Seconds the longest-waiting ready job of the queue has been due (0: none ready).",
            labels=["queue"],
        )
        for queue in status.queues:
            for name in LIVE_STATUSES:
                jobs.add_metric([queue.queue, name], getattr(queue, name))
            oldest.add_metric([queue.queue], queue.oldest_ready_age or 0.0)
        yield jobs
        yield oldest
        yield GaugeMetricFamily(
            "sqlqueue_workers",
            "Live workers: those with a heartbeat in the last 30 seconds.",
            value=len(status.live_workers),
        )


class WorkerMetrics:
    """The HTTP endpoint of one worker's metrics, and the counts of what it finished."""

    def __init__(self, store: JobStore, port: int) -> None:
        require_metrics_extra()
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self._registry = CollectorRegistry()
        self._finished = Counter(
            "sqlqueue_jobs_finished",
            "Jobs this worker ran and recorded, by task and outcome (SUCCESS, FAILURE, RETRY, …).",
            ["task", "outcome"],
            registry=self._registry,
        )
        self._duration = Histogram(
            "sqlqueue_job_duration_seconds",
            "Seconds the task of each job this worker ran took.",
            ["task"],
            registry=self._registry,
        )
        self._registry.register(QueueCollector(store))
        self._port = port
        self._server: Any = None

    def start(self) -> None:
        """Serve ``/metrics`` on every interface, at the port, as exporters do; a port taken
        is a ``ConfigurationError``."""
        from prometheus_client import start_http_server

        try:
            self._server, _thread = start_http_server(self._port, registry=self._registry)
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot serve metrics at port {self._port}: {exc.strerror or exc}. Stop what "
                "listens there, or give another --metrics-port."
            ) from exc

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def recorded(self, batch: Sequence[Finished]) -> None:
        """Count jobs whose outcomes were just written."""
        for finished in batch:
            task = finished.job.task_name
            self._finished.labels(task, finished.outcome.status.value).inc()
            self._duration.labels(task).observe(finished.duration)
