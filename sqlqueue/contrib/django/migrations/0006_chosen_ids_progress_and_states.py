"""Brings the database to sqlqueue's latest alembic revision, for 0007's text ids, progress
and REJECTED and IGNORED states (see ``sqlqueue.contrib.django.alembic_steps``); the model
state follows the table."""

from __future__ import annotations

from django.db import migrations, models

from sqlqueue.contrib.django.alembic_steps import follow_alembic


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("sqlqueue", "0005_queue_and_schedule_indexes")]

    operations = [
        follow_alembic("0006"),
        migrations.AlterField(
            model_name="job",
            name="id",
            field=models.CharField(max_length=255, primary_key=True, serialize=False),
        ),
        migrations.AddField(model_name="job", name="progress", field=models.JSONField(null=True)),
    ]
