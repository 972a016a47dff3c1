"""``-A sqlqueue.contrib.django.worker_app``: the Django project's app, with Django set up
and every installed app's ``tasks`` module imported. ``manage.py sqlqueue_worker`` uses it,
and so do the children of its process pool, which start as fresh interpreters.
Needs DJANGO_SETTINGS_MODULE, as any Django process does."""

from __future__ import annotations

import django
from django.utils.module_loading import autodiscover_modules

django.setup()
autodiscover_modules("tasks")

from sqlqueue.contrib.django import app  # noqa: E402 - after django.setup()

__all__ = ["app"]
