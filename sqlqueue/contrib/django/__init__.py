"""sqlqueue for Django: the queue in a Django database, joined to Django's transactions.

Setup::

    # settings.py
    INSTALLED_APPS = [..., "sqlqueue.contrib.django"]
    SQLQUEUE = {"DATABASE": "default"}        # optional; "default" is the default

    # myapp/tasks.py
    from sqlqueue.contrib.django import app

    @app.task
    def send_receipt(order_id): ...

    # a view
    with transaction.atomic():
        order = Order.objects.create(...)
        send_receipt.delay(order.id)          # joins the atomic block: rollback, no job

``manage.py migrate`` creates the queue's tables (it runs sqlqueue's alembic migrations) and
``manage.py sqlqueue_worker`` runs a worker that finds every installed app's ``tasks.py``.

Caveats: the database must be PostgreSQL (with psycopg 3) or SQLite in a file (not
``:memory:``, which no worker can share: give SQLite tests a ``TEST["NAME"]`` file).
"""

from __future__ import annotations

from sqlqueue.contrib.django.queue import DjangoSQLQueue

app = DjangoSQLQueue()
"""The app of this Django project: register tasks with ``@app.task``."""

__all__ = ["DjangoSQLQueue", "app"]
