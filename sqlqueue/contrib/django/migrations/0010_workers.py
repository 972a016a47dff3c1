"""Brings the database to sqlqueue's latest alembic revision, for 0011's table of workers
and index of outcomes (see ``sqlqueue.contrib.django.alembic_steps``). No model follows the
workers' table: it is read with ``sqlqueue status`` and ``sqlqueue workers``."""

from __future__ import annotations

from django.db import migrations

from sqlqueue.contrib.django.alembic_steps import follow_alembic


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("sqlqueue", "0009_schedules")]

    operations = [follow_alembic("0010")]
