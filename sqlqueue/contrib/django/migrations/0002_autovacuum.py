"""Brings a database migrated by an earlier sqlqueue up to its latest alembic revision, for
0003's autovacuum settings.

Each alembic revision sqlqueue adds comes with a Django migration like this one, so that
``manage.py migrate`` applies it where ``0001_initial`` already ran. See ``0001_initial``.
"""

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
        alembic_downgrade(app.engine, "0002")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("sqlqueue", "0001_initial")]

    operations = [migrations.RunPython(upgrade, downgrade)]
