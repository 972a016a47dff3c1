"""Brings the database to sqlqueue's latest alembic revision, for 0010's periodic tasks (see
``sqlqueue.contrib.django.alembic_steps``): a table of their own, which has no Django model."""

from __future__ import annotations

from django.db import migrations

from sqlqueue.contrib.django.alembic_steps import follow_alembic


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("sqlqueue", "0008_unique_jobs")]

    operations = [follow_alembic("0009")]
