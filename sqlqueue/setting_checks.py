"""Reading and checking settings: which setting a key means, whether its value is usable,
and one warning for Celery's settings that have no effect here.

A key is read as Celery reads it: a lower-case name is a setting; an upper-case key is
Celery's old name when it has one (``CELERY_ALWAYS_EAGER``), and otherwise belongs to the
web framework whose settings were passed whole, so it is skipped. Under a namespace
(``config_from_object(..., namespace="CELERY")``) only keys with its prefix are read, as the
lower-case name after it. Nothing is set unless every key and value passes.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from sqlqueue.celery_names import (
    CELERY_SETTINGS,
    DATABASE_URL_SETTINGS,
    IRREGULAR_OLD_NAMES,
    JSON_NAMES,
    JSON_ONLY,
    NOT_APPLIED,
    OLD_PREFIXES,
    new_name,
    not_applied_reason,
)
from sqlqueue.exceptions import CeleryCompatibilityWarning, ConfigurationError, InvalidOptionError
from sqlqueue.options import check_limit, check_listen_url, check_name, check_priority
from sqlqueue.periodic import check_beat_schedule
from sqlqueue.routes import Routes

if TYPE_CHECKING:
    from sqlqueue.conf import Settings

DATABASE_BACKENDS = frozenset({"postgresql", "postgres", "sqlite", "mysql", "mariadb"})
"""SQLAlchemy backend names that make a URL the queue's database rather than a broker's."""

CELERY_URL_PREFIXES = ("db+", "sqla+")
"""What Celery puts before a SQLAlchemy URL: ``db+`` for its database result backend,
``sqla+`` for kombu's SQLAlchemy transport; the URL after it is the database's."""

SETTINGS_WITHOUT_DATABASE = (
    "SQLQueue takes its database as SQLQueue(url) or SQLQueue(engine=...); "
    "sqlqueue.Celery also reads it from this setting"
)


def database_url(value: Any) -> str | None:
    """The SQLAlchemy URL in a Celery ``broker``/``backend`` value, or None when the value is
    not a database's URL (``redis://``, ``amqp://``, ``rpc://``, ``django-db``)."""
    if not isinstance(value, str):
        return None
    url = value
    for prefix in CELERY_URL_PREFIXES:
        url = url.removeprefix(prefix)
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        return None
    return url if backend in DATABASE_BACKENDS else None


Where = tuple[str, int]
"""A file and line a warning names: where settings read later were given."""


def apply_settings(
    conf: Settings,
    given: Mapping[str, Any],
    namespace: str | None = None,
    stacklevel: int = 4,
    where: Where | None = None,
) -> None:
    """Check every key and value of ``given``, then set them on ``conf``; warn once about the
    Celery settings among them that have no effect here, naming the caller ``stacklevel``
    frames up, or the line ``where`` the settings were given."""
    names = {field.name for field in fields(conf)}
    changes: dict[str, Any] = {}
    ignored: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    for key, value in given.items():
        name = setting_name(key, names, namespace)
        if name is None:
            continue
        reason = _not_applied(name, value, names)
        if name in names and reason is None:
            changes[name] = checked_value(name, value)
        else:
            ignored[name] = value
            if reason:
                reasons[name] = reason
    if "task_routes" in changes:
        routes = Routes.from_setting(changes["task_routes"])
    for name, value in changes.items():
        object.__setattr__(conf, name, value)
    if "task_routes" in changes:
        conf.__dict__["_routes"] = routes
    conf.__dict__.setdefault("_ignored", {}).update(ignored)
    if not reasons:
        return
    message = (
        "These Celery settings have no effect in sqlqueue: "
        + "; ".join(f"{name} ({reason})" for name, reason in reasons.items())
        + "."
    )
    if where is None:
        warnings.warn(message, CeleryCompatibilityWarning, stacklevel=stacklevel)
    else:
        warnings.warn_explicit(message, CeleryCompatibilityWarning, *where)


def setting_name(key: Any, names: set[str], namespace: str | None) -> str | None:
    """The setting ``key`` means, or None for a key that is not sqlqueue's or Celery's to
    read (a web framework's own upper-case setting, a key outside the namespace).

    Raises:
        ConfigurationError: ``key`` looks like a setting but is none (a typo), with the
            nearest name.
    """
    if not isinstance(key, str):
        raise ConfigurationError(f"Setting names are strings, not {key!r}.")
    known = names | CELERY_SETTINGS
    if namespace:
        prefix = f"{namespace}_"
        if not key.startswith(prefix):
            return None
        name = key[len(prefix) :].lower()
        if name not in known:
            old = new_name(key) if namespace == "CELERY" else None
            nearest = prefix + (old or _nearest(name, known) or "").upper()
            raise ConfigurationError(
                f"{key!r} is read as {name!r} under namespace {namespace!r}, which is not a "
                f"setting of sqlqueue or Celery; did you mean {nearest!r}? See the Settings "
                "table in docs/celery.md."
            )
        return name
    if key == key.lower():
        if key in known:
            return key
        raise ConfigurationError(
            f"{key!r} is not a setting of sqlqueue or Celery; "
            f"{_did_you_mean(_nearest(key, known))}See the Settings table in docs/celery.md."
        )
    old = new_name(key)
    if old is None and key.startswith(OLD_PREFIXES):
        candidates = set(IRREGULAR_OLD_NAMES) | {
            f"{prefix}{n.removeprefix(strip).upper()}"
            for n in CELERY_SETTINGS
            for prefix, strip in (("CELERY_", "task_"), ("CELERYD_", "worker_"), ("", ""))
        }
        candidates = {c for c in candidates if new_name(c) is not None}
        raise ConfigurationError(
            f"{key!r} is not one of Celery's setting names; "
            f"{_did_you_mean(_nearest(key, candidates))}"
            "Celery's new names are lower case (task_always_eager)."
        )
    return old


def _did_you_mean(nearest: str | None) -> str:
    return f"did you mean {nearest!r}? " if nearest else ""


def _nearest(name: str, candidates: set[str]) -> str | None:
    found = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def _not_applied(name: str, value: Any, names: set[str]) -> str | None:
    """Why setting ``name`` to ``value`` has no effect here ("" when it is a no-op that needs
    no warning, such as a JSON serializer); None when it does."""
    if name in JSON_ONLY:
        _check_json(name, value)
        return ""
    if name in DATABASE_URL_SETTINGS:
        if name not in names:
            return SETTINGS_WITHOUT_DATABASE
        return NOT_APPLIED[name] if value is not None and database_url(value) is None else None
    if name in names:
        return None
    return not_applied_reason(name)


def _check_json(name: str, value: Any) -> None:
    values = [value] if isinstance(value, str) else list(value or ())
    refused = [v for v in values if v not in JSON_NAMES]
    if refused:
        raise ConfigurationError(
            f"{name}={value!r}: sqlqueue stores arguments and results as JSON only, never "
            "pickle (which runs code chosen by whoever can write a job) or yaml/msgpack; "
            f"set {name} to 'json' or leave it out, and pass JSON-serialisable values."
        )


def checked_value(name: str, value: Any) -> Any:
    """``value`` as setting ``name`` stores it, or ConfigurationError saying what it takes."""
    try:
        return _CHECKS.get(name, _as_given)(value)
    except InvalidOptionError as exc:
        raise ConfigurationError(f"app.conf.{name}: {exc}") from exc


def missing_setting(conf: Settings, name: str) -> AttributeError:
    """The error for reading ``app.conf.<name>`` where no such setting is set."""
    reason = not_applied_reason(name)
    if reason is not None:
        return AttributeError(
            f"app.conf.{name} is one of Celery's settings with no effect in sqlqueue "
            f"({reason}); it reads back only once set."
        )
    nearest = _nearest(name, {field.name for field in fields(conf)} | CELERY_SETTINGS)
    hint = _did_you_mean(nearest) or NOT_A_MAPPING
    return AttributeError(f"app.conf has no setting {name!r}; {hint}".strip())


NOT_A_MAPPING = (
    "app.conf is not a mapping, as Celery's is: read a setting as an attribute "
    "(app.conf.task_routes, or getattr(app.conf, name, default)), set several with "
    "app.conf.update(...)."
)
"""Said when ``app.conf`` is used as Celery's mapping (``conf.get``, ``conf[name]``)."""


def _as_given(value: Any) -> Any:
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidOptionError(f"give True or False, not {value!r}.")
    return value


def _optional_priority(value: Any) -> int | None:
    return None if value is None else check_priority(value)


def _optional_count(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOptionError(f"give a whole number of 1 or more, or None, not {value!r}.")
    return value


def _result_expires(value: Any) -> float | None:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if value is None or value == 0:
        return None  # Celery's "never expire"
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidOptionError(
            f"give seconds (a number or a timedelta), or None to keep results, not {value!r}."
        )
    return float(value)


def _timezone(value: Any) -> str:
    if value is None or value == "UTC":
        return "UTC"  # the default, valid even where the system has no tz database
    name = getattr(value, "key", value)  # a ZoneInfo gives its name
    if not isinstance(name, str):
        raise InvalidOptionError(f"give a zone name such as 'Europe/Paris', not {value!r}.")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidOptionError(
            f"{name!r} is not a time zone known to zoneinfo; give an IANA name such as "
            "'Europe/Paris' (on a system without tz data: pip install tzdata)."
        ) from None
    return name


def _modules(value: Any) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, Sequence) or not all(isinstance(v, str) for v in values):
        raise InvalidOptionError(f"give module names, such as ['proj.tasks'], not {value!r}.")
    return tuple(values)


def _optional_url(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidOptionError(f"give a URL, not {value!r}.")
    return database_url(value) if value is not None else None


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "task_always_eager": _bool,
    "task_eager_propagates": _bool,
    "task_ignore_result": _bool,
    "task_default_queue": lambda value: check_name(value, "queue name"),
    "task_default_priority": _optional_priority,
    "task_time_limit": lambda value: check_limit(value, "task_time_limit"),
    "task_soft_time_limit": lambda value: check_limit(value, "task_soft_time_limit"),
    "result_expires": _result_expires,
    "worker_concurrency": _optional_count,
    "worker_max_tasks_per_child": _optional_count,
    "timezone": _timezone,
    "beat_schedule": check_beat_schedule,
    "imports": _modules,
    "include": _modules,
    "listen_url": lambda value: None if value is None else check_listen_url(value),
    "broker_url": _optional_url,
    "result_backend": _optional_url,
}
"""How each setting's value is checked (and normalised); a setting not listed is stored as
given (task_routes is checked by compiling it, in ``apply_settings``)."""
