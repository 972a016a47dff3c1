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


def fresh_database(url: str, purpose: str) -> str:
    """The URL of a new, migrated database: a file in a new folder for SQLite, a new
    database on the server of ``url`` otherwise."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(tempfile.mkdtemp(prefix=f"sqlqueue-{purpose}-")) / "queue.db"
        fresh = f"sqlite:///{path}"
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
    with psycopg.connect(_admin_url(server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')


def _admin_url(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
