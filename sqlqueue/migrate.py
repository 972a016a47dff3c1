"""Run the packaged alembic migrations without an alembic.ini (``sqlqueue migrate``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import ResolutionError
from sqlalchemy.engine import Connection, Engine

VERSION_TABLE = "sqlqueue_alembic_version"
"""sqlqueue's own alembic version table, so it never touches the application's."""

DDL_COMMITS = ("mysql", "mariadb")
"""The databases (SQLAlchemy's names) where each DDL statement commits as it runs, whatever
the transaction it is in."""


@contextmanager
def migrating(engine: Engine) -> Iterator[Connection]:
    """The connection a migration runs on. One transaction around all its revisions, so that
    a failed one leaves the database as it was; but MySQL commits each DDL statement as it
    runs, whatever the transaction, and rolling the version table back alone would leave it
    naming a revision the tables have left. There the connection is handed over outside a
    transaction, and alembic commits each revision with its version."""
    if engine.dialect.name in DDL_COMMITS:
        with engine.connect() as connection:
            yield connection
    else:
        with engine.begin() as connection:
            yield connection


def migrations_directory() -> Path:
    """Where the migrations are: inside the installed wheel, or at the repository root."""
    packaged = Path(__file__).parent / "migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).parent.parent / "migrations"


def upgrade(
    engine: Engine, revision: str = "head", progress: Callable[[str], None] | None = None
) -> None:
    """Bring the database behind ``engine`` to ``revision`` (default: the latest schema).
    ``progress`` hears which step runs, before each: on a big table one step (an index
    built, a column added) may take minutes, and the operator should see which."""
    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    with migrating(engine) as connection:
        # env.py uses this connection instead of building its own engine from a URL.
        config.attributes["connection"] = connection
        if progress is not None:
            steps = _Steps(_pending(config, connection, revision), progress)
            config.attributes["on_version_apply"] = steps.applied  # (env.py passes it on)
            steps.announce()
        command.upgrade(config, revision)


def _pending(config: Config, connection: Connection, revision: str) -> list[Script]:
    """The steps from the database's revision to ``revision``, oldest first."""
    current = MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()
    if connection.dialect.name in DDL_COMMITS:
        connection.commit()  # ends the read's transaction: alembic's are per revision there
    script = ScriptDirectory.from_config(config)
    try:
        steps = list(script.iterate_revisions(revision, current))
    except ResolutionError:  # a revision this sqlqueue does not know: the upgrade says so
        return []
    return [step for step in reversed(steps) if step]


class _Steps:
    """Says which step of an upgrade runs next; alembic calls ``applied`` after each."""

    def __init__(self, steps: list[Script], progress: Callable[[str], None]) -> None:
        self._steps = steps
        self._progress = progress
        self._done = 0

    def announce(self) -> None:
        if self._done < len(self._steps):
            step = self._steps[self._done]
            self._progress(
                f"migrating: {step.revision} {step.doc} ({self._done + 1} of {len(self._steps)})"
            )

    def applied(self, **_: Any) -> None:
        self._done += 1
        self.announce()


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database behind ``engine`` back to ``revision`` (``base`` removes everything)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    with migrating(engine) as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
