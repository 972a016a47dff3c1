"""The web dashboard (``sqlqueue dashboard``, API.md §10): the queue's pages and its retry and
revoke buttons, as an ASGI app that also mounts inside an existing site.

It needs the ``dashboard`` extra (Starlette, Jinja2, uvicorn), imported only when an app is
made, so that ``import sqlqueue`` never needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlqueue.exceptions import ConfigurationError

if TYPE_CHECKING:
    from sqlqueue.app import SQLQueue

DASHBOARD_EXTRA_MISSING = (
    "The dashboard needs Starlette, Jinja2 and uvicorn, which this install lacks: "
    'pip install "sqlqueue[dashboard]".'
)


def require_dashboard_extra() -> None:
    """Refuse the dashboard with the fix in the message where its extra is not installed."""
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(DASHBOARD_EXTRA_MISSING) from exc


def check_auth(auth: str | None) -> tuple[str, str] | None:
    """``user:password`` split; ``ConfigurationError`` for anything else."""
    if auth is None:
        return None
    user, colon, password = auth.partition(":")
    if not colon or not user or not password:
        raise ConfigurationError(
            "The dashboard's auth is user:password, both non-empty (e.g. --auth admin:s3cret)."
        )
    return user, password


def create_app(queue_app: SQLQueue, *, read_only: bool = False, auth: str | None = None) -> Any:
    """The dashboard of ``queue_app``'s queue as an ASGI app, to serve or to mount.

    ``read_only``: no retry and revoke buttons, and their POSTs refused. ``auth``:
    ``"user:password"`` that every request must give with HTTP Basic; None asks nothing of
    the caller (leave it None when the site it is mounted in checks who comes in)."""
    require_dashboard_extra()
    from sqlqueue.dashboard.web import build_app

    return build_app(queue_app, read_only=read_only, auth=auth)
