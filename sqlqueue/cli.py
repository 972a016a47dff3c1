"""The ``sqlqueue`` command: ``worker`` and ``migrate``."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from sqlqueue.app import SQLQueue
from sqlqueue.exceptions import SQLQueueError
from sqlqueue.migrate import upgrade
from sqlqueue.signals import graceful_stop_signals
from sqlqueue.worker import Worker, WorkerOptions

F = TypeVar("F", bound=Callable[..., Any])


def load_app(spec: str) -> SQLQueue:
    """Import ``module[:attribute]`` from the current directory, like ``celery -A``."""
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.UsageError(
            f"Cannot import {module_name!r} for -A: {exc}. Run the command from the directory "
            "that holds the module, or give its dotted path."
        ) from exc
    if attribute:
        app = getattr(module, attribute, None)
    else:
        app = getattr(module, "app", None)
        if not isinstance(app, SQLQueue):
            apps = [value for value in vars(module).values() if isinstance(value, SQLQueue)]
            app = apps[0] if len(apps) == 1 else None
    if not isinstance(app, SQLQueue):
        raise click.UsageError(
            f"No SQLQueue app found in {spec!r}; name it with -A {module_name}:<attribute>."
        )
    return app


def user_errors(command: F) -> F:
    """Show library errors as one clear line and exit 1, not as a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SQLQueueError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def split_queues(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> list[str] | None:
    if value is None:
        return None
    queues = [queue.strip() for queue in value.split(",") if queue.strip()]
    if not queues:
        raise click.BadParameter("give at least one queue name, e.g. --queues default,emails")
    return queues


@click.group()
@click.version_option(package_name="sqlqueue")
def main() -> None:
    """sqlqueue: a task queue in your application's own SQL database."""


@main.command()
@click.option(
    "-A",
    "--app",
    "app_spec",
    required=True,
    metavar="MODULE[:ATTR]",
    help="The module holding the app (and, through its imports, the tasks).",
)
@click.option(
    "-Q",
    "--queues",
    callback=split_queues,
    metavar="A,B",
    help="Comma-separated queues to take jobs from. Default: every queue.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=os.cpu_count() or 1,
    show_default=True,
    help="Jobs run at once, each in a thread.",
)
@click.option("--burst", is_flag=True, help="Exit 0 once no ready job is left.")
@click.option(
    "--visibility-timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Lease of each taken job; renewed while it runs. Default: the app's (60).",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Seconds between looks for work when idle. Default: the app's (1).",
)
@click.option(
    "-l",
    "--loglevel",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@user_errors
def worker(
    app_spec: str,
    queues: list[str] | None,
    concurrency: int,
    burst: bool,
    visibility_timeout: float | None,
    poll_interval: float | None,
    loglevel: str,
) -> None:
    """Run jobs from the queue until stopped (SIGTERM/SIGINT finish running jobs first)."""
    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    app = load_app(app_spec)
    options = WorkerOptions(
        queues=queues,
        concurrency=concurrency,
        burst=burst,
        visibility_timeout=visibility_timeout,
        poll_interval=poll_interval,
    )
    runner = Worker(app, options)
    with graceful_stop_signals(runner.stop):
        runner.run()


@main.command()
@click.option(
    "-A",
    "--app",
    "app_spec",
    metavar="MODULE[:ATTR]",
    help="Migrate this app's database. Default: $SQLQUEUE_DATABASE_URL, else sqlite:///sqlqueue.db.",
)
@click.option("--url", help="Migrate the database at this SQLAlchemy URL instead.")
@user_errors
def migrate(app_spec: str | None, url: str | None) -> None:
    """Create or upgrade sqlqueue's tables (the same migrations as `alembic upgrade head`)."""
    if app_spec and url:
        raise click.UsageError("Give -A or --url, not both.")
    app = load_app(app_spec) if app_spec else SQLQueue(url)
    upgrade(app.engine)
    click.echo(
        f"sqlqueue schema is up to date in {app.engine.url.render_as_string(hide_password=True)}"
    )
