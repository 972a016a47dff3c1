"""``sqlqueue dashboard``: serve the dashboard with uvicorn."""

from __future__ import annotations

import ipaddress

import click

from sqlqueue.cli import app_for, database_options, main, shown, user_errors
from sqlqueue.dashboard import check_auth, create_app, require_dashboard_extra
from sqlqueue.exceptions import ConfigurationError

DEFAULT_PORT = 8181


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@main.command()
@database_options
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--read-only", is_flag=True, help="Show the queue; no retry or revoke buttons.")
@click.option(
    "--auth",
    envvar="SQLQUEUE_DASHBOARD_AUTH",
    metavar="USER:PASSWORD",
    help="Ask every request for these credentials (HTTP Basic); needed to listen beyond "
    "loopback. Default: $SQLQUEUE_DASHBOARD_AUTH.",
)
@user_errors
def dashboard(
    app_spec: str | None,
    url: str | None,
    host: str,
    port: int,
    read_only: bool,
    auth: str | None,
) -> None:
    """Serve the web dashboard: queues, jobs, workers, schedules; retry and revoke."""
    require_dashboard_extra()
    try:
        check_auth(auth)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--auth") from exc
    if auth is None and not is_loopback(host):
        raise click.UsageError(
            f"Listening on {host} lets other machines in: give --auth user:password (or set "
            "SQLQUEUE_DASHBOARD_AUTH), or listen on 127.0.0.1."
        )
    import uvicorn

    app = app_for(app_spec, url)
    web = create_app(app, read_only=read_only, auth=auth)
    shown_host = f"[{host}]" if ":" in host else host
    click.echo(
        f"sqlqueue dashboard of {shown(app)} at http://{shown_host}:{port}/"
        + (" (read-only)" if read_only else "")
    )
    uvicorn.run(web, host=host, port=port, log_level="warning")
