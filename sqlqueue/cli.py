"""The ``sqlqueue`` command: ``worker``, ``migrate``, ``prune`` and ``retry`` here;
``status``, ``workers``, ``inspect`` and ``purge`` in ``operator_cli``; ``beat`` and
``schedules`` in ``periodic_cli``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, ClassVar, Literal, TypeVar

import click
from alembic.util import CommandError
from sqlalchemy import exc as sa_exc

from sqlqueue import loading
from sqlqueue.app import SQLQueue
from sqlqueue.celery_names import BEAT_FLAGS, CELERY_POOLS, WORKER_FLAGS
from sqlqueue.conf import DEFAULT_CONCURRENCY, PRUNE_BATCH_SIZE
from sqlqueue.durations import Duration
from sqlqueue.exceptions import DatabaseError, InvalidOptionError, SQLQueueError
from sqlqueue.migrate import upgrade
from sqlqueue.options import check_job_id
from sqlqueue.stop_signals import graceful_stop_signals
from sqlqueue.terminal import Progress, age
from sqlqueue.worker import Worker
from sqlqueue.worker_options import WorkerOptions

F = TypeVar("F", bound=Callable[..., Any])


def load_app(spec: str) -> SQLQueue:
    """The app named by ``-A``; a wrong name is a usage error (exit 2)."""
    try:
        return loading.load_app(spec)
    except loading.AppNotFoundError as exc:
        raise click.UsageError(str(exc)) from exc


def user_errors(command: F) -> F:
    """Show library errors as their message and exit 1, not as a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except DatabaseError as exc:
            raise click.ClickException(one_line(str(exc))) from exc
        except SQLQueueError as exc:
            # Ours are one line, but for those that end with a traceback on purpose (a
            # process-pool child's): its lines are what the user reads.
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def one_line(message: str) -> str:
    """A driver's message on one line: drivers break theirs (libpq's "Is the server
    running…")."""
    return " ".join(message.split())


def check_job_ids(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> list[str]:
    try:
        return [check_job_id(value) for value in values]
    except InvalidOptionError as exc:
        raise click.BadParameter(str(exc)) from exc


def split_queues(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> list[str] | None:
    if value is None:
        return None
    queues = [queue.strip() for queue in value.split(",") if queue.strip()]
    if not queues:
        raise click.BadParameter("give at least one queue name, e.g. --queues default,emails")
    return queues


def renamed_option(new: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A callback for an option of the first release that has a new name: it still works,
    and says what to write instead."""

    def warn(_ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            click.echo(
                f"Warning: {param.opts[0]} is now {new}; the old name goes away in the next "
                "release.",
                err=True,
            )
        return value

    return warn


@click.group()
@click.version_option(package_name="sqlqueue")
def main() -> None:
    """sqlqueue: a task queue in your application's own SQL database."""


loglevel_option = click.option(
    "-l",
    "--loglevel",
    default="INFO",
    show_default=True,
    type=click.Choice(
        ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "FATAL"], case_sensitive=False
    ),
)


def configure_logging(loglevel: str) -> None:
    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )


class WorkerCommand(click.Command):
    """``sqlqueue worker``, which says what to do instead of a ``celery worker`` option."""

    celery_flags: ClassVar[dict[str, str]] = WORKER_FLAGS

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            if exc.option_name in self.celery_flags:
                raise click.UsageError(
                    f"{exc.option_name} is an option of celery {ctx.info_name}, not of "
                    f"sqlqueue {ctx.info_name}: {self.celery_flags[exc.option_name]}.",
                    ctx,
                ) from exc
            raise


class BeatCommand(WorkerCommand):
    """``sqlqueue beat``, which says what to do instead of a ``celery beat`` option."""

    celery_flags = BEAT_FLAGS


def check_pool(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if value in CELERY_POOLS:
        raise click.BadParameter(f"{value!r} is Celery's; give --pool {CELERY_POOLS[value]}.")
    return value


@main.command(cls=WorkerCommand)
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
    help=f"Jobs run at once, each in a thread (and a child process with --pool process). "
    f"Default: the app's worker_concurrency, else {DEFAULT_CONCURRENCY} threads, or one "
    "child per CPU.",
)
@click.option("--burst", is_flag=True, help="Exit 0 once no ready job is left.")
@click.option(
    "--max-tasks-per-child",
    type=click.IntRange(min=1),
    metavar="N",
    help="With --pool process: replace a child once it has run N jobs. Default: the app's "
    "worker_max_tasks_per_child (never).",
)
@click.option(
    "--pool",
    type=click.Choice(["thread", "process", *CELERY_POOLS]),
    callback=check_pool,
    metavar="[thread|process]",
    default="thread",
    show_default=True,
    help="Run jobs in threads, or each thread's jobs in a child process (CPU-bound tasks, "
    "hard time limits).",
)
@click.option(
    "--lease",
    type=Duration(open=True),
    metavar="DURATION",
    help="Lease of each taken job (30, 2m); renewed while it runs. Default: the app's (60s).",
)
@click.option(
    "--visibility-timeout",
    type=Duration(open=True),
    hidden=True,
    callback=renamed_option("--lease"),
)
@click.option(
    "--poll-interval",
    type=Duration(open=True),
    metavar="DURATION",
    help="Time between looks for work when idle (0.5, 2s). Default: the app's (1s).",
)
@click.option(
    "--listen-url",
    metavar="URL",
    help="PostgreSQL: listen for new jobs on a direct connection to this URL, when the "
    "database URL goes through a pooler in transaction mode (PgBouncer). Default: the app's "
    "listen_url, else the database URL; where LISTEN hears nothing, the worker polls.",
)
@click.option(
    "-B",
    "--beat/--no-beat",
    default=True,
    help="Also send the app's periodic tasks at their ticks (the default); each tick is "
    "sent once however many workers do.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    metavar="PORT",
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (9108 is usual); needs "
    '`pip install "sqlqueue[metrics]"`.',
)
@loglevel_option
@user_errors
def worker(
    app_spec: str,
    queues: list[str] | None,
    concurrency: int | None,
    burst: bool,
    max_tasks_per_child: int | None,
    pool: Literal["thread", "process"],
    lease: float | None,
    visibility_timeout: float | None,
    poll_interval: float | None,
    listen_url: str | None,
    beat: bool,
    metrics_port: int | None,
    loglevel: str,
) -> None:
    """Run jobs from the queue until stopped (SIGTERM/SIGINT finish running jobs first)."""
    configure_logging(loglevel)
    if lease is not None and visibility_timeout is not None:
        raise click.UsageError("Give --lease or --visibility-timeout (its old name), not both.")
    app = load_app(app_spec)
    options = WorkerOptions(
        queues=queues,
        concurrency=concurrency,
        burst=burst,
        lease=visibility_timeout if lease is None else lease,
        poll_interval=poll_interval,
        listen_url=listen_url,
        pool=pool,
        app_spec=app_spec,
        max_tasks_per_child=max_tasks_per_child,
        beat=beat,
        metrics_port=metrics_port,
    )
    runner = Worker(app, options)
    with graceful_stop_signals(runner.stop):
        runner.run()


def database_options(command: F) -> F:
    """``-A`` or ``--url``: the database a maintenance command works on."""
    command = click.option("--url", help="The database at this SQLAlchemy URL instead.")(command)
    return click.option(
        "-A",
        "--app",
        "app_spec",
        metavar="MODULE[:ATTR]",
        help="This app's database. Default: $SQLQUEUE_DATABASE_URL, else sqlite:///sqlqueue.db.",
    )(command)


def app_for(app_spec: str | None, url: str | None) -> SQLQueue:
    if app_spec and url:
        raise click.UsageError("Give -A or --url, not both.")
    return load_app(app_spec) if app_spec else SQLQueue(url)


def shown(app: SQLQueue) -> str:
    return app.engine.url.render_as_string(hide_password=True)


@main.command()
@database_options
@user_errors
def migrate(app_spec: str | None, url: str | None) -> None:
    """Create or upgrade sqlqueue's tables (the same migrations as `alembic upgrade head`)."""
    app = app_for(app_spec, url)
    progress = Progress()
    try:
        upgrade(app.engine, progress=progress.show)
    except (sa_exc.SQLAlchemyError, CommandError) as exc:
        raise click.ClickException(migration_failed(shown(app), exc)) from exc
    finally:
        progress.done()
    click.echo(f"sqlqueue schema is up to date in {shown(app)}")


def migration_failed(database: str, exc: Exception) -> str:
    """What went wrong with ``migrate``, and what to check: the URL, the server, the rights;
    or, when the database's revision is unknown here, the version of sqlqueue."""
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    reason = one_line(str(cause))
    if isinstance(exc, CommandError):
        advice = (
            "If a newer sqlqueue migrated this database, upgrade sqlqueue here to that version."
        )
    else:
        advice = (
            "Check the URL (--url, -A's app or $SQLQUEUE_DATABASE_URL), that the database is "
            "running, and that its user may create tables."
        )
    return (
        f"Cannot migrate {database}: {reason}{'' if reason.endswith(('.', '?')) else '.'} {advice}"
    )


@main.command()
@database_options
@click.option(
    "--older-than",
    type=Duration(),
    metavar="DURATION",
    help="Delete jobs finished longer ago than this: 7d, 12h, 90m or seconds. Default: the "
    "app's result_expires (1d).",
)
@user_errors
def prune(app_spec: str | None, url: str | None, older_than: float | None) -> None:
    """Delete finished jobs (SUCCESS, FAILURE, REVOKED), in small batches; workers also do it."""
    app = app_for(app_spec, url)
    older = older_than if older_than is not None else app.conf.result_expires
    if older is None:
        raise click.UsageError("app.conf.result_expires is None (keep forever); give --older-than.")
    # A batch at a time, to show the count as it grows on a terminal.
    deleted = 0
    progress = Progress()
    while True:
        count = app.store.delete_finished_jobs(older, PRUNE_BATCH_SIZE, max_batches=1)
        deleted += count
        progress.show(f"deleted {deleted} finished job(s)")
        if count < PRUNE_BATCH_SIZE:
            break
    progress.done()
    click.echo(f"deleted {deleted} finished job(s) older than {age(older)} from {shown(app)}")


@main.command()
@database_options
@click.argument("job_ids", nargs=-1, metavar="[JOB_ID]...", callback=check_job_ids)
@click.option("--task", "task_name", help="Every failed or revoked job of this task.")
@click.option("--queue", help="Every failed or revoked job in this queue.")
@user_errors
def retry(
    app_spec: str | None,
    url: str | None,
    job_ids: list[str],
    task_name: str | None,
    queue: str | None,
) -> None:
    """Queue failed or revoked jobs again, as new: by id, by task, by queue (together: all)."""
    if not (job_ids or task_name or queue):
        raise click.UsageError("Say which jobs to retry: give job ids, --task or --queue.")
    app = app_for(app_spec, url)
    progress = Progress()
    requeued = app.store.requeue_jobs(
        job_ids=job_ids,
        task_name=task_name,
        queue=queue,
        progress=lambda count: progress.show(f"queued {count} job(s) again"),
    )
    progress.done()
    click.echo(f"queued {requeued} job(s) again in {shown(app)}")


# The commands that show and steer the queue, and those of periodic tasks, live in modules
# of their own, which add them to ``main`` with the helpers above: imported last, once those
# exist.
from sqlqueue import operator_cli, periodic_cli  # noqa: E402, F401
from sqlqueue.dashboard import cli as dashboard_cli  # noqa: E402, F401
