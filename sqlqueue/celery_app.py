"""``Celery``: the app under Celery's constructor, settings and discovery, for a project that
moves over by changing its imports.

    # proj/celery.py
    from sqlqueue import Celery

    app = Celery("proj", broker="postgresql://app@db/proj", include=["proj.tasks"])
    app.config_from_object("proj.celeryconfig")      # or ("django.conf:settings", namespace="CELERY")
    app.autodiscover_tasks(["proj.billing"])

The queue's database is found on first use, not when the app is built, because the usual
``proj/celery.py`` gives it through settings read later: the first of ``$CELERY_BROKER_URL``,
``broker_url`` (``broker=``), ``$CELERY_RESULT_BACKEND`` and ``result_backend``
(``backend=``) that is a database URL; else ``$SQLQUEUE_DATABASE_URL``; else, in a Django
project (``$DJANGO_SETTINGS_MODULE`` set), Django's database as ``sqlqueue.contrib.django``
uses it (sends join ``transaction.atomic()``); else ``sqlite:///sqlqueue.db``.

Modules named by ``include`` and ``imports``, and the task modules ``autodiscover_tasks``
finds, are imported where Celery imports them: when a worker starts (and in each of its
process-pool children), not when the app is built (``force=True`` imports them at once).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import cached_property
from types import FunctionType, ModuleType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import make_url

from sqlqueue import shared, tasks
from sqlqueue.app import SQLQueue
from sqlqueue.caller_connections import CallerConnection
from sqlqueue.celery_compat import APP_GAPS, Control, current_task, refuse
from sqlqueue.celery_names import CELERY_SETTINGS, OLD_PREFIXES
from sqlqueue.conf import DATABASE_URL_ENV, Settings
from sqlqueue.exceptions import CeleryCompatibilityWarning, ConfigurationError
from sqlqueue.setting_checks import Where, apply_settings, database_url
from sqlqueue.store import JobStore
from sqlqueue.tasks import Task

Packages = Iterable[str] | Callable[[], Iterable[str]] | None
"""What ``autodiscover_tasks`` takes: package names, a function that returns them (read when
the tasks are discovered), or None for a Django project's installed apps."""

REFUSED_ARGUMENTS = {
    "loader": "settings come from config_from_object() and conf.update()",
    "amqp": "there is no broker: jobs are rows in the database",
    "events": "there are no event messages: a job's state is in the database",
    "control": "there is no remote control: a worker's state is in the database",
    "log": "sqlqueue logs through the logging module; configure it as usual",
    "tasks": "register tasks with @app.task or @shared_task",
    "fixups": "in a Django project (DJANGO_SETTINGS_MODULE set) the app uses Django's "
    "database by itself",
}
"""Celery's constructor arguments that have no sqlqueue equivalent, and what to do instead."""


@dataclass(kw_only=True)
class CelerySettings(Settings):
    """``Settings``, and the Celery settings that only a ``Celery`` app reads."""

    broker_url: str | None = None
    """The queue's database URL (Celery's broker), read when the database is first used."""
    result_backend: str | None = None
    """The queue's database URL too, when given as Celery's result backend."""
    imports: tuple[str, ...] = ()
    """Modules a worker imports when it starts."""
    include: tuple[str, ...] = ()
    """Modules a worker imports when it starts, after ``imports``."""


class Celery(SQLQueue):
    """A sqlqueue app with Celery's constructor: ``Celery("proj", broker=..., backend=...,
    include=[...])``, where ``broker`` or ``backend`` is the queue's database URL.

    Args:
        main: the name of the main module (Celery's), shown in ``repr``.
        broker: the database URL (a broker-only URL such as ``redis://`` is refused).
        backend: the database URL; a result backend that is not a database (``rpc://``,
            ``redis://``) is ignored with a ``CeleryCompatibilityWarning``: results are kept
            in the queue's table.
        include: modules a worker imports when it starts.
        changes, **settings: settings, as ``conf.update`` takes them.
        config_source: read as ``config_from_object(config_source)``.
        namespace: the prefix of the keys ``config_from_object`` reads (``"CELERY"``).
        set_as_current: make this the current app (``shared_task``'s).
        task_cls: the base class of the app's tasks (``app.Task``), a ``Task`` subclass or
            its ``"module:Class"`` path, as in Flask's Celery pattern.
    """

    def __init__(
        self,
        main: str | None = None,
        loader: Any = None,
        backend: str | None = None,
        amqp: Any = None,
        events: Any = None,
        log: Any = None,
        control: Any = None,
        set_as_current: bool = True,
        tasks: Any = None,
        broker: str | None = None,
        include: Iterable[str] | None = None,
        changes: Mapping[str, Any] | None = None,
        config_source: Any = None,
        fixups: Any = None,
        task_cls: Any = None,
        autofinalize: bool = True,
        namespace: str | None = None,
        strict_typing: bool = True,
        **settings: Any,
    ) -> None:
        given = {"loader": loader, "amqp": amqp, "events": events, "log": log}
        given |= {"control": control, "tasks": tasks, "fixups": fixups}
        refused = [name for name, value in given.items() if value is not None]
        if refused:
            raise ConfigurationError(
                "Celery("
                + ", ".join(f"{name}=...: {REFUSED_ARGUMENTS[name]}" for name in refused)
                + ")."
            )
        if not (autofinalize and strict_typing):
            warnings.warn(
                "Celery(autofinalize=False, strict_typing=False) have no effect in sqlqueue: "
                "tasks are ready once their module is imported, and every call's arguments "
                "are checked against the task's signature when it is sent.",
                CeleryCompatibilityWarning,
                stacklevel=2,
            )
        if broker is not None and database_url(broker) is None:
            raise ConfigurationError(
                f"broker={_shown(broker)} is not a database URL. sqlqueue keeps the queue in "
                "a SQL database, so there is no broker: give that database's URL, e.g. "
                "Celery('proj', broker='postgresql://user@host/dbname') or "
                "broker='sqlite:///proj.db'."
            )
        if task_cls is not None:
            self.Task = _task_class(task_cls)  # before _start: shared tasks register there
        self.main = main
        self.namespace = namespace
        self._database: SQLQueue | None = None
        self._database_lock = threading.Lock()
        self._pending_config: list[tuple[Any, bool, str | None, Where]] = []
        self._config_lock = threading.RLock()  # re-entered when the settings import the app
        self._config_reading = False  # set, under the lock, while pending settings are read
        self._pending_discovery: list[tuple[Packages, str]] = []
        preconf = dict(changes or {}, **settings)
        given_here = {"broker_url": broker, "result_backend": backend, "include": include}
        preconf |= {name: value for name, value in given_here.items() if value is not None}
        conf = CelerySettings()  # checked before the app becomes current: a bad one never does
        apply_settings(conf, preconf, stacklevel=3)
        _one_database(conf.broker_url, conf.result_backend)
        self._start(set_as_current=set_as_current)
        self._conf = conf
        if config_source is not None:
            self._pending_config.append((config_source, False, namespace, _caller()))

    def _start(self, *, set_as_current: bool = True) -> None:
        super()._start(set_as_current=set_as_current)
        self._conf = CelerySettings()

    def __repr__(self) -> str:
        return f"<Celery {self.main or '__main__'} at {id(self):#x}>"

    @property
    def conf(self) -> CelerySettings:
        """The settings; those of a pending ``config_from_object`` are read on first use.

        Another thread waits until they are read; the thread reading them (a settings module
        that imports the app) sees those read so far, as in Celery."""
        if self._pending_config or self._config_reading:
            with self._config_lock:
                reading, self._config_reading = self._config_reading, True
                try:
                    while self._pending_config:
                        pending = self._pending_config.pop(0)
                        try:
                            self._read_config(*pending)
                        except BaseException:
                            self._pending_config.insert(0, pending)  # refused again next time
                            raise
                finally:
                    self._config_reading = reading
        return self._conf

    @conf.setter
    def conf(self, settings: Settings) -> None:
        # SQLQueue._start sets plain Settings; this app's _start replaces them at once.
        self._conf = settings  # type: ignore[assignment]

    @cached_property
    def control(self) -> Control:
        """Celery's remote control, for ``app.control.revoke(job_id, terminate=True)``."""
        return Control(self)

    @property
    def current_task(self) -> tasks.Task[..., Any]:
        """The task whose job runs in this thread, as Celery's ``app.current_task``."""
        return current_task

    def set_default(self) -> None:
        """Celery's ``set_default``: make this the current app (``set_current``)."""
        self.set_current()

    def now(self) -> datetime:
        """The current time in the app's ``timezone``, as Celery's ``app.now()``."""
        zone = self.conf.timezone
        return datetime.now(UTC if zone == "UTC" else ZoneInfo(zone))

    if not TYPE_CHECKING:  # a type checker keeps reporting unknown attributes

        def __getattr__(self, name):
            refuse(self, "app", name, APP_GAPS)

    def config_from_object(
        self, obj: Any, silent: bool = False, force: bool = False, namespace: str | None = None
    ) -> None:
        """Read settings from ``obj``: a module or its dotted path, ``"module:attribute"``
        (``"django.conf:settings"``), a dict or any object with settings as attributes.

        As in Celery, the settings are read when first needed (``force=True``: now), so a
        Django settings module may name itself through this app while it is loading. With
        ``namespace="CELERY"`` only keys that start with ``CELERY_`` are read, as the
        lower-case name after the prefix (``CELERY_TASK_ROUTES`` is ``task_routes``).
        ``silent=True`` ignores a module that cannot be imported.
        """
        self.namespace = namespace or self.namespace
        self._pending_config.append((obj, silent, self.namespace, _caller()))
        if force:
            self.conf  # noqa: B018 - reading it reads the pending settings

    def _read_config(self, source: Any, silent: bool, namespace: str | None, where: Where) -> None:
        if isinstance(source, str):
            try:
                source = _import_object(source)
            except ImportError:
                if silent:
                    return
                raise
        known = {field.name for field in fields(self._conf)} | CELERY_SETTINGS
        apply_settings(self._conf, _settings_in(source, known, namespace), namespace, where=where)
        _one_database(self._conf.broker_url, self._conf.result_backend)

    def autodiscover_tasks(
        self, packages: Packages = None, related_name: str = "tasks", force: bool = False
    ) -> None:
        """Import ``<package>.<related_name>`` for each package, as Celery does: when a worker
        starts, or at once with ``force=True``. A package without that module is skipped; a
        task module that fails to import raises its own error. With no packages, in a Django
        project: each installed app."""
        if force:
            self._discover(packages, related_name)
        else:
            self._pending_discovery.append((packages, related_name))

    def import_default_modules(self) -> None:
        """What a worker imports before it takes jobs: Django's setup in a Django project,
        then ``imports``, ``include`` and the task modules ``autodiscover_tasks`` asked for."""
        if os.environ.get("DJANGO_SETTINGS_MODULE"):
            import django

            django.setup()
        for module in (*self.conf.imports, *self.conf.include):
            importlib.import_module(module)
        pending, self._pending_discovery = self._pending_discovery, []
        for packages, related_name in pending:
            self._discover(packages, related_name)

    def _discover(self, packages: Packages, related_name: str) -> None:
        if packages is None:
            packages = _django_apps()
        elif callable(packages):
            packages = packages()
        for package in packages:
            _import_related(package, related_name)

    @property
    def store(self) -> JobStore:
        return self._database_app().store

    def default_connection(self) -> CallerConnection | None:
        return super().default_connection() or self._database_app().default_connection()

    def around_job(self) -> AbstractContextManager[None]:
        return self._database_app().around_job()

    def _database_app(self) -> SQLQueue:
        """The app that owns the queue's database, found on first use (see the module)."""
        if self._database is None:
            with self._database_lock:
                if self._database is None:
                    self._database = self._find_database()
        return self._database

    def _find_database(self) -> SQLQueue:
        with shared.apart():  # the database's app, not one of its own for shared tasks
            return self._database_for(self.conf)

    def _database_for(self, conf: CelerySettings) -> SQLQueue:
        from_env = os.environ.get("CELERY_BROKER_URL")
        if from_env and database_url(from_env) is None:
            raise ConfigurationError(
                f"CELERY_BROKER_URL={_shown(from_env)} in the environment is not a database "
                "URL; sqlqueue keeps the queue in a SQL database: set it to that database's "
                "URL (postgresql://..., sqlite:///...) or unset it."
            )
        broker = database_url(from_env) or conf.broker_url
        backend = database_url(os.environ.get("CELERY_RESULT_BACKEND")) or conf.result_backend
        _one_database(broker, backend)
        url = broker or backend
        if url is None and not os.environ.get(DATABASE_URL_ENV):
            if os.environ.get("DJANGO_SETTINGS_MODULE"):
                from sqlqueue.contrib.django.queue import DjangoSQLQueue

                return DjangoSQLQueue()
        return SQLQueue(url)


def _caller() -> Where:
    """The user's line that called this module's caller (``config_from_object``, ``Celery``):
    its settings are read later, from anywhere, but their warnings name that line."""
    frame = sys._getframe(2)
    return frame.f_code.co_filename, frame.f_lineno


def _one_database(broker: str | None, backend: str | None) -> None:
    if broker and backend and make_url(broker) != make_url(backend):
        raise ConfigurationError(
            f"broker ({_shown(broker)}) and backend ({_shown(backend)}) name two databases; "
            "sqlqueue keeps jobs and their results in one: give the same URL to both, or "
            "only one of them."
        )


def _task_class(task_cls: Any) -> type[Task[..., Any]]:
    found = _import_object(task_cls) if isinstance(task_cls, str) else task_cls
    if not (isinstance(found, type) and issubclass(found, Task)):
        raise ConfigurationError(
            f"Celery(task_cls={task_cls!r}): give a subclass of sqlqueue.Task (or its "
            "'module:Class' path); a celery.Task subclass becomes one by changing its import."
        )
    return found


def _shown(url: str) -> str:
    try:
        return repr(make_url(url).render_as_string(hide_password=True))
    except Exception:  # not a URL SQLAlchemy can parse: shown as given, without its query
        return repr(url.split("?")[0])


def _import_object(path: str) -> Any:
    """``module``, ``module:attribute`` or ``module.attribute``, with the current directory
    on the path, as Celery's loader does."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, colon, attribute = path.partition(":")
    if colon:
        return getattr(importlib.import_module(module_name), attribute)
    try:
        return importlib.import_module(path)
    except ImportError:
        module_name, _, attribute = path.rpartition(".")
        if not module_name:
            raise
        module = importlib.import_module(module_name)
        if not hasattr(module, attribute):
            raise
        return getattr(module, attribute)


def _settings_in(source: Any, known: set[str], namespace: str | None) -> dict[str, Any]:
    """The keys and values of a settings source that may be settings. Of an object, only
    the attributes whose names could be (under the namespace's prefix; else lower case or
    one of Celery's old prefixes) are read, as Celery reads only its own: reading every
    Django setting would trigger Django's warnings about its deprecated ones. A module or
    class of settings also holds its imports and helpers (``os``, ``timedelta``, a router
    function): those whose name is not a setting's are left out, not refused as typos."""
    if isinstance(source, Mapping):
        return dict(source)
    names = [
        name
        for name in dir(source)
        if (name.startswith(f"{namespace}_") if namespace else _may_be_setting(name))
    ]
    values = {name: getattr(source, name) for name in names}
    return {name: value for name, value in values.items() if name in known or not _is_helper(value)}


def _may_be_setting(name: str) -> bool:
    return not name.startswith("_") and (name == name.lower() or name.startswith(OLD_PREFIXES))


def _is_helper(value: Any) -> bool:
    return isinstance(value, ModuleType | type | FunctionType) or inspect.isroutine(value)


def _django_apps() -> list[str]:
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return []
    from django.apps import apps

    return [config.name for config in apps.get_app_configs()]


def _import_related(package: str, related_name: str) -> None:
    """Import ``package.related_name``; nothing when the package has no such module."""
    importlib.import_module(package)  # a package that does not exist is an error
    name = f"{package}.{related_name}" if related_name else package
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            exc.add_note(f"(while autodiscover_tasks imported {name})")
            raise
    except Exception as exc:
        exc.add_note(f"(while autodiscover_tasks imported {name})")
        raise
