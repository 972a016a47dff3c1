"""Brings the database to sqlqueue's latest alembic revision, for 0005's claim that updates
its jobs by primary key (see ``0002_autovacuum``)."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def upgrade(apps: Any, schema_editor: Any) -> None:
    from sqlqueue.contrib.django import app
    from sqlqueue.migrate import upgrade as alembic_upgrade

    if schema_editor.connection.alias == app.alias:
        alembic_upgrade(app.engine)


def downgrade(apps: Any, schema_editor: Any) -> None:
    from sqlqueue.contrib.django import app
    from sqlqueue.migrate import downgrade as alembic_downgrade

    if schema_editor.connection.alias == app.alias:
        alembic_downgrade(app.engine, "0004")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("sqlqueue", "0003_claim_function")]

    operations = [migrations.RunPython(upgrade, downgrade)]
