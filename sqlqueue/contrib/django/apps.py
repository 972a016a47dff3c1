"""The Django app config of sqlqueue."""

from __future__ import annotations

from dataclasses import fields

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured

from sqlqueue.conf import RENAMED_SETTINGS


class SQLQueueConfig(AppConfig):
    name = "sqlqueue.contrib.django"
    label = "sqlqueue"
    verbose_name = "Task queue"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        """Apply the ``SQLQUEUE`` setting: ``DATABASE`` names the alias, every other key is
        an ``app.conf`` setting in upper case (``"LEASE": 120``)."""
        from sqlqueue.contrib.django import app
        from sqlqueue.contrib.django.queue import settings_for_queue

        current = {field.name.upper(): field.name for field in fields(app.conf)}
        # The first release's names still work; app.conf warns when they are set.
        known = current | {old.upper(): old for old in RENAMED_SETTINGS}
        for key, value in settings_for_queue().items():
            if key == "DATABASE":
                continue
            if key not in known:
                raise ImproperlyConfigured(
                    f"SQLQUEUE has an unknown key {key!r}; use DATABASE or one of {sorted(current)}."
                )
            setattr(app.conf, known[key], value)
