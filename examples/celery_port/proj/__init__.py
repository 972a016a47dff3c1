"""A small Celery project in the usual layout, moved to sqlqueue (see ../README.md)."""

from proj.celery import app as celery_app

__all__ = ("celery_app",)
