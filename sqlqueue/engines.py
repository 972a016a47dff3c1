"""The engines sqlqueue builds: pooled connections pinged only after they sat idle, and
unpooled async engines, with a clear error where the async extra is missing."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from sqlqueue.conf import PING_AFTER_IDLE
from sqlqueue.exceptions import ConfigurationError

if TYPE_CHECKING:
    # Only for hints: SQLAlchemy's asyncio module needs greenlet, which only the async extra
    # installs, so it is imported where async is used (see ``require_async_extra``).
    from sqlalchemy.ext.asyncio import AsyncEngine


def ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use, but only one that has sat idle for a while.

    ``pool_pre_ping`` pings at every checkout: a round trip, and a transaction on the
    server, for every send and every poll. A connection used moments ago is almost surely
    alive, and if it is not, the statement fails with a disconnect, SQLAlchemy drops the
    pool's connections and the next attempt reconnects. A connection that sat idle may
    have been closed by the server, a restart or a firewall: that one is pinged, and
    replaced when the ping fails.
    """

    def mark_idle(_dbapi_connection: Any, record: Any) -> None:
        record.info[IDLE_SINCE] = time.monotonic()

    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # whatever the driver raises, the connection is unusable
            # The pool's documented signal: drop this connection and check out another.
            raise sa_exc.DisconnectionError(str(exc)) from exc

    event.listen(engine.pool, "checkin", mark_idle)
    event.listen(engine.pool, "checkout", ping_if_idle)


IDLE_SINCE = "sqlqueue_idle_since"
"""Key in a pooled connection's ``info``: when it was last returned to the pool."""


ASYNC_EXTRA_MISSING = (
    "adelay(), aapply_async() and aget() need SQLAlchemy's asyncio support and the async "
    'drivers, which this install lacks: pip install "sqlqueue[async]".'
)


def require_async_extra() -> None:
    """Refuse async use with the fix in the message where SQLAlchemy's asyncio module cannot
    load: it needs greenlet, which a bare ``pip install sqlqueue`` does not bring."""
    try:
        import sqlalchemy.ext.asyncio  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(ASYNC_EXTRA_MISSING) from exc


def unpooled_async_engine(url: URL, **options: Any) -> AsyncEngine:
    """An async engine that opens a connection per use (see ``Dialect.create_async_engine``)."""
    require_async_extra()
    from sqlalchemy.ext.asyncio import create_async_engine

    return create_async_engine(url, poolclass=NullPool, **options)
