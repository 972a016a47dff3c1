"""Run the packaged alembic migrations without an alembic.ini (``sqlqueue migrate``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

VERSION_TABLE = "sqlqueue_alembic_version"
"""sqlqueue's own alembic version table, so it never touches the application's."""


def migrations_directory() -> Path:
    """Where the migrations are: inside the installed wheel, or at the repository root."""
    packaged = Path(__file__).parent / "migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).parent.parent / "migrations"


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database behind ``engine`` to ``revision`` (default: the latest schema)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    with engine.begin() as connection:
        # env.py uses this connection instead of building its own engine from a URL.
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database behind ``engine`` back to ``revision`` (``base`` removes everything)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
