"""Brings the database to sqlqueue's latest alembic revision, for 0012's rate and concurrency
limits (see ``sqlqueue.contrib.django.alembic_steps``); the model state follows the table."""

from __future__ import annotations

from django.db import migrations, models

from sqlqueue.contrib.django.alembic_steps import follow_alembic


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("sqlqueue", "0010_workers")]

    operations = [
        follow_alembic("0011"),
        migrations.AddField(
            model_name="job",
            name="limit_key",
            field=models.CharField(max_length=255, null=True),
        ),
        migrations.AddField(
            model_name="job",
            name="concurrency_limit",
            field=models.IntegerField(null=True),
        ),
        migrations.AddField(
            model_name="job",
            name="rate_interval",
            field=models.FloatField(null=True),
        ),
    ]
