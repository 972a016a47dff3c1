"""Throwaway databases for the chaos run and the benchmark: made, migrated, removed."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
import sqlalchemy as sa

from sqlqueue import SQLQueue
from sqlqueue.migrate import upgrade

MYSQL_BACKENDS = ("mysql", "mariadb")


def fresh_database(url: str, purpose: str) -> str:
    """The URL of a new, migrated database: a file in a new folder for SQLite, a new
    database on the server of ``url`` otherwise (PostgreSQL, MySQL or MariaDB)."""
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = Path(tempfile.mkdtemp(prefix=f"sqlqueue-{purpose}-")) / "queue.db"
        fresh = f"sqlite:///{path}"
    elif backend in MYSQL_BACKENDS:
        name = f"sqlqueue_{purpose}_{uuid.uuid4().hex[:8]}"
        _run_on_mysql(url, f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        fresh = parsed.set(database=name).render_as_string(hide_password=False)
    else:
        name = f"sqlqueue_{purpose}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(_admin_url(url), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        fresh = parsed.set(database=name).render_as_string(hide_password=False)
    app = SQLQueue(fresh)
    upgrade(app.engine)
    app.engine.dispose()
    return fresh


def drop_database(server_url: str, database_url: str) -> None:
    """Remove what ``fresh_database`` made."""
    parsed = sa.make_url(database_url)
    if parsed.get_backend_name() == "sqlite":
        shutil.rmtree(Path(parsed.database or "").parent, ignore_errors=True)
        return
    if parsed.get_backend_name() in MYSQL_BACKENDS:
        _run_on_mysql(server_url, f"DROP DATABASE IF EXISTS {parsed.database}")
        return
    with psycopg.connect(_admin_url(server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')


def _run_on_mysql(url: str, statement: str) -> None:
    """One statement on the server of ``url``, through an engine of its own (the database
    of ``url`` may be the one dropped)."""
    parsed = sa.make_url(url).set(database=None)
    if "+" not in parsed.drivername:  # as sqlqueue reads a bare mysql:// URL: PyMySQL
        parsed = parsed.set(drivername=f"{parsed.drivername}+pymysql")
    engine = sa.create_engine(parsed)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _admin_url(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
