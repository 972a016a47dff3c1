"""Brings a database migrated by an earlier sqlqueue up to its latest alembic revision, for
0003's autovacuum settings (see ``sqlqueue.contrib.django.alembic_steps``)."""

from __future__ import annotations

from django.db import migrations

from sqlqueue.contrib.django.alembic_steps import follow_alembic


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("sqlqueue", "0001_initial")]

    operations = [follow_alembic("0002")]
