"""PostgreSQL's LISTEN/NOTIFY: how an idle worker hears of new jobs and revokes at once.

One connection per worker process listens, in autocommit, outside the pool; each send commits
a ``pg_notify`` on ``NOTIFY_CHANNEL`` with its jobs, and a revoke of a running job one on
``REVOKE_CHANNEL``. While this connection is up, the worker does not poll (worker.py).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

import psycopg
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine

from sqlqueue.outages import Outage

NOTIFY_CHANNEL = "sqlqueue"
"""The channel new jobs are announced on; the payload is the job's queue."""

REVOKE_CHANNEL = "sqlqueue_revoke"
"""The channel revokes of running jobs (``revoke(terminate=True)``) are announced on; the
payload is the job's id."""

LISTEN_TIMEOUT = 1.0
"""Seconds the listener waits for a notification before checking whether to stop."""

LISTEN_CHECK_WAIT = 10.0
"""Seconds a new LISTEN connection waits for the notification it sent itself through the app's
engine before the worker gives up on it and polls (``listen``): generous, since a loaded
server may be slow, and free, since the worker polls meanwhile."""

LISTEN_CHECK_PAYLOAD = "listen check "
"""The start of the payload of that notification, on ``NOTIFY_CHANNEL``: another worker that
hears it looks for work once, as for any notification."""

MAX_LISTEN_BACKOFF = 30.0
"""Longest pause, in seconds, between attempts to reopen a lost LISTEN connection."""

LISTEN_KEEPALIVES = {"TCP_KEEPIDLE": 30, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 3}
"""TCP keepalive timing of the LISTEN connection, which is otherwise silent: the first probe
after 30 s of quiet, then one every 10 s, and the connection is dead after 3 unanswered."""

logger = logging.getLogger(__name__)


def listen(
    engine: Engine,
    wake: Callable[[], None],
    stop: threading.Event,
    listening: threading.Event,
    revoked: Callable[[], None],
    listen_engine: Engine | None = None,
    poll_interval: float = 1.0,
) -> None:
    # One connection per worker process, in autocommit, doing nothing but LISTEN: an idle
    # worker is woken within milliseconds of a commit instead of at its next poll, and
    # needs no poll of its own while this connection is up. Whatever ends it (a lost
    # server, a refused connection, a creator or connect hook that raises), the worker
    # polls until it is back, and this thread tries again, less often each time.
    #
    # Each time it connects, it first checks that it hears a notification sent through
    # the app's engine: a pooler in transaction mode (PgBouncer) runs the LISTEN on a
    # server connection that it then lends to other clients, and this one never hears a
    # thing. Then the worker polls, says how to mend it, and checks again now and then
    # (a server slow to deliver after a restart fails the check too). It polls while
    # the check waits: the check never delays a claim.
    if listen_engine is None:
        listen_engine = engine
    backoff = LISTEN_TIMEOUT
    outage = Outage(logger, "LISTEN (polling meanwhile)")
    deaf = False
    while not stop.is_set():
        try:
            with _listen_connection(listen_engine) as conn:
                conn.execute(f"LISTEN {REVOKE_CHANNEL}")
                conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                hears = _hears_itself(conn, engine, wake, revoked, stop)
                outage.answered()
                if not hears:
                    if not deaf and not stop.is_set():
                        logger.warning(
                            "new jobs: polling every %gs (LISTEN through %s received no "
                            "notification within %gs: a pooler in transaction mode? give "
                            "--listen-url a direct connection)",
                            poll_interval,
                            _where(listen_engine.url),
                            LISTEN_CHECK_WAIT,
                        )
                    deaf = True
                    stop.wait(MAX_LISTEN_BACKOFF)
                    continue
                backoff = LISTEN_TIMEOUT
                deaf = False
                listening.set()
                logger.info("new jobs: LISTEN on %s", _where(listen_engine.url))
                wake()  # sends committed while nobody listened announced nothing to us
                revoked()  # nor did revokes
                while not stop.is_set():
                    for notification in conn.notifies(timeout=LISTEN_TIMEOUT):
                        _hand_on(notification, wake, revoked)
        except Exception as exc:  # any failure: poll meanwhile, then try again
            listening.clear()
            wake()  # back to polling, from now rather than after the fallback wait
            if not isinstance(exc, psycopg.Error | sa_exc.DBAPIError):
                logger.exception("LISTEN: stopped by a defect, trying again")
            outage.failed(exc)
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_LISTEN_BACKOFF)
    listening.clear()


def _hand_on(
    notification: psycopg.Notify, wake: Callable[[], None], revoked: Callable[[], None]
) -> None:
    if notification.channel == REVOKE_CHANNEL:
        revoked()
    else:
        wake()


def _hears_itself(
    conn: psycopg.Connection[Any],
    engine: Engine,
    wake: Callable[[], None],
    revoked: Callable[[], None],
    stop: threading.Event,
) -> bool:
    """Whether the LISTEN of ``conn`` hears a notification sent through ``engine`` within
    ``LISTEN_CHECK_WAIT`` seconds (or until ``stop``); the notifications heard meanwhile are
    handed on as usual."""
    check = f"{LISTEN_CHECK_PAYLOAD}{uuid.uuid4().hex}"
    with engine.begin() as sender:
        sender.exec_driver_sql(
            "SELECT pg_notify(%(channel)s, %(payload)s)",
            {"channel": NOTIFY_CHANNEL, "payload": check},
        )
    deadline = time.monotonic() + LISTEN_CHECK_WAIT
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        for notification in conn.notifies(timeout=min(left, LISTEN_TIMEOUT)):
            if notification.payload == check:
                return True
            _hand_on(notification, wake, revoked)
    return False


def _where(url: URL) -> str:
    """A database's address as a worker's log says it: host:port/database."""
    if url.host is None or url.host.startswith("/"):
        return url.render_as_string(hide_password=True)
    return f"{url.host}:{url.port or 5432}/{url.database or ''}"


def _listen_connection(engine: Engine) -> psycopg.Connection[Any]:
    """A connection of the engine's own making, so that its connect_args, creator and connect
    events apply as they do to every other connection (a search_path, sslmode, a password
    callback), detached from the pool: it is held for good, and closes for real."""
    pooled = engine.raw_connection()
    conn = cast(psycopg.Connection[Any], pooled.driver_connection)
    pooled.detach()
    try:
        conn.autocommit = True
        _keep_alive(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _keep_alive(conn: psycopg.Connection[Any]) -> None:
    # This connection is silent for minutes: TCP keepalives make one that died without a
    # reset (a lost peer) fail within a minute or two, so that the worker goes back to
    # polling. libpq takes its keepalives_* parameters only when it connects, and here the
    # engine connects: set the same options on the socket itself.
    try:
        sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
    except OSError:
        return  # a platform whose sockets are not file descriptors: the system's defaults
    with sock:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return  # a Unix socket: nothing in between to lose
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in LISTEN_KEEPALIVES.items():
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
