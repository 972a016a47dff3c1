"""``manage.py sqlqueue_worker``: ``sqlqueue worker`` for this Django project."""

from __future__ import annotations

import logging
from argparse import SUPPRESS, ArgumentParser, ArgumentTypeError
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from sqlqueue.conf import DEFAULT_CONCURRENCY
from sqlqueue.durations import parse_duration
from sqlqueue.exceptions import SQLQueueError
from sqlqueue.stop_signals import graceful_stop_signals
from sqlqueue.worker import Worker
from sqlqueue.worker_options import WorkerOptions

APP_SPEC = "sqlqueue.contrib.django.worker_app:app"


def duration(text: str) -> float:
    """A duration as ``sqlqueue worker`` reads one (``2m``, ``90``), for argparse, which shows
    the message of this error (of a ValueError, only the function's name). WorkerOptions
    refuses one that is not positive."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ArgumentTypeError(str(exc)) from exc


class Command(BaseCommand):
    help = "Run sqlqueue jobs (tasks.py of every installed app) until stopped."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("-Q", "--queues", help="Comma-separated queues. Default: every queue.")
        parser.add_argument(
            "-c",
            "--concurrency",
            type=int,
            help=f"Default: {DEFAULT_CONCURRENCY} threads, or one child per CPU with --pool process.",
        )
        parser.add_argument("--burst", action="store_true", help="Exit once no job is ready.")
        parser.add_argument("--pool", choices=["thread", "process"], default="thread")
        parser.add_argument("--lease", type=duration, metavar="DURATION")
        # The first release's name for --lease; still accepted, with a warning.
        parser.add_argument("--visibility-timeout", type=duration, help=SUPPRESS)
        parser.add_argument("--poll-interval", type=duration, metavar="DURATION")
        parser.add_argument(
            "--listen-url",
            metavar="URL",
            help="A direct PostgreSQL connection for LISTEN, when the database goes through "
            "PgBouncer in transaction mode. Default: SQLQUEUE's LISTEN_URL, else the database.",
        )
        parser.add_argument(
            "--no-beat",
            action="store_true",
            help="Do not send the periodic tasks (sent by every worker otherwise, each tick once).",
        )
        parser.add_argument(
            "-l", "--loglevel", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
        )

    def handle(self, *args: Any, **options: Any) -> None:
        logging.basicConfig(
            level=options["loglevel"], format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
        from sqlqueue.contrib.django.worker_app import app

        lease = options["lease"]
        if options["visibility_timeout"] is not None:
            self.stderr.write(
                "Warning: --visibility-timeout is now --lease; the old name goes away in the "
                "next release."
            )
            if lease is not None:
                raise CommandError("Give --lease or --visibility-timeout (its old name), not both.")
            lease = options["visibility_timeout"]
        queues = [q.strip() for q in options["queues"].split(",")] if options["queues"] else None
        try:
            worker = Worker(
                app,
                WorkerOptions(
                    queues=queues,
                    concurrency=options["concurrency"],
                    burst=options["burst"],
                    pool=options["pool"],
                    app_spec=APP_SPEC,
                    lease=lease,
                    poll_interval=options["poll_interval"],
                    listen_url=options["listen_url"],
                    beat=not options["no_beat"],
                ),
            )
            with graceful_stop_signals(worker.stop):
                worker.run()
        except SQLQueueError as exc:
            raise CommandError(str(exc)) from exc
