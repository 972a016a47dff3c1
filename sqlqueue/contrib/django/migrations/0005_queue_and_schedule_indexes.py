"""Brings the database to sqlqueue's latest alembic revision, for 0006's indexes and claim per
queue (see ``sqlqueue.contrib.django.alembic_steps``)."""

from __future__ import annotations

from django.db import migrations

from sqlqueue.contrib.django.alembic_steps import follow_alembic


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("sqlqueue", "0004_claim_joins_by_key")]

    operations = [follow_alembic("0005")]
