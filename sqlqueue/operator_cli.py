"""The commands that show and steer the queue: ``status``, ``workers``, ``inspect`` and
``purge``. They read what ``sqlqueue.status`` reads, and print it with ``terminal``."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from datetime import datetime
from typing import Any

import click

from sqlqueue.cli import app_for, database_options, main, shown, user_errors
from sqlqueue.conf import WORKER_GONE_AFTER
from sqlqueue.durations import Duration
from sqlqueue.jobs import JobStatus, as_utc
from sqlqueue.limits import KEY_SEPARATOR
from sqlqueue.purge import purge_queue, ready_in_queue
from sqlqueue.status import (
    HISTORY_COUNT_CAP,
    Status,
    Vacuum,
    WorkerStatus,
    read_job,
    read_status,
    read_workers,
)
from sqlqueue.terminal import Progress, age, capped, table


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def render_status(status: Status) -> str:
    queues = table(
        [
            "QUEUE",
            "READY",
            "SCHEDULED",
            "RETRYING",
            "RUNNING",
            "FAILED 1H",
            "FAILED 1D",
            "SUCCEEDED 1D",
            "OLDEST READY",
        ],
        [
            [
                queue.queue,
                queue.ready,
                queue.scheduled,
                queue.retrying,
                queue.running,
                capped(queue.failed_last_hour, HISTORY_COUNT_CAP),
                capped(queue.failed_last_day, HISTORY_COUNT_CAP),
                capped(queue.succeeded_last_day, HISTORY_COUNT_CAP),
                age(queue.oldest_ready_age),
            ]
            for queue in status.queues
        ],
    )
    if not status.queues:
        queues = "No jobs in the queue."
    live = status.live_workers
    gone = len(status.workers) - len(live)
    summary = f"{len(live)} live worker(s), running {sum(w.jobs_running for w in live)} job(s)"
    if gone:
        summary += f"; {gone} gone (no heartbeat for over {WORKER_GONE_AFTER:g}s)"
    warnings = "".join(f"\n{line}" for line in vacuum_warnings(status.vacuum))
    return (
        f"{queues}\n\n{summary}\nat {status.at:%Y-%m-%d %H:%M:%S} UTC (the database's clock)"
        f"{warnings}"
    )


def vacuum_warnings(vacuum: Vacuum | None) -> list[str]:
    """What keeps dead row versions in the claim's way, and what to do (docs/storage.md)."""
    if vacuum is None or vacuum.healthy:
        return []
    lines = []
    if not vacuum.autovacuum:
        lines.append(
            "Warning: autovacuum is off on this server, so the dead row versions every job "
            "leaves stay until a VACUUM: run VACUUM sqlqueue_jobs regularly, or turn "
            "autovacuum on (docs/storage.md)."
        )
    if vacuum.holder_pid is not None:
        who = ", ".join(
            str(part)
            for part in (
                vacuum.holder_username,
                repr(vacuum.holder_application) if vacuum.holder_application else None,
                vacuum.holder_state,
            )
            if part
        )
        lines.append(
            f"Warning: a transaction open for {age(vacuum.held_for)} (pid {vacuum.holder_pid}"
            f"{': ' + who if who else ''}) keeps vacuum from removing dead row versions, and "
            "claims slow down as they pile up: end it (pg_terminate_backend) or set "
            "idle_in_transaction_session_timeout (docs/storage.md)."
        )
    return lines


def status_json(status: Status) -> dict[str, Any]:
    return {
        "at": status.at,
        "history_count_cap": HISTORY_COUNT_CAP,
        "queues": [asdict(queue) for queue in status.queues],
        "workers": [asdict(worker) for worker in status.workers],
        "vacuum": None if status.vacuum is None else asdict(status.vacuum),
    }


@main.command()
@database_options
@click.option("--json", "as_json_output", is_flag=True, help="Print JSON instead of a table.")
@click.option("--watch", is_flag=True, help="Redraw every --interval seconds until Ctrl-C.")
@click.option(
    "--interval",
    type=Duration(minimum=0.1),
    default=2.0,
    show_default=True,
    metavar="DURATION",
    help="With --watch: the time between redraws (2, 0.5, 1m).",
)
@user_errors
def status(
    app_spec: str | None, url: str | None, as_json_output: bool, watch: bool, interval: float
) -> None:
    """Per queue: ready, scheduled, retrying and running jobs, failures and successes lately,
    the oldest ready job's age; and the live workers."""
    app = app_for(app_spec, url)
    try:
        while True:
            current = read_status(app.store)
            text = as_json(status_json(current)) if as_json_output else render_status(current)
            if not watch:
                click.echo(text)
                return
            # In place on a terminal: home the cursor, then clear what is below it.
            click.echo(("\x1b[H\x1b[2J" if sys.stdout.isatty() else "") + text)
            time.sleep(interval)
    except KeyboardInterrupt:  # how --watch ends
        return


def up_time(worker: WorkerStatus) -> float:
    """How long a live worker has run, up to now (its row is renewed only every 10 s); how
    long a gone one ran, up to its last heartbeat."""
    lived = (worker.last_seen_at - worker.started_at).total_seconds()
    return lived if worker.gone else lived + worker.last_seen_ago


def render_workers(rows: list[WorkerStatus]) -> str:
    if not rows:
        return "No worker has registered (or every one has stopped)."
    return table(
        [
            "ID",
            "HOST",
            "PID",
            "QUEUES",
            "POOL",
            "CONC",
            "RUNNING",
            "VERSION",
            "UP",
            "SEEN",
            "STATE",
        ],
        [
            [
                worker.id,
                worker.host,
                worker.pid,
                ",".join(worker.queues) if worker.queues else "*",
                worker.pool,
                worker.concurrency,
                worker.jobs_running,
                worker.version,
                age(up_time(worker)),
                f"{age(worker.last_seen_ago)} ago",
                "gone" if worker.gone else "live",
            ]
            for worker in rows
        ],
    )


@main.command()
@database_options
@click.option("--json", "as_json_output", is_flag=True, help="Print JSON instead of a table.")
@user_errors
def workers(app_spec: str | None, url: str | None, as_json_output: bool) -> None:
    """The workers: live ones, and those gone lately (no heartbeat for 30 seconds)."""
    app = app_for(app_spec, url)
    rows = read_workers(app.store)
    click.echo(as_json([asdict(row) for row in rows]) if as_json_output else render_workers(rows))


FIELDS = (
    ("task", "task_name"),
    ("queue", "queue"),
    ("status", "status"),
    ("priority", "priority"),
    ("args", "args"),
    ("kwargs", "kwargs"),
    ("created", "created_at"),
    ("due", "scheduled_at"),
    ("expires", "expires_at"),
    ("started", "started_at"),
    ("finished", "finished_at"),
    ("attempts", "attempts"),
    ("retries", "retries"),
    ("lost leases", "expired_leases"),
    ("worker", "worker_id"),
    ("lease until", "lease_expires_at"),
    ("progress", "progress"),
    ("unique key", "unique_key"),
    ("limit group", "limit_key"),  # the task's name, then its concurrency key if any
    ("concurrency limit", "concurrency_limit"),
    ("seconds per start", "rate_interval"),
    ("workflow", "workflow_id"),
    ("parent", "parent_id"),
    ("group", "group_id"),
    ("index in group", "group_index"),
    ("group's jobs", "group_members"),
    ("waits for", "prerequisites"),
    ("still waiting for", "waiting_for"),
    ("released on success", "dependents"),
    ("released on failure", "errbacks"),
    ("result", "result"),
    ("error", "error_type"),
    ("message", "error_message"),
)


def render_job(job: dict[str, Any]) -> str:
    lines = [f"job {job['id']}"]
    for label, column in FIELDS:
        value = job[column]
        if value is None or (column == "result" and job["status"] != JobStatus.SUCCESS.value):
            continue
        if isinstance(value, datetime):
            value = f"{value:%Y-%m-%d %H:%M:%S.%f}"[:-3] + " UTC"
        elif isinstance(value, list | dict):
            value = json.dumps(value)
        elif column == "limit_key":
            value = value.replace(KEY_SEPARATOR, " ")
        lines.append(f"  {label + ':':<21}{value}")
    for label, seconds in timings(job):
        lines.append(f"  {label + ':':<21}{seconds:.3f}s")
    if job["traceback"]:
        lines += ["", job["traceback"].rstrip()]
    return "\n".join(lines)


def timings(job: dict[str, Any]) -> list[tuple[str, float]]:
    """How long the job waited once due, and how long its last run took."""
    due, started, finished = (
        as_utc(job[column]) for column in ("scheduled_at", "started_at", "finished_at")
    )
    found = []
    if started is not None and due is not None:
        found.append(("waited", max(0.0, (started - due).total_seconds())))
    if finished is not None and started is not None:
        found.append(("ran", max(0.0, (finished - started).total_seconds())))
    return found


@main.command()
@database_options
@click.argument("job_id")
@click.option("--json", "as_json_output", is_flag=True, help="Print JSON instead of text.")
@user_errors
def inspect(app_spec: str | None, url: str | None, job_id: str, as_json_output: bool) -> None:
    """Everything about one job: its call, status, timings, attempts, progress, result or
    error with its traceback, and its workflow."""
    app = app_for(app_spec, url)
    job = read_job(app.store, job_id)
    if job is None:
        raise click.ClickException(
            f"No job {job_id!r} in {shown(app)}: check the id, and the database "
            "(-A or --url); a finished job is deleted once older than result_expires."
        )
    job = {
        name: as_utc(value) if isinstance(value, datetime) else value for name, value in job.items()
    }
    if as_json_output:
        click.echo(as_json({**job, **dict(timings(job))}))
    else:
        click.echo(render_job(job))


@main.command()
@database_options
@click.option("--queue", required=True, help="The queue whose ready jobs to take out.")
@click.option("--yes", is_flag=True, help="Do not ask for a confirmation.")
@user_errors
def purge(app_spec: str | None, url: str | None, queue: str, yes: bool) -> None:
    """Take the ready jobs out of a queue: deleted, or revoked where workflow steps wait for
    them (so that those stop too). Running and finished jobs stay."""
    app = app_for(app_spec, url)
    ready = ready_in_queue(app.store, queue)
    if not ready:
        known = [row.queue for row in read_status(app.store).queues]
        if queue not in known:
            raise click.ClickException(
                f"No queue {queue!r} in {shown(app)}; the queues with jobs are: "
                f"{', '.join(known) or 'none'}."
            )
        click.echo(f"No ready job in queue {queue!r}: nothing to purge.")
        return
    if not yes:
        click.confirm(
            f"Take {ready} ready job(s) out of queue {queue!r} in {shown(app)}?", abort=True
        )
    progress = Progress()
    deleted, revoked = purge_queue(
        app.store,
        queue,
        lambda deleted, revoked: progress.show(f"purged {deleted + revoked} of ~{ready} job(s)"),
    )
    progress.done()
    click.echo(
        f"deleted {deleted} ready job(s) of queue {queue!r}"
        + (f"; revoked {revoked} that workflow steps waited for" if revoked else "")
    )
