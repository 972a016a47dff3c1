"""The commands of periodic tasks: ``beat`` runs a scheduler alone, ``schedules`` lists
each periodic task's last and next run."""

from __future__ import annotations

import threading
from datetime import datetime

import click

from sqlqueue.app import SQLQueue
from sqlqueue.cli import (
    BeatCommand,
    configure_logging,
    load_app,
    loglevel_option,
    main,
    user_errors,
)
from sqlqueue.periodic import PeriodicTask, read_periodic_tasks
from sqlqueue.scheduler import Scheduler, zone_of
from sqlqueue.stop_signals import graceful_stop_signals
from sqlqueue.terminal import table

periodic_app_option = click.option(
    "-A",
    "--app",
    "app_spec",
    required=True,
    metavar="MODULE[:ATTR]",
    help="The module holding the app and its periodic tasks.",
)


def periodic_tasks_of(app: SQLQueue) -> list[PeriodicTask]:
    """The app's periodic tasks, read as a worker reads them (its modules imported first)."""
    app.import_default_modules()
    periodic = read_periodic_tasks(app)
    if not periodic:
        raise click.ClickException(
            "This app has no periodic tasks: declare them in app.conf.beat_schedule or with "
            "app.add_periodic_task (docs/scheduling.md)."
        )
    return periodic


@main.command(cls=BeatCommand)
@periodic_app_option
@loglevel_option
@user_errors
def beat(app_spec: str, loglevel: str) -> None:
    """Send the app's periodic tasks at their ticks, and run no jobs (workers do both unless
    --no-beat). Each tick is sent once, however many schedulers run. SIGTERM/SIGINT stop it."""
    configure_logging(loglevel)
    app = load_app(app_spec)
    stopping = threading.Event()
    scheduler = Scheduler(app, periodic_tasks_of(app), stopping)
    with graceful_stop_signals(stopping.set, "stopping the scheduler"):
        scheduler.run()


@main.command()
@periodic_app_option
@user_errors
def schedules(app_spec: str) -> None:
    """List the app's periodic tasks, each with its last and next run, in the app's
    timezone."""
    app = load_app(app_spec)
    periodic = periodic_tasks_of(app)
    zone = zone_of(app)
    now = app.store.database_now()
    known = app.store.get_schedules([entry.name for entry in periodic])

    def shown_time(instant: datetime) -> str:
        return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")

    rows = []
    for entry in periodic:
        state = known.get(entry.name)
        latest = entry.schedule.latest(now, zone)
        if state is not None and latest > state.last_tick:
            following = f"{shown_time(latest)} (due, not sent yet)"
        else:
            following = shown_time(entry.schedule.next_after(now, zone))
        sent = state is not None and state.job_id is not None
        rows.append(
            (
                entry.name,
                entry.task,
                str(entry.schedule),
                shown_time(state.last_tick) if state is not None and sent else "never",
                state.job_id or "-" if state is not None else "-",
                following,
            )
        )
    click.echo(table(("NAME", "TASK", "SCHEDULE", "LAST RUN", "LAST JOB", "NEXT RUN"), rows))
