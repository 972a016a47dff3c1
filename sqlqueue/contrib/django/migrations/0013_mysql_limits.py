"""Brings the database to sqlqueue's latest alembic revision, for 0014's MySQL and MariaDB
forms of the limits (see ``sqlqueue.contrib.django.alembic_steps``); nothing changes on
PostgreSQL or SQLite, and the model state stays as it is (the generated columns and the
groups' lock table are MySQL's own, never read by the model)."""

from __future__ import annotations

from django.db import migrations

from sqlqueue.contrib.django.alembic_steps import follow_alembic


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("sqlqueue", "0012_mysql")]

    operations = [follow_alembic("0013")]
