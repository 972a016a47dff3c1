"""The Django tests run the example shop (examples/django_shop) on the database named by
$SHOP_DATABASE (sqlite, the default, postgresql or mysql), with pytest-django:

    DJANGO_SETTINGS_MODULE=django_shop.settings pytest -o pythonpath=examples/django_shop tests/django
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest

SHOP_DIR = Path(__file__).resolve().parents[2] / "examples" / "django_shop"


def pytest_configure(config: pytest.Config) -> None:
    database = os.environ.get("SHOP_DATABASE")
    host = os.environ.get("SHOP_DATABASE_HOST", "127.0.0.1")
    if database == "postgresql":
        url = f"postgresql://postgres@{host}:5432/postgres"
        try:
            psycopg.connect(url, connect_timeout=3).close()
        except psycopg.OperationalError as exc:
            unreachable("PostgreSQL", f"PostgreSQL is unreachable at {url}: {exc}")
    elif database == "mysql":
        try:
            import MySQLdb
        except ImportError as exc:
            unreachable(
                "MariaDB",
                f"mysqlclient, which Django's MySQL backend needs, is not installed ({exc}): "
                "`make mysqlclient` installs it",
            )
        port = int(os.environ.get("SHOP_DATABASE_PORT", "3306"))
        try:
            MySQLdb.connect(host=host, port=port, user="root", connect_timeout=3).close()
        except MySQLdb.OperationalError as exc:
            unreachable("MariaDB", f"MariaDB is unreachable at {host}:{port}: {exc}")


def unreachable(name: str, message: str) -> NoReturn:
    """Skip the Django tests on a database that cannot be reached; under CI, fail them."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise pytest.UsageError(message)
    pytest.exit(f"skipping the Django tests on {name}: {message}", returncode=0)


def run_manage(*args: str, database_name: str) -> subprocess.CompletedProcess[str]:
    """``manage.py`` of the shop in a process of its own, on the test database."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=SHOP_DIR,
        env={**os.environ, "SHOP_DATABASE_NAME": database_name},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="session", autouse=True)
def release_queue_connections(django_db_setup: None) -> Iterator[None]:
    """Close sqlqueue's pooled connections before pytest-django drops the test database."""
    yield
    from sqlqueue.contrib.django import app

    app.engine.dispose()
