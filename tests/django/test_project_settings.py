"""What sqlqueue takes from the Django project's settings and command line, and what it leaves
alone: the first release's names still work (with a warning), bad values are refused, and the
project's own database keeps its settings."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal

import pytest
import sqlalchemy as sa
from conftest import run_manage
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings
from orders.models import Order
from orders.tasks import send_receipt

from sqlqueue import Worker, WorkerOptions
from sqlqueue.contrib.django import app
from sqlqueue.contrib.django.queue import url_for_database
from sqlqueue.exceptions import ConfigurationError

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def empty_queue() -> None:
    with app.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM sqlqueue_jobs"))


@pytest.fixture
def restored_conf() -> Iterator[None]:
    """The app's settings as the shop's SQLQUEUE made them, again after the test."""
    lease = app.conf.lease
    yield
    app.conf.lease = lease


@pytest.mark.usefixtures("restored_conf")
def test_the_first_releases_visibility_timeout_setting_still_sets_the_lease() -> None:
    # ready() is where the SQLQUEUE setting is applied; run it again on the old name.
    with (
        override_settings(SQLQUEUE={"DATABASE": "default", "VISIBILITY_TIMEOUT": 45}),
        pytest.warns(FutureWarning, match=r"visibility_timeout is now app\.conf\.lease"),
    ):
        apps.get_app_config("sqlqueue").ready()

    assert app.conf.lease == 45


def test_the_worker_command_still_takes_visibility_timeout_with_a_warning() -> None:
    order = Order.objects.create(email="v@example.com", total=Decimal("2.00"))
    result = send_receipt.delay(order.pk)

    worker = run_manage(
        "sqlqueue_worker",
        "--burst",
        "--visibility-timeout",
        "5",
        database_name=connection.settings_dict["NAME"],
    )

    assert worker.returncode == 0, worker.stderr
    assert "--visibility-timeout is now --lease" in worker.stderr
    assert "lease=5s" in worker.stderr
    assert result.get(timeout=5) == f"receipt for order {order.pk} sent to v@example.com"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--lease", "0"], "lease must be more than 0"),
        (["--visibility-timeout", "0"], "lease must be more than 0"),
        (["--lease", "5", "--visibility-timeout", "5"], "not both"),
        (["--lease", "5 minutes"], "'5 minutes' is not a duration: write seconds"),
    ],
)
def test_the_worker_command_refuses_a_bad_lease(arguments: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("sqlqueue_worker", "--burst", *arguments)


def test_the_queue_leaves_the_journal_mode_of_a_sqlite_project_database_alone() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the journal mode is SQLite's")
    path = connection.settings_dict["NAME"]
    # Start from SQLite's default, whatever earlier tests left: nothing may hold the file.
    app.engine.dispose()
    connection.close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode=DELETE").fetchone() == ("delete",)

    order = Order.objects.create(email="j@example.com", total=Decimal("1.00"))
    result = send_receipt.delay(order.pk)
    Worker(app, WorkerOptions(burst=True, poll_interval=0.05)).run()

    assert result.get(timeout=5) == f"receipt for order {order.pk} sent to j@example.com"
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_a_mysql_entry_gives_the_queue_mysqlclient_and_the_connect_options() -> None:
    url = url_for_database(
        {
            "ENGINE": "django.db.backends.mysql",
            "NAME": "shop",
            "HOST": "db.internal",
            "PORT": "3307",
            "OPTIONS": {
                "charset": "utf8mb4",
                "isolation_level": "read committed",  # Django's to apply, not mysqlclient's
                "ssl": {"ca": "/etc/ca.pem"},
                "local_infile": False,
            },
        }
    )
    assert url.drivername == "mysql+mysqldb"
    assert (url.host, url.port, url.database) == ("db.internal", 3307, "shop")
    assert dict(url.query) == {"charset": "utf8mb4", "ssl_ca": "/etc/ca.pem", "local_infile": "0"}


def test_a_mysql_option_the_queue_cannot_pass_on_is_refused() -> None:
    entry = {"ENGINE": "django.db.backends.mysql", "NAME": "shop", "OPTIONS": {"conv": {1: str}}}
    with pytest.raises(ConfigurationError, match=r"'conv'.*read_default_file"):
        url_for_database(entry)
