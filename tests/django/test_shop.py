"""sqlqueue inside a Django project (the example shop), with pytest-django."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest
import sqlalchemy as sa
from conftest import run_manage
from django.db import connection, transaction
from django.test import Client
from orders.models import Order
from orders.tasks import send_receipt
from proxy import CuttableProxy

from sqlqueue import JobStatus, Worker, WorkerOptions, chain
from sqlqueue.contrib.django import app
from sqlqueue.contrib.django.models import Job
from sqlqueue.exceptions import ConfigurationError
from sqlqueue.migrate import upgrade

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def empty_queue() -> None:
    # Django's flush between tests empties only the tables of managed models.
    with app.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM sqlqueue_jobs"))


def committed_jobs() -> int:
    """Jobs a worker could see now: read through sqlqueue's own engine, not Django's connection."""
    with app.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM sqlqueue_jobs")).scalar_one())


def test_manage_py_migrate_created_the_queue_through_the_alembic_migrations() -> None:
    tables = set(sa.inspect(app.engine).get_table_names())
    assert {"sqlqueue_jobs", "sqlqueue_alembic_version"} <= tables


def test_delay_inside_atomic_is_invisible_until_commit_and_gone_on_rollback() -> None:
    with transaction.atomic():
        order = Order.objects.create(email="a@example.com", total=Decimal("5.00"))
        send_receipt.delay(order.pk)
        assert committed_jobs() == 0
        transaction.set_rollback(True)

    assert committed_jobs() == 0
    assert not Order.objects.exists()


def test_delay_inside_atomic_commits_with_the_order() -> None:
    with transaction.atomic():
        order = Order.objects.create(email="b@example.com", total=Decimal("7.00"))
        result = send_receipt.delay(order.pk)

    assert committed_jobs() == 1
    assert result.status == "PENDING"


def test_a_chain_inside_atomic_is_written_with_the_order_or_not_at_all() -> None:
    for keep in (False, True):
        with transaction.atomic():
            order = Order.objects.create(email="w@example.com", total=Decimal("3.00"))
            result = chain(send_receipt.s(order.pk), send_receipt.si(order.pk)).apply_async()
            assert committed_jobs() == 0
            transaction.set_rollback(not keep)
        assert committed_jobs() == (2 if keep else 0)

    Worker(app, WorkerOptions(burst=True, poll_interval=0.05)).run()

    assert result.get(timeout=10) == f"receipt for order {order.pk} sent to w@example.com"
    assert result.parent.status == "SUCCESS"  # type: ignore[union-attr]


def test_delay_outside_atomic_commits_at_once_like_django_autocommit() -> None:
    send_receipt.delay(42)
    assert committed_jobs() == 1


def test_the_checkout_view_writes_the_order_and_its_job_or_neither(client: Client) -> None:
    placed = client.post("/orders/", {"email": "c@example.com", "total": "9.99"})
    declined = client.post(
        "/orders/", {"email": "d@example.com", "total": "1.00", "card": "declined"}
    )

    assert placed.status_code == 201
    assert declined.status_code == 402
    assert list(Order.objects.values_list("email", flat=True)) == ["c@example.com"]
    assert committed_jobs() == 1


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_the_worker_command_finds_tasks_py_and_sends_the_receipt(pool: str) -> None:
    with transaction.atomic():
        order = Order.objects.create(email="e@example.com", total=Decimal("3.00"))
        result = send_receipt.delay(order.pk)

    worker = run_manage(
        "sqlqueue_worker",
        "--burst",
        "--pool",
        pool,
        "-c",
        "2",
        database_name=connection.settings_dict["NAME"],
    )

    assert worker.returncode == 0, worker.stderr
    assert result.get(timeout=5) == f"receipt for order {order.pk} sent to e@example.com"
    order.refresh_from_db()
    assert order.receipt_sent_at is not None


def test_the_admin_filters_searches_retries_and_revokes(admin_client: Client) -> None:
    failed = app.send_task("orders.tasks.not_a_task", queue="elsewhere")
    queued = send_receipt.delay(1)
    Worker(app, WorkerOptions(burst=True, queues=["elsewhere"], poll_interval=0.05)).run()
    assert failed.status == JobStatus.FAILURE

    listing = admin_client.get("/admin/sqlqueue/job/", {"status__exact": "FAILURE"})
    found = admin_client.get("/admin/sqlqueue/job/", {"q": failed.id})
    nothing = admin_client.get("/admin/sqlqueue/job/", {"q": "not-an-id"})
    retried = admin_client.post(
        "/admin/sqlqueue/job/", {"action": "retry_jobs", "_selected_action": [failed.id]}
    )
    revoked = admin_client.post(
        "/admin/sqlqueue/job/", {"action": "revoke_jobs", "_selected_action": [queued.id]}
    )

    assert listing.status_code == 200 and failed.id in listing.content.decode()
    assert queued.id not in listing.content.decode()
    assert failed.id in found.content.decode()
    assert failed.id not in nothing.content.decode()
    assert retried.status_code == 302 and failed.status == JobStatus.PENDING
    assert revoked.status_code == 302 and queued.status == JobStatus.REVOKED
    assert Job.objects.count() == 2


@app.task
def add(x: int, y: int) -> int:
    return x + y


def test_a_job_revoked_in_the_admin_is_not_run_by_the_next_worker(admin_client: Client) -> None:
    # What a new user does: send, open the list, tick the row, choose the action, press Go.
    result = add.delay(5, 6)
    listing = admin_client.get("/admin/sqlqueue/job/").content.decode()
    assert f'name="_selected_action" value="{result.id}"' in listing

    revoked = admin_client.post(
        "/admin/sqlqueue/job/",
        {
            "action": "revoke_jobs",
            "select_across": "0",
            "index": "0",
            "_selected_action": [result.id],
        },
        follow=True,
    )
    Worker(app, WorkerOptions(burst=True, poll_interval=0.05)).run()

    assert "1 job(s) revoked." in revoked.content.decode()
    job = app.store.get_job(result.id)
    assert job is not None
    assert (job.status, job.attempts, job.started_at) == (JobStatus.REVOKED, 0, None)


def test_the_job_model_matches_the_table() -> None:
    job_id = send_receipt.delay(7).id
    job = Job.objects.get(pk=job_id)
    assert (job.task_name, job.args, job.status) == ("orders.tasks.send_receipt", [7], "PENDING")


def test_the_sqlqueue_setting_configures_the_app() -> None:
    # The shop's settings say SQLQUEUE = {"DATABASE": "default", "LEASE": 30}.
    assert app.conf.lease == 30
    assert app.alias == "default"


@pytest.fixture
def queue_schema() -> Iterator[str]:
    """DATABASES["default"]["OPTIONS"] with a search_path whose first schema holds a queue of
    its own (migrated there by a separate engine): jobs found in public are the wrong ones."""
    if connection.vendor != "postgresql":
        pytest.skip("search_path is PostgreSQL's")
    schema = "shop_queue"
    options = {"options": f"-c search_path={schema},public"}
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {schema}")
    url = sa.URL.create(
        "postgresql+psycopg",
        username=connection.settings_dict["USER"],
        host=connection.settings_dict["HOST"],
        port=int(connection.settings_dict["PORT"]),
        database=connection.settings_dict["NAME"],
    )
    engine = sa.create_engine(url, connect_args={"options": f"-c search_path={schema}"})
    upgrade(engine)
    engine.dispose()
    saved = connection.settings_dict["OPTIONS"]
    connection.settings_dict["OPTIONS"] = {**saved, **options}
    connection.close()
    yield schema
    connection.settings_dict["OPTIONS"] = saved
    connection.close()
    app.engine.dispose()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA {schema} CASCADE")


def test_options_search_path_is_the_workers_too(queue_schema: str) -> None:
    with transaction.atomic():
        order = Order.objects.create(email="s@example.com", total=Decimal("4.00"))
        result = send_receipt.delay(order.pk)

    Worker(app, WorkerOptions(burst=True, poll_interval=0.05)).run()

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT status FROM {queue_schema}.sqlqueue_jobs")
        assert cursor.fetchall() == [("SUCCESS",)]
    assert result.get(timeout=5) == f"receipt for order {order.pk} sent to s@example.com"


def test_mysql_options_are_the_queues_too() -> None:
    if connection.vendor != "mysql":
        pytest.skip("init_command is mysqlclient's")
    saved = connection.settings_dict["OPTIONS"]
    connection.settings_dict["OPTIONS"] = {**saved, "init_command": "SET @shop_marker = 42"}
    try:
        with app.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT @shop_marker").scalar() == 42
    finally:
        connection.settings_dict["OPTIONS"] = saved
        app.engine.dispose()


def prepare_threshold_of_the_queue() -> int | None:
    with app.engine.connect() as conn:
        driver = conn.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        return driver.prepare_threshold


def test_options_prepare_threshold_is_the_queues_too() -> None:
    # Behind PgBouncer in transaction mode no connection may prepare statements: Django's do
    # not by default, the queue's do unless OPTIONS says so (docs/django.md).
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are psycopg's")
    assert prepare_threshold_of_the_queue() == 5  # psycopg's default
    saved = connection.settings_dict["OPTIONS"]
    connection.settings_dict["OPTIONS"] = {**saved, "prepare_threshold": None}
    try:
        assert prepare_threshold_of_the_queue() is None
    finally:
        connection.settings_dict["OPTIONS"] = saved
        app.engine.dispose()
    assert prepare_threshold_of_the_queue() == 5


def test_a_connection_to_another_server_is_refused_even_with_the_same_database_name() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("a server's host and port are PostgreSQL's")
    # A proxy on another port: to the client, another server that has a database of that name.
    proxy = CuttableProxy(connection.settings_dict["HOST"], int(connection.settings_dict["PORT"]))
    try:
        with psycopg.connect(
            host="127.0.0.1",
            port=proxy.port,
            user=connection.settings_dict["USER"],
            dbname=connection.settings_dict["NAME"],
        ) as elsewhere:
            with pytest.raises(ConfigurationError, match="port"), app.using(elsewhere):
                send_receipt.delay(1)
    finally:
        proxy.close()
    assert committed_jobs() == 0
