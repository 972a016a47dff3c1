"""Brings the database to sqlqueue's latest alembic revision, for 0013's MySQL and MariaDB
forms of the table (see ``sqlqueue.contrib.django.alembic_steps``); nothing changes on
PostgreSQL or SQLite, and the model state stays as it is (the generated columns are MySQL's
own, never read by the model)."""

from __future__ import annotations

from django.db import migrations

from sqlqueue.contrib.django.alembic_steps import follow_alembic


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("sqlqueue", "0011_limits")]

    operations = [follow_alembic("0012")]
