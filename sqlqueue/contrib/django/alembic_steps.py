"""The one operation of every Django migration that follows an alembic revision of sqlqueue.

Each alembic revision sqlqueue adds comes with a Django migration, so that ``manage.py
migrate`` applies it where ``0001_initial`` already ran (see ``0001_initial``).
"""

from __future__ import annotations

from typing import Any

from django.db import migrations


def follow_alembic(previous_revision: str) -> migrations.RunPython:
    """Bring the app's database to sqlqueue's latest alembic revision; undone, take it back
    to ``previous_revision``. Only on the database alias the queue lives in."""

    def upgrade(apps: Any, schema_editor: Any) -> None:
        from sqlqueue.contrib.django import app
        from sqlqueue.migrate import upgrade as alembic_upgrade

        if schema_editor.connection.alias == app.alias:
            alembic_upgrade(app.engine)

    def downgrade(apps: Any, schema_editor: Any) -> None:
        from sqlqueue.contrib.django import app
        from sqlqueue.migrate import downgrade as alembic_downgrade

        if schema_editor.connection.alias == app.alias:
            alembic_downgrade(app.engine, previous_revision)

    return migrations.RunPython(upgrade, downgrade)
