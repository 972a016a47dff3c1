"""The dashboard mounted in a Django project's ASGI application (docs/operations.md): under
/queue/, with Django answering every other path."""

from __future__ import annotations

import pytest
from django.core.asgi import get_asgi_application
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from sqlqueue.contrib.django import app as queue_app
from sqlqueue.dashboard import create_app

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_dashboard_mounts_beside_django() -> None:
    application = Starlette(
        routes=[
            Mount("/queue", app=create_app(queue_app, auth="ops:s3cret")),
            Mount("/", app=get_asgi_application()),
        ]
    )
    job = queue_app.send_task("orders.tasks.send_receipt", args=[1], queue="emails")
    web = TestClient(application, follow_redirects=False)

    assert web.get("/queue/").status_code == 401
    jobs = web.get("/queue/jobs", auth=("ops", "s3cret"))
    assert jobs.status_code == 200 and job.id in jobs.text
    assert f'href="/queue/jobs/{job.id}"' in jobs.text
    assert web.get("/admin/login/").status_code == 200
