"""``sqlqueue.Celery`` in a Django project, as the usual proj/celery.py builds it: with no
database URL it uses Django's database (and joins Django's transactions), reads the CELERY_
settings lazily, and discovers the installed apps' task modules when a worker starts."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from django.db import connection, transaction
from django.test import override_settings

from sqlqueue import Celery

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def celery(monkeypatch: pytest.MonkeyPatch) -> Iterator[Celery]:
    for name in ("SQLQUEUE_DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    app = Celery("django_shop")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    yield app
    app.engine.dispose()


def test_with_no_url_the_app_uses_djangos_database_and_joins_its_transactions(
    celery: Celery,
) -> None:
    assert celery.engine.url.database == connection.settings_dict["NAME"]

    @celery.task(name="shop.note")
    def note(text: str) -> str:
        return text

    with transaction.atomic():
        kept = note.delay("kept")
    with pytest.raises(RuntimeError), transaction.atomic():
        dropped = note.delay("dropped")
        raise RuntimeError("roll back")
    assert celery.store.get_job(kept.id) is not None
    assert celery.store.get_job(dropped.id) is None
    with celery.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM sqlqueue_jobs"))


def test_celery_settings_are_read_from_djangos_settings_on_first_use() -> None:
    with override_settings(CELERY_TASK_DEFAULT_QUEUE="shop", CELERY_TASK_TIME_LIMIT=30):
        app = Celery("django_shop")
        app.config_from_object("django.conf:settings", namespace="CELERY")
        assert (app.conf.task_default_queue, app.conf.task_time_limit) == ("shop", 30.0)


def test_autodiscover_tasks_with_no_packages_imports_the_installed_apps_tasks(
    celery: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "orders.tasks", raising=False)
    celery.autodiscover_tasks()
    assert "orders.tasks" not in sys.modules
    celery.import_default_modules()
    assert "orders.tasks" in sys.modules
