"""Finding an app from a ``module[:attribute]`` string, as ``sqlqueue worker -A`` does."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from sqlqueue.app import SQLQueue
from sqlqueue.exceptions import ConfigurationError


class AppNotFoundError(ConfigurationError):
    """The ``-A`` module could not be imported, or holds no app."""


def load_app(spec: str) -> SQLQueue:
    """Import ``module[:attribute]`` with the current directory on the path, like ``celery -A``.

    Without an attribute, as Celery finds its app: the module's ``app``, else its ``celery``,
    else its only app; for a package without one, the same in its ``celery`` module
    (``-A proj`` finds the app of ``proj/celery.py``). ``module.attribute`` works too.
    """
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        parent, _, name = module_name.rpartition(".")
        if attribute or exc.name != module_name or not parent:
            raise _not_imported(module_name, exc) from exc
        module, attribute = _import(parent), name
    except ImportError as exc:
        raise _not_imported(module_name, exc) from exc
    app = getattr(module, attribute, None) if attribute else _app_in(module)
    if app is None and not attribute and hasattr(module, "__path__"):
        try:
            app = _app_in(importlib.import_module(f"{module_name}.celery"))
        except ModuleNotFoundError as exc:
            if exc.name != f"{module_name}.celery":
                raise _not_imported(f"{module_name}.celery", exc) from exc
    if not isinstance(app, SQLQueue) and spec.endswith(".py"):
        raise AppNotFoundError(
            f"No SQLQueue app found in {spec!r}: -A takes a module's name, not its file's; "
            f"give -A {spec.removesuffix('.py')}."
        )
    if not isinstance(app, SQLQueue):
        raise AppNotFoundError(
            f"No SQLQueue app found in {spec!r}; name it with -A {module_name}:<attribute>."
        )
    return app


def _import(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise _not_imported(module_name, exc) from exc


def _not_imported(module_name: str, exc: ImportError) -> AppNotFoundError:
    return AppNotFoundError(
        f"Cannot import {module_name!r} for -A: {exc}. Run the command from the directory "
        "that holds the module, or give its dotted path."
    )


def _app_in(module: ModuleType) -> SQLQueue | None:
    for name in ("app", "celery"):
        found = getattr(module, name, None)
        if isinstance(found, SQLQueue):
            return found
    apps = [value for value in vars(module).values() if isinstance(value, SQLQueue)]
    return apps[0] if len(apps) == 1 else None
