"""The app, laid out as in Celery's "First steps with Django/Celery": only the import and the
URL differ from the Celery original."""

import os

from sqlqueue import Celery  # was: from celery import Celery

app = Celery(
    "proj",
    # was: broker="amqp://localhost", backend="rpc://"
    broker=os.environ.get("PROJ_DATABASE_URL", "sqlite:///proj.db"),
    include=["proj.billing.tasks", "proj.emails.tasks"],
)
app.config_from_object("proj.celeryconfig")
