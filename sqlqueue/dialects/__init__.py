"""What differs per database, chosen once from the engine's dialect name."""

from __future__ import annotations

from sqlalchemy.engine import Dialect as SADialect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from sqlqueue.dialects.base import Dialect
from sqlqueue.dialects.mysql import MySQLDialect
from sqlqueue.dialects.postgresql import PostgreSQLDialect
from sqlqueue.dialects.sqlite import SQLiteDialect
from sqlqueue.exceptions import ConfigurationError, UnsupportedDatabaseError

DIALECTS: dict[str, type[Dialect]] = {
    "postgresql": PostgreSQLDialect,
    "postgres": PostgreSQLDialect,
    "sqlite": SQLiteDialect,
    "mysql": MySQLDialect,
    "mariadb": MySQLDialect,
}

DRIVERS: dict[str, tuple[str, ...]] = {
    "postgresql": ("psycopg",),
    "sqlite": ("pysqlite", "aiosqlite"),
    "mysql": ("pymysql", "mysqldb", "aiomysql"),
    "mariadb": ("pymysql", "mysqldb", "aiomysql"),
}
"""The drivers sqlqueue's own SQL is written for (its parameter style, its type adaptation)."""

SUPPORTED = (
    "PostgreSQL (postgresql://…), SQLite (sqlite:///path.db) or MySQL/MariaDB (mysql+pymysql://…)"
)


def get_dialect(name: str) -> Dialect:
    """The sqlqueue dialect for a SQLAlchemy dialect name, or a clear refusal."""
    try:
        return DIALECTS[name]()
    except KeyError:
        raise UnsupportedDatabaseError(
            f"sqlqueue does not support the {name!r} database yet; use {SUPPORTED}."
        ) from None


def check_driver(dialect: SADialect) -> None:
    """Refuse an engine or connection whose driver sqlqueue's SQL is not written for."""
    _check_driver_name(dialect.name, dialect.driver)


def _check_driver_name(name: str, driver: str) -> None:
    if driver not in DRIVERS.get(name, (driver,)):
        raise ConfigurationError(
            f"sqlqueue speaks to {name} through {' or '.join(DRIVERS[name])}, "
            f"but this engine uses {driver}; build it from a "
            f"{name}+{DRIVERS[name][0]}:// URL."
        )


def create_engine_for_url(url: str) -> tuple[Engine, Dialect]:
    """An engine configured the way sqlqueue needs for this URL, and its dialect."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"{url!r} is not a database URL; give one such as {SUPPORTED}."
        ) from exc
    dialect = get_dialect(parsed.get_backend_name())
    if "+" in parsed.drivername:  # a driver named outright is checked before it is imported
        _check_driver_name(dialect.name, parsed.get_driver_name())
        if parsed.get_dialect().is_async:
            raise ConfigurationError(
                f"{url!r} names an async driver; give the plain URL ({SUPPORTED}): sqlqueue "
                "opens its async connections for adelay() and aget() from it."
            )
    try:
        return dialect.create_engine(parsed), dialect
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigurationError(
            f"Cannot use {url!r}: {exc}. Give one such as {SUPPORTED}."
        ) from exc
