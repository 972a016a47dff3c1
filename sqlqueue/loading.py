"""Finding an app from a ``module[:attribute]`` string, as ``sqlqueue worker -A`` does."""

from __future__ import annotations

import importlib
import os
import sys

from sqlqueue.app import SQLQueue
from sqlqueue.exceptions import ConfigurationError


class AppNotFoundError(ConfigurationError):
    """The ``-A`` module could not be imported, or holds no app."""


def load_app(spec: str) -> SQLQueue:
    """Import ``module[:attribute]`` with the current directory on the path, like ``celery -A``;
    without an attribute, the module's ``app``, else its only SQLQueue."""
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AppNotFoundError(
            f"Cannot import {module_name!r} for -A: {exc}. Run the command from the directory "
            "that holds the module, or give its dotted path."
        ) from exc
    if attribute:
        app = getattr(module, attribute, None)
    else:
        app = getattr(module, "app", None)
        if not isinstance(app, SQLQueue):
            apps = [value for value in vars(module).values() if isinstance(value, SQLQueue)]
            app = apps[0] if len(apps) == 1 else None
    if not isinstance(app, SQLQueue):
        raise AppNotFoundError(
            f"No SQLQueue app found in {spec!r}; name it with -A {module_name}:<attribute>."
        )
    return app
