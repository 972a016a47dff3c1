"""Brings the database to sqlqueue's latest alembic revision, for 0008's workflows (see
``sqlqueue.contrib.django.alembic_steps``); the model state follows the table."""

from __future__ import annotations

from django.db import migrations, models

from sqlqueue.contrib.django.alembic_steps import follow_alembic


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("sqlqueue", "0006_chosen_ids_progress_and_states")]

    operations = [
        follow_alembic("0007"),
        *(
            migrations.AddField(model_name="job", name=name, field=field)
            for name, field in (
                ("workflow_id", models.CharField(max_length=255, null=True)),
                ("parent_id", models.CharField(max_length=255, null=True)),
                ("group_id", models.CharField(max_length=255, null=True)),
                ("group_index", models.IntegerField(null=True)),
                ("group_members", models.JSONField(null=True)),
                ("waiting_for", models.IntegerField(null=True)),
                ("prerequisites", models.JSONField(null=True)),
                ("feed", models.CharField(max_length=16, null=True)),
                ("dependents", models.JSONField(null=True)),
                ("errbacks", models.JSONField(null=True)),
            )
        ),
    ]
