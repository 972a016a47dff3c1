"""The commands of periodic tasks: ``beat`` runs a scheduler alone, ``schedules`` lists
each periodic task's last and next run."""

from __future__ import annotations

import threading

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
from sqlqueue.scheduler import Scheduler, schedule_rows
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
    rows = schedule_rows(app, periodic_tasks_of(app))
    click.echo(table(("NAME", "TASK", "SCHEDULE", "LAST RUN", "LAST JOB", "NEXT RUN"), rows))
