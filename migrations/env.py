"""Alembic environment for sqlqueue's own tables.

``alembic upgrade head`` (URL from $SQLQUEUE_DATABASE_URL, else alembic.ini) and
``sqlqueue migrate`` (which passes a connection in ``config.attributes``) both run here.
The version table is sqlqueue's own, so these migrations sit beside an application's.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from sqlqueue.conf import DATABASE_URL_ENV
from sqlqueue.dialects import create_engine_for_url
from sqlqueue.migrate import VERSION_TABLE, migrating
from sqlqueue.schema import metadata

config = context.config

if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata


def database_url() -> str:
    """$SQLQUEUE_DATABASE_URL when set, else ``sqlalchemy.url`` from alembic.ini."""
    url = os.environ.get(DATABASE_URL_ENV) or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit(f"Set {DATABASE_URL_ENV} (or sqlalchemy.url in alembic.ini) to migrate.")
    return url


def include_name(name: str | None, type_: str, _parent: Any) -> bool:
    """Only sqlqueue's tables are ours to compare and change."""
    return type_ != "table" or (name or "").startswith("sqlqueue_")


def configure(**options: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        include_name=include_name,
        **options,
    )


def run_migrations_offline() -> None:
    configure(url=database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_with_connection(connection: Connection) -> None:
    configure(
        connection=connection,
        render_as_batch=connection.dialect.name == "sqlite",
        # ``sqlqueue migrate`` on a terminal: which step runs (``sqlqueue.migrate.upgrade``).
        on_version_apply=config.attributes.get("on_version_apply"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        run_with_connection(given)
        return
    # The engine the app itself would build: the same driver choice and SQLite settings.
    engine, _dialect = create_engine_for_url(database_url())
    try:
        with migrating(engine) as connection:
            run_with_connection(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
