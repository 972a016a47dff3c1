"""Celery's ``task_routes``: which queue (and priority) a job goes to, from its task's name.

The setting takes Celery's three forms: a dict from task names, glob patterns (``"emails.*"``)
or compiled regular expressions to a route; a router function
``router(name, args, kwargs, options, task=None, **kw)`` that returns a route or None; or a
list or tuple of these, asked in order until one gives a route. A router may also be named
by its dotted path, or be an object with Celery's old ``route_for_task(task, args, kwargs)``
method. A route is a dict (``{"queue": "emails", "priority": 5}``) or a queue name; its other
keys (``exchange``, ``routing_key``) are AMQP's and have no effect here.

As in Celery, a route only fills what the send and the task left open: ``apply_async(queue=)``
wins, then the task's own ``queue``, then the route, then ``task_default_queue``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlqueue.exceptions import ConfigurationError

Router = Callable[..., Any]
"""``router(name, args, kwargs, options, task=None)``: a route, a queue name or None."""


@dataclass(frozen=True, slots=True)
class Route:
    """What a router chose: the queue and priority the job goes to (None: not chosen)."""

    queue: str | None = None
    priority: int | None = None


class MapRouter:
    """A dict router: a task name looked up exactly, then each pattern in order (as Celery's
    ``MapRoute``: a glob's ``*`` matches any characters, a pattern matches from the start)."""

    def __init__(self, routes: Mapping[Any, Any]) -> None:
        self.exact: dict[str, Any] = {}
        self.patterns: list[tuple[re.Pattern[str], Any]] = []
        for key, route in routes.items():
            if isinstance(key, re.Pattern):
                self.patterns.append((key, route))
            elif isinstance(key, str) and "*" in key:
                self.patterns.append((re.compile(re.escape(key).replace(r"\*", ".*?")), route))
            elif isinstance(key, str):
                self.exact[key] = route
            else:
                raise ConfigurationError(
                    f"task_routes keys are task names, glob patterns or re.compile() "
                    f"patterns, not {key!r}."
                )

    def __call__(self, name: str, *_args: Any, **_kwargs: Any) -> Any:
        if name in self.exact:
            return self.exact[name]
        return next((route for pattern, route in self.patterns if pattern.match(name)), None)


class Routes:
    """The compiled ``task_routes`` setting."""

    def __init__(self, routers: Sequence[Router]) -> None:
        self.routers = routers

    @classmethod
    def from_setting(cls, value: Any) -> Routes | None:
        """Compile the setting (None: no routes), refusing a form Celery does not take."""
        if value is None:
            return None
        items = value if isinstance(value, list | tuple) else [value]
        return cls([_router(item) for item in items])

    def route(
        self,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
        task: Any = None,
    ) -> Route:
        """The first route a router gives for this send; an empty Route when none does."""
        for router in self.routers:
            found = router(name, args, kwargs, options, task=task)
            if found is not None:
                return _as_route(found, name)
        return Route()


def _router(item: Any) -> Router:
    if isinstance(item, Mapping):
        return MapRouter(item)
    if isinstance(item, str):
        item = _import(item)
        if isinstance(item, type):
            item = item()  # Celery instantiates a router class named by its path
    route_for_task = getattr(item, "route_for_task", None)
    if callable(route_for_task):
        return lambda name, args, kwargs, _options, **_: route_for_task(name, args, kwargs)
    if callable(item):
        return item  # type: ignore[no-any-return]
    raise ConfigurationError(
        f"task_routes takes a dict, a router function (or its dotted path), or a list of "
        f"these, not {item!r}."
    )


def _import(path: str) -> Any:
    module_name, _, attribute = path.replace(":", ".").rpartition(".")
    try:
        module = __import__(module_name, fromlist=[attribute])
        return getattr(module, attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigurationError(
            f"Cannot import the router {path!r} of task_routes: {exc}"
        ) from exc


def _as_route(found: Any, name: str) -> Route:
    if isinstance(found, str):
        return Route(queue=found)
    if isinstance(found, Mapping):
        return Route(queue=found.get("queue"), priority=found.get("priority"))
    raise ConfigurationError(
        f"A router of task_routes gave {found!r} for task {name!r}; a route is a dict such as "
        "{'queue': 'emails'}, a queue name, or None."
    )
