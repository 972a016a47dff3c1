"""The dashboard's pages and actions, on Starlette, with Jinja2 templates (autoescaped).

Every page works without JavaScript: filters are GET forms, actions are POST forms. Each
action's form carries a token that is also the browser's ``sqlqueue_csrf`` cookie (drawn at
its first visit; SameSite=Strict, HttpOnly); a POST whose form and cookie do not carry the
same token is refused, so another site cannot make a visitor's browser press a button (it can
neither read the token nor send the cookie). Nothing is kept in the process, so several
processes serving one site accept each other's forms. The database calls are blocking: Starlette runs them in its
thread pool.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sqlqueue.app import SQLQueue
from sqlqueue.dashboard import check_auth
from sqlqueue.dashboard.listing import SEARCH_CAP, JobFilter, read_page
from sqlqueue.dashboard.throughput import PER_MINUTE_CAP, Minute, read_throughput
from sqlqueue.exceptions import DatabaseError, SQLQueueError
from sqlqueue.jobs import FINISHED_STATUSES, JobStatus, as_utc
from sqlqueue.operator_cli import timings
from sqlqueue.periodic import read_periodic_tasks
from sqlqueue.scheduler import schedule_rows
from sqlqueue.status import HISTORY_COUNT_CAP, read_job, read_status, read_workers
from sqlqueue.terminal import age, capped

TEMPLATES = Path(__file__).parent / "templates"
CSRF_COOKIE = "sqlqueue_csrf"
RETRYABLE = (JobStatus.FAILURE, JobStatus.REVOKED)
REVOCABLE = (JobStatus.WAITING, JobStatus.PENDING, JobStatus.RETRY)
"""Revoke stops a job before it starts; a running one is terminated (``revoke(terminate=True)``)."""


class BasicAuth:
    """HTTP Basic in front of the whole app: a request without these credentials gets 401."""

    def __init__(self, app: ASGIApp, user: str, password: str) -> None:
        self._app = app
        self._expected = f"{user}:{password}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._allowed(scope):
            response = PlainTextResponse(
                "This dashboard asks for a user and password.",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="sqlqueue", charset="UTF-8"'},
            )
            await response(scope, receive, send)
            return
        await self._app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            given = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            return False
        return secrets.compare_digest(given, self._expected)


def build_app(queue_app: SQLQueue, *, read_only: bool, auth: str | None) -> ASGIApp:
    credentials = check_auth(auth)
    dashboard = Dashboard(queue_app, read_only=read_only)
    web = Starlette(
        routes=[
            Route("/", dashboard.overview),
            Route("/jobs", dashboard.jobs),
            Route("/jobs/{job_id:path}/retry", dashboard.retry, methods=["POST"]),
            Route("/jobs/{job_id:path}/revoke", dashboard.revoke, methods=["POST"]),
            Route("/jobs/{job_id:path}/terminate", dashboard.terminate, methods=["POST"]),
            Route("/jobs/{job_id:path}", dashboard.job),
            Route("/workers", dashboard.workers),
            Route("/schedules", dashboard.schedules),
            Route("/metrics", dashboard.metrics),
        ],
        exception_handlers={DatabaseError: database_unreachable},
    )
    if credentials is None:
        return web
    return BasicAuth(web, *credentials)


class Dashboard:
    """The pages of one app's queue."""

    def __init__(self, queue_app: SQLQueue, *, read_only: bool) -> None:
        self.app = queue_app
        self.read_only = read_only
        self.templates = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters.update(
            when=_when, age=age, capped=lambda n: capped(n, HISTORY_COUNT_CAP), json=_json
        )

    def page(
        self, request: Request, template: str, status_code: int = 200, **values: Any
    ) -> Response:
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        html = self.templates.get_template(template).render(
            base=_base(request),
            read_only=self.read_only,
            csrf_token=token,
            **values,
        )
        response = HTMLResponse(html, status_code=status_code)
        if request.cookies.get(CSRF_COOKIE) != token:
            response.set_cookie(
                CSRF_COOKIE,
                token,
                path=f"{_base(request)}/",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
        return response

    def overview(self, request: Request) -> Response:
        status = read_status(self.app.store)
        minutes = read_throughput(self.app.store)
        return self.page(
            request, "overview.html", status=status, nav="overview", chart=chart(minutes)
        )

    def jobs(self, request: Request) -> Response:
        query = request.query_params
        wanted = query.get("id", "").strip()
        if wanted:
            if read_job(self.app.store, wanted) is None:
                return self.page(
                    request,
                    "message.html",
                    404,
                    title="No such job",
                    message=f"No job {wanted!r}: check the id; a finished job is deleted once "
                    "older than result_expires.",
                )
            return RedirectResponse(f"{_base(request)}/jobs/{quote(wanted)}", status_code=303)
        chosen = JobFilter(
            status=query.get("status", ""),
            queue=query.get("queue", "").strip(),
            task=query.get("task", "").strip(),
        )
        if chosen.status and chosen.status not in JobStatus.__members__:
            return self.page(
                request,
                "message.html",
                400,
                title="Unknown status",
                message=f"No status {chosen.status!r}: choose one of the list.",
            )
        try:
            page = read_page(self.app.store, chosen, query.get("cursor") or None)
        except ValueError:
            return self.page(
                request,
                "message.html",
                400,
                title="Bad page link",
                message="This page link is not one the dashboard wrote: start from the first page.",
            )
        filters = {"status": chosen.status, "queue": chosen.queue, "task": chosen.task}
        kept = {name: value for name, value in filters.items() if value}
        return self.page(
            request,
            "jobs.html",
            nav="jobs",
            chosen=chosen,
            statuses=[status.value for status in JobStatus],
            page=page,
            search_cap=SEARCH_CAP,
            first_link=urlencode(kept),
            next_link=urlencode({**kept, "cursor": page.next_cursor}) if page.next_cursor else None,
        )

    def job(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        job = read_job(self.app.store, job_id)
        if job is None:
            return self.page(
                request,
                "message.html",
                404,
                title="No such job",
                message=f"No job {job_id!r}: check the id; a finished job is deleted once older "
                "than result_expires.",
            )
        job = {
            name: as_utc(value) if isinstance(value, datetime) else value
            for name, value in job.items()
        }
        return self.page(
            request,
            "job.html",
            nav="jobs",
            job=job,
            timings=timings(job),
            finished=job["status"] in FINISHED_STATUSES,
            can_retry=job["status"] in RETRYABLE,
            can_revoke=job["status"] in REVOCABLE,
            can_terminate=job["status"] == JobStatus.STARTED,
            done=request.query_params.get("done", ""),
        )

    def workers(self, request: Request) -> Response:
        return self.page(
            request, "workers.html", nav="workers", workers=read_workers(self.app.store)
        )

    def schedules(self, request: Request) -> Response:
        try:
            self.app.import_default_modules()
            periodic = read_periodic_tasks(self.app)
            rows = schedule_rows(self.app, periodic) if periodic else []
        except SQLQueueError as exc:
            return self.page(request, "message.html", 500, title="Schedules", message=str(exc))
        return self.page(request, "schedules.html", nav="schedules", rows=rows)

    async def retry(self, request: Request) -> Response:
        return await self._act(request, "retried", self._retry)

    async def revoke(self, request: Request) -> Response:
        return await self._act(request, "revoked", self._revoke)

    async def terminate(self, request: Request) -> Response:
        return await self._act(request, "terminated", self._terminate)

    def _retry(self, job_id: str) -> int:
        return self.app.store.requeue_jobs(job_ids=[job_id])

    def _revoke(self, job_id: str) -> int:
        return self.app.store.revoke_jobs([job_id])

    def _terminate(self, job_id: str) -> int:
        # As revoke(terminate=True): its worker is told, and stops the task (docs/results.md).
        return self.app.store.revoke_jobs([job_id], terminate=True)

    async def _act(self, request: Request, done: str, action: Any) -> Response:
        if self.read_only:
            return PlainTextResponse("This dashboard is read-only: no action is taken.", 403)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = form.get("csrf_token", [""])[0]
        expected = request.cookies.get(CSRF_COOKIE, "")
        if not expected or not secrets.compare_digest(token.encode(), expected.encode()):
            return PlainTextResponse(
                "Refused: this form's CSRF token is missing, or not this browser's. Reload the page and press "
                "the button again.",
                403,
            )
        job_id = request.path_params["job_id"]
        changed = await run_in_threadpool(action, job_id)
        outcome = done if changed else f"not-{done}"
        return RedirectResponse(
            f"{_base(request)}/jobs/{quote(job_id)}?done={outcome}", status_code=303
        )

    def metrics(self, request: Request) -> Response:
        try:
            from prometheus_client import CollectorRegistry, generate_latest
            from prometheus_client.exposition import CONTENT_TYPE_LATEST
        except ImportError:
            return PlainTextResponse(
                'No metrics: this install lacks prometheus_client (pip install "sqlqueue[metrics]").',
                404,
            )
        from sqlqueue.metrics import QueueCollector

        registry = CollectorRegistry()
        registry.register(QueueCollector(self.app.store))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


CHART_HEIGHT = 100
BAR_WIDTH = 10


def chart(minutes: list[Minute]) -> dict[str, Any]:
    """The bars of the throughput chart, in SVG units; the tallest minute fills the height."""
    top = max((minute.finished for minute in minutes), default=0)
    bars = []
    for n, minute in enumerate(minutes):
        height = round(CHART_HEIGHT * minute.finished / top) if top else 0
        shown = capped(minute.finished, PER_MINUTE_CAP)
        bars.append(
            {
                "x": n * BAR_WIDTH,
                "y": CHART_HEIGHT - height,
                "height": height,
                "title": f"{minute.start:%H:%M} UTC: {shown} finished",
            }
        )
    return {
        "bars": bars,
        "width": len(minutes) * BAR_WIDTH,
        "height": CHART_HEIGHT,
        "top": capped(top, PER_MINUTE_CAP),
        "total": sum(minute.finished for minute in minutes),
        "first": minutes[0].start if minutes else None,
    }


async def database_unreachable(request: Request, exc: Exception) -> Response:
    """A page saying why, not a bare 500, while the database cannot answer."""
    return PlainTextResponse(f"The queue's database did not answer: {exc}", 503)


def _base(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return f"{value:%Y-%m-%d %H:%M:%S.%f}"[:-3] + " UTC"


def _json(value: Any) -> str:
    """On one line when short, indented when not."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else json.dumps(value, indent=2, default=str)
