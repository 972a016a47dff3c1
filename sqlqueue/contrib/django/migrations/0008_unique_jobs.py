"""Brings the database to sqlqueue's latest alembic revision, for 0009's unique jobs (see
``sqlqueue.contrib.django.alembic_steps``); the model state follows the table."""

from __future__ import annotations

from django.db import migrations, models

from sqlqueue.contrib.django.alembic_steps import follow_alembic


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("sqlqueue", "0007_workflows")]

    operations = [
        follow_alembic("0008"),
        migrations.AddField(
            model_name="job",
            name="unique_key",
            field=models.CharField(max_length=255, null=True),
        ),
    ]
