"""A small shop: an order sends its receipt through sqlqueue once the order is committed.

The database comes from the environment so the same project runs on SQLite (the default, a
file next to this one), on PostgreSQL and on MySQL/MariaDB (Django's MySQL backend needs
mysqlclient: pip install mysqlclient):

    SHOP_DATABASE=postgresql SHOP_DATABASE_NAME=shop python manage.py migrate
    SHOP_DATABASE=mysql SHOP_DATABASE_NAME=shop python manage.py migrate
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "django-shop-example-not-secret"  # noqa: S105 - an example project
DEBUG = True
ALLOWED_HOSTS = ["*"]
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "sqlqueue.contrib.django",
    "orders",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "django_shop.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

if os.environ.get("SHOP_DATABASE") == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("SHOP_DATABASE_NAME", "shop"),
            "USER": os.environ.get("SHOP_DATABASE_USER", "postgres"),
            "HOST": os.environ.get("SHOP_DATABASE_HOST", "127.0.0.1"),
            "PORT": os.environ.get("SHOP_DATABASE_PORT", "5432"),
        }
    }
elif os.environ.get("SHOP_DATABASE") == "mysql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": os.environ.get("SHOP_DATABASE_NAME", "shop"),
            "USER": os.environ.get("SHOP_DATABASE_USER", "root"),
            "HOST": os.environ.get("SHOP_DATABASE_HOST", "127.0.0.1"),
            "PORT": os.environ.get("SHOP_DATABASE_PORT", "3306"),
            "OPTIONS": {"charset": "utf8mb4"},
            "TEST": {"CHARSET": "utf8mb4"},
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SHOP_DATABASE_NAME", str(BASE_DIR / "shop.sqlite3")),
            # Workers are other processes: tests need a file too, not Django's in-memory default.
            "TEST": {"NAME": str(BASE_DIR / "test_shop.sqlite3")},
        }
    }

SQLQUEUE = {"DATABASE": "default", "LEASE": 30}

# Django's task framework (django.tasks in Django 6; the django-tasks backport on 5.2),
# with sqlqueue as its backend.
TASKS = {"default": {"BACKEND": "sqlqueue.contrib.django.backend.SQLQueueBackend"}}
try:
    import django.tasks  # noqa: F401
except ImportError:
    INSTALLED_APPS.append("django_tasks")
LOGGING = {"version": 1, "disable_existing_loggers": False}
