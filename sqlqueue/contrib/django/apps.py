"""The Django app config of sqlqueue."""

from __future__ import annotations

from django.apps import AppConfig


class SQLQueueConfig(AppConfig):
    name = "sqlqueue.contrib.django"
    label = "sqlqueue"
    verbose_name = "Task queue"
    default_auto_field = "django.db.models.AutoField"
