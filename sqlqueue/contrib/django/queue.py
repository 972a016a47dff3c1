"""DjangoSQLQueue: an app whose database is a Django database alias."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from sqlqueue.app import SQLQueue
from sqlqueue.caller_connections import CallerConnection
from sqlqueue.conf import SQLITE_BUSY_TIMEOUT
from sqlqueue.dialects import create_engine_for_url
from sqlqueue.dialects.postgresql import PREPARE_THRESHOLD
from sqlqueue.exceptions import ConfigurationError, UnsupportedDatabaseError
from sqlqueue.store import JobStore

MYSQL = "django.db.backends.mysql"

DRIVERS = {
    "django.db.backends.postgresql": "postgresql+psycopg",
    "django.db.backends.sqlite3": "sqlite",
    MYSQL: "mysql+mysqldb",  # mysqlclient, which Django's MySQL backend needs
}


def settings_for_queue() -> dict[str, Any]:
    """The ``SQLQUEUE`` setting, with its defaults."""
    from django.conf import settings

    return {"DATABASE": "default", **getattr(settings, "SQLQUEUE", {})}


def url_for_database(database: dict[str, Any]) -> URL:
    """The SQLAlchemy URL of a Django ``DATABASES`` entry."""
    engine = database.get("ENGINE", "")
    driver = DRIVERS.get(engine)
    if driver is None:
        raise UnsupportedDatabaseError(
            f"sqlqueue does not support the Django database backend {engine!r} yet; use "
            "django.db.backends.postgresql, django.db.backends.mysql or "
            "django.db.backends.sqlite3."
        )
    name = str(database.get("NAME") or "")
    if driver == "sqlite":
        if not name or name == ":memory:" or "mode=memory" in name:
            raise ConfigurationError(
                "sqlqueue needs SQLite in a file that workers can open, not an in-memory "
                "database; in tests, set DATABASES[...]['TEST']['NAME'] to a file path."
            )
        return URL.create("sqlite", database=name)
    return URL.create(
        driver,
        username=database.get("USER") or None,
        password=database.get("PASSWORD") or None,
        host=database.get("HOST") or None,
        port=int(database["PORT"]) if database.get("PORT") else None,
        database=name,
        query=(mysql_options if engine == MYSQL else connection_options)(
            database.get("OPTIONS") or {}
        ),
    )


NOT_CONNINFO_OPTIONS = frozenset(
    {
        "assume_role",
        "isolation_level",
        "pool",
        "server_side_binding",
        "cursor_factory",
        "context",
    }
)
"""``OPTIONS`` keys that are not libpq connection parameters: Django acts on them itself or
hands them to psycopg as Python values. sqlqueue's connections keep their own settings for
them. ``prepare_threshold`` is the exception: given, it is theirs too (``connection_options``),
since behind a pooler in transaction mode no connection may prepare statements."""


def connection_options(options: dict[str, Any]) -> dict[str, str]:
    """The connection parameters of a PostgreSQL ``OPTIONS`` (``sslmode``, ``options`` with a
    ``search_path``, ``service``, ``connect_timeout`` …), as URL query values: SQLAlchemy hands
    them to psycopg, so the queue's engine connects as Django does, and the engine is made
    again when they change."""
    query = {
        key: str(value)
        for key, value in options.items()
        if key not in NOT_CONNINFO_OPTIONS | {PREPARE_THRESHOLD} and value is not None
    }
    if PREPARE_THRESHOLD in options:  # psycopg's option, as sqlqueue's URLs spell it
        threshold = options[PREPARE_THRESHOLD]
        query[PREPARE_THRESHOLD] = "none" if threshold is None else str(threshold)
    return query


NOT_MYSQL_CONNECT_OPTIONS = frozenset({"isolation_level"})
"""``OPTIONS`` keys of Django's MySQL backend that Django acts on itself; the others are
mysqlclient's ``connect()`` arguments, as they are for Django's own connections."""


def mysql_options(options: dict[str, Any]) -> dict[str, str]:
    """A MySQL ``OPTIONS`` (``charset``, ``init_command``, ``read_default_file``, ``ssl`` …)
    as URL query values, which SQLAlchemy hands to mysqlclient as Django does: the queue's
    engine connects as Django's connections do. ``ssl``'s keys travel as ``ssl_<key>``,
    the form SQLAlchemy gathers back into mysqlclient's ``ssl`` dictionary."""
    query: dict[str, str] = {}
    for key, value in options.items():
        if key in NOT_MYSQL_CONNECT_OPTIONS or value is None:
            continue
        if key == "ssl" and isinstance(value, dict):
            query.update({f"ssl_{name}": str(part) for name, part in value.items()})
        elif isinstance(value, str | int | bool):
            query[key] = str(int(value)) if isinstance(value, bool) else str(value)
        else:
            raise ConfigurationError(
                f"sqlqueue cannot pass the MySQL OPTIONS entry {key!r} ({value!r}) to its own "
                "connections; give it as a string or a number, or put it in an option file "
                "named by read_default_file."
            )
    return query


def store_for_project_database(url: URL) -> JobStore:
    """A store on the project's own database, whose settings are the project's: on SQLite,
    not the engine sqlqueue builds for a URL of its own, which would switch the file to WAL
    (a setting that stays with the file). The project turns WAL on in ``OPTIONS``."""
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})
        return JobStore.for_engine(engine)
    return JobStore(*create_engine_for_url(url.render_as_string(False)))


class DjangoSQLQueue(SQLQueue):
    """An app on the Django database named by ``SQLQUEUE["DATABASE"]``.

    Nothing is read from Django's settings until the queue is first used, and the engine
    follows the database's settings when they change (as the test runner does when it
    switches to the test database).
    """

    def __init__(self) -> None:
        self._bound_to: URL | None = None
        self._django_store: JobStore | None = None
        self._start()

    @property
    def alias(self) -> str:
        return str(settings_for_queue()["DATABASE"])

    @property
    def store(self) -> JobStore:
        from django.db import connections

        url = url_for_database(connections[self.alias].settings_dict)
        if self._django_store is None or url != self._bound_to:
            if self._django_store is not None:
                self._django_store.engine.dispose()
            self._django_store = store_for_project_database(url)
            self._bound_to = url
        return self._django_store

    def default_connection(self) -> CallerConnection | None:
        """Inside ``app.using(...)`` that connection; else Django's own connection, so that a
        job joins an enclosing ``transaction.atomic()`` and otherwise commits at once, as
        Django's autocommit does."""
        given = super().default_connection()
        if given is not None:
            return given
        from django.db import connections

        connection = connections[self.alias]
        connection.ensure_connection()
        return connection.connection

    def around_job(self) -> AbstractContextManager[None]:
        return _fresh_django_connections()


@contextmanager
def _fresh_django_connections() -> Iterator[None]:
    # What Django does around each request: drop connections that are broken or past
    # CONN_MAX_AGE, so a long-running worker never works on a stale one.
    from django.db import close_old_connections

    close_old_connections()
    try:
        yield
    finally:
        close_old_connections()
