"""Brings the database to sqlqueue's latest alembic revision, for 0004's claim function (see
``sqlqueue.contrib.django.alembic_steps``)."""

from __future__ import annotations

from django.db import migrations

from sqlqueue.contrib.django.alembic_steps import follow_alembic


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("sqlqueue", "0002_autovacuum")]

    operations = [follow_alembic("0003")]
