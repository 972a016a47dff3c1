"""``manage.py migrate`` runs sqlqueue's alembic migrations: one schema, one history.

The model state below only describes the table for the admin (the model is unmanaged).
Non-atomic, because alembic works through its own connection: on SQLite, a Django transaction
held open around it would hold the write lock alembic needs.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, models


def upgrade(apps: Any, schema_editor: Any) -> None:
    from sqlqueue.contrib.django import app
    from sqlqueue.migrate import upgrade as alembic_upgrade

    if schema_editor.connection.alias == app.alias:
        alembic_upgrade(app.engine)


def downgrade(apps: Any, schema_editor: Any) -> None:
    from sqlqueue.contrib.django import app
    from sqlqueue.migrate import downgrade as alembic_downgrade

    if schema_editor.connection.alias == app.alias:
        alembic_downgrade(app.engine, "base")


class Migration(migrations.Migration):
    atomic = False
    initial = True
    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.RunPython(upgrade, downgrade),
        migrations.CreateModel(
            name="Job",
            fields=[
                ("id", models.UUIDField(primary_key=True, serialize=False)),
                ("task_name", models.CharField(max_length=200)),
                ("queue", models.CharField(max_length=200)),
                ("priority", models.IntegerField()),
                ("args", models.JSONField()),
                ("kwargs", models.JSONField()),
                ("status", models.CharField(max_length=16)),
                ("attempts", models.IntegerField()),
                ("retries", models.IntegerField()),
                ("expired_leases", models.IntegerField()),
                ("scheduled_at", models.DateTimeField()),
                ("expires_at", models.DateTimeField(null=True)),
                ("created_at", models.DateTimeField()),
                ("started_at", models.DateTimeField(null=True)),
                ("finished_at", models.DateTimeField(null=True)),
                ("lease_expires_at", models.DateTimeField(null=True)),
                ("worker_id", models.CharField(max_length=255, null=True)),
                ("result", models.JSONField(null=True)),
                ("error_type", models.CharField(max_length=255, null=True)),
                ("error_message", models.TextField(null=True)),
                ("traceback", models.TextField(null=True)),
            ],
            options={"db_table": "sqlqueue_jobs", "managed": False, "ordering": ["-created_at"]},
        ),
    ]
