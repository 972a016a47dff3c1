"""Signature: one call of a task as data (Celery's), and the checks on its options.

A ``Signature`` is a dict, as Celery's is (``task``, ``args``, ``kwargs``, ``options``,
``subtask_type``, ``immutable``), so ``json.dumps`` stores it and ``Signature.from_dict``
(``signature(d)``) rebuilds it. Its options are those of ``apply_async`` and are checked as
``SendOptions.build`` checks a send's, when set. The kinds of workflow made of signatures
(``chain``, ``group``, ``chord``) are in ``canvas``, where Celery's users look for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, cast

from sqlqueue.exceptions import InvalidOptionError
from sqlqueue.options import check_aware, check_name
from sqlqueue.send_options import CELERY_OPTION_NAMES, SendOptions, check_celery_options
from sqlqueue.shared import get_current_app
from sqlqueue.tasks import Task, argument_lists

if TYPE_CHECKING:
    from sqlqueue.app import SQLQueue
    from sqlqueue.caller_connections import CallerConnection
    from sqlqueue.result import AsyncResult

SIGNATURE_OPTIONS = (
    *("countdown", "eta", "expires", "queue", "priority", "task_id"),
    *("link", "link_error"),
)
"""The options a signature keeps: those of ``apply_async`` but ``connection=`` (not data)."""

CALLBACK_OPTIONS = ("link", "link_error")
"""Options whose value is a list of signatures, added to by every ``set``."""

START_OPTIONS = frozenset({"countdown", "eta"})
"""One idea, the start time: giving either replaces both. Given for a whole workflow, they
apply to the jobs that start it only."""


class Signature(dict[str, Any]):
    """One call of a task as data: its name, partial arguments and send options (Celery's
    ``signature``); ``add.s(2)`` or ``signature("tasks.add", args=(2,), countdown=10)``.

    Sending it with extra arguments puts them first: ``add.s(2).delay(4)`` runs ``add(4, 2)``;
    so does a chain, giving each step the previous step's result first, unless the step is
    immutable (``add.si(2, 2)``). Options are checked when set (``InvalidOptionError``).
    """

    KINDS: ClassVar[dict[str, type[Signature]]] = {}
    """The kinds of workflow (chain, group, chord), by their ``subtask_type``."""

    kind: ClassVar[str | None] = None
    """A workflow kind's ``subtask_type``; None for a task's signature."""

    def __init_subclass__(cls, kind: str | None = None, **rest: Any) -> None:
        super().__init_subclass__(**rest)
        if kind is not None:
            cls.kind = kind
            Signature.KINDS[kind] = cls

    def __init__(
        self,
        task: str | Task[..., Any] | Mapping[str, Any],
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        subtask_type: str | None = None,
        immutable: bool = False,
        app: SQLQueue | None = None,
        **more_options: Any,
    ) -> None:
        if isinstance(task, Mapping):  # Celery's Signature(d); signature(d) rebuilds any kind
            if task.get("subtask_type") is not None:
                raise InvalidOptionError(
                    f"Signature(d) rebuilds one task's call, and this is a "
                    f"{task['subtask_type']}: rebuild it with signature(d)."
                )
            args, kwargs = task.get("args"), task.get("kwargs")
            options, immutable = task.get("options"), bool(task.get("immutable"))
            task = task["task"]
        if subtask_type is not None and type(self) is Signature:
            raise InvalidOptionError(
                f"subtask_type={subtask_type!r} is set by chain, group and chord themselves; "
                "rebuild one from its dict with signature(d)."
            )
        self._type: Task[..., Any] | None = None
        """The task itself, when the signature was made from it (``add.s()``)."""
        self._app = app
        if isinstance(task, Task):
            self._type, self._app = task, app or task.app
            task = task.name
        args, kwargs = argument_lists(args, kwargs)
        super().__init__(
            task=check_name(task, "task name"),
            args=args,
            kwargs=kwargs,
            options={},
            subtask_type=subtask_type,
            immutable=bool(immutable),
        )
        self.set(**{**(options or {}), **more_options})

    @property
    def task(self) -> str:
        """The task's name."""
        return cast(str, self["task"])

    name = task

    @property
    def args(self) -> list[Any]:
        return cast(list[Any], self["args"])

    @property
    def kwargs(self) -> dict[str, Any]:
        return cast(dict[str, Any], self["kwargs"])

    @property
    def options(self) -> dict[str, Any]:
        """Its send options; ``eta`` and ``expires`` times are kept as ISO 8601 text (JSON)."""
        return cast(dict[str, Any], self["options"])

    @property
    def subtask_type(self) -> str | None:
        """None for a task's call; ``"chain"``, ``"group"`` or ``"chord"``."""
        return cast("str | None", self["subtask_type"])

    @property
    def immutable(self) -> bool:
        """Whether it ignores what it follows: arguments given when sent, the previous
        step's result (it still waits for that step)."""
        return bool(self["immutable"])

    @property
    def id(self) -> str | None:
        """The job id it will be sent with, when chosen (``set(task_id=...)``)."""
        return cast("str | None", self.options.get("task_id"))

    @property
    def app(self) -> SQLQueue:
        """The app of its task, else the current app."""
        return self._app if self._app is not None else get_current_app()

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Add send options (those of ``apply_async``, ``link``/``link_error`` included, but
        ``connection=``), checked now; an option given None is removed. Changes this
        signature and returns it, as Celery's ``set`` does: ``clone()`` it first for a copy.
        ``link=``/``link_error=`` add to its callbacks rather than replace them.

        Raises:
            InvalidOptionError: an option unknown, malformed or out of range (nothing is set).
        """
        if options:
            self["options"] = with_options(self.options, options, self.subtask_type)
        if immutable is not None:
            self["immutable"] = bool(immutable)
        return self

    def set_immutable(self, immutable: bool) -> None:
        """Celery's ``set_immutable``: whether it ignores what it follows."""
        self["immutable"] = bool(immutable)

    def clone(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        """A copy (its parts copied too), with ``args`` put before its own, ``kwargs`` added
        to its own (both ignored when immutable), and ``options`` set on it."""
        copy = self.from_dict(self, self._app)
        copy._type = self._type
        if args or kwargs:
            copy._give(*argument_lists(args, kwargs))
        return copy.set(**options)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], app: SQLQueue | None = None) -> Signature:
        """A new signature from a signature's dict (``json.loads`` of one), of any kind,
        with its parts and callbacks rebuilt too (Celery's ``from_dict``)."""
        kind = data.get("subtask_type")
        options = {
            name: [copy_of(callback, app) for callback in value]
            if name in CALLBACK_OPTIONS and isinstance(value, list)
            else value
            for name, value in (data.get("options") or {}).items()
        }
        immutable = bool(data.get("immutable"))
        if kind is None:
            return Signature(
                data["task"],
                data.get("args"),
                data.get("kwargs"),
                options,
                immutable=immutable,
                app=app,
            )
        if kind not in Signature.KINDS:
            raise InvalidOptionError(
                f"subtask_type {kind!r} is none of sqlqueue's: {', '.join(Signature.KINDS)}, "
                "or None for a task's call."
            )
        built = Signature.KINDS[kind].from_parts(data.get("kwargs") or {}, app, options)
        built.set_immutable(immutable)
        if data.get("args"):  # a Celery chain's partial arguments, kept on itself
            built._give(*argument_lists(data.get("args"), None))
        return built

    @classmethod
    def from_parts(
        cls, parts: Mapping[str, Any], app: SQLQueue | None, options: Mapping[str, Any]
    ) -> Signature:
        """A chain, group or chord from the parts its dict keeps in ``kwargs``."""
        raise NotImplementedError(f"{cls.__name__} has no parts")

    def _give(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Put partial arguments into this fresh copy: before its own, or into the calls that
        start it (a chain's first step, a group's members, a chord's header)."""
        if not self.immutable:
            self["args"] = [*args, *self.args]
            self["kwargs"] = {**self.kwargs, **kwargs}

    def link(self, callback: Signature | Mapping[str, Any]) -> Signature:
        """Run ``callback`` with this call's result first once it succeeds (Celery's
        ``link``); returns the callback."""
        self.set(link=[callback])
        return cast(Signature, self.options["link"][-1])

    def link_error(self, errback: Signature | Mapping[str, Any]) -> Signature:
        """Run ``errback`` with the failed job's id first if this call fails (Celery's
        ``link_error``); returns the errback."""
        self.set(link_error=[errback])
        return cast(Signature, self.options["link_error"][-1])

    def on_error(self, errback: Signature | Mapping[str, Any]) -> Signature:
        """``link_error`` that returns this signature, to write ``add.s(2).on_error(...)``."""
        self.link_error(errback)
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the task's function here and now, with these arguments before its own."""
        call = self.clone(args, kwargs)
        return self.type(*call.args, **call.kwargs)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        """``apply_async(args, kwargs)``: ``add.s(2).delay(4)`` sends ``add(4, 2)``."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        connection: CallerConnection | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Send it: its jobs are written in one transaction (``connection``'s when given, as
        for ``Task.apply_async``), or run inline when ``task_always_eager`` is on.

        ``args`` go before its own arguments and ``kwargs`` are added to its own; ``options``
        (those of ``Task.apply_async``, with ``link``/``link_error``) win over its own. For a
        chain, group or chord, the options apply to every job whose own options do not say
        otherwise, but ``countdown``/``eta`` only to the jobs that start it.

        Returns the receipt of its last job: a chain's last step's, a chord's body's (a
        chain or chord that ends in a group returns the group's ``GroupResult``).

        Raises:
            InvalidOptionError, TaskArgumentsError, SerializationError: as ``apply_async``
                does, for any of its jobs; then nothing is written.
        """
        from sqlqueue.planning import send  # planning compiles these classes: it imports this

        return cast("AsyncResult", send(self, args, kwargs, options, connection))

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        throw: bool | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Run it here and now, every job in turn as workers would, and return its
        ``EagerResult`` (a group's ``GroupResult``); nothing is written. ``throw`` (default:
        ``app.conf.task_eager_propagates``) raises the first failure once all have run."""
        from sqlqueue.planning import run_inline

        return cast("AsyncResult", run_inline(self, args, kwargs, options, throw))

    # Not dict's union: ``|`` composes signatures, as in Celery.
    def __or__(self, other: Signature) -> Signature:  # type: ignore[override]
        """``a | b``: a chain of the two (``group | task`` is a chord)."""
        from sqlqueue.canvas import chain  # a chain is a signature: canvas imports this

        if not isinstance(other, Signature):
            return NotImplemented
        return chain(self, other)

    def __repr__(self) -> str:
        arguments = [*map(repr, self.args), *(f"{k}={v!r}" for k, v in self.kwargs.items())]
        return f"{'%' if self.immutable else ''}{self.task}({', '.join(arguments)})"

    # Last in the class: a later annotation naming the builtin ``type`` would read this.
    @property
    def type(self) -> Task[..., Any]:
        """The task, from the app's registry when the signature was made from its name."""
        return self._type if self._type is not None else self.app.tasks[self.task]


def copy_of(value: Mapping[str, Any], app: SQLQueue | None) -> Signature:
    """A new signature like ``value``, a signature (``clone()``) or its dict."""
    return value.clone() if isinstance(value, Signature) else Signature.from_dict(value, app)


def with_options(
    base: Mapping[str, Any], given: Mapping[str, Any], kind: str | None
) -> dict[str, Any]:
    """``base`` with the options ``given`` added (None removes one), checked as
    ``SendOptions.build`` checks a send's, for a signature of this ``subtask_type``."""
    given = dict(given)
    if "connection" in given:
        raise InvalidOptionError(
            "connection= is not kept in a signature, which is data: give it when sending, "
            "sig.apply_async(connection=...)."
        )
    if given.pop("unique_key", None) is not None:
        raise InvalidOptionError(
            "unique_key= is not supported in workflows yet (a signature, link=, "
            "link_error=, a chain, group or chord); send the job alone with "
            "apply_async(unique_key=...)."
        )
    celery = given.keys() & CELERY_OPTION_NAMES - set(CALLBACK_OPTIONS)
    if celery:  # refused, or warned of and dropped: they change nothing here
        check_celery_options({name: given.pop(name) for name in celery})
    unknown = given.keys() - set(SIGNATURE_OPTIONS)
    if unknown:
        raise InvalidOptionError(
            f"Unknown signature option {', '.join(map(repr, sorted(unknown)))}; the options "
            f"are {', '.join(SIGNATURE_OPTIONS)} (those of apply_async but connection=)."
        )
    if kind is not None and given.get("task_id") is not None:
        raise InvalidOptionError(
            f"task_id= names one job, and a {kind} has several: set it on the step it names, "
            "e.g. add.s(2, 2).set(task_id=...)."
        )
    merged = dict(base)
    if given.keys() & START_OPTIONS:
        merged.pop("countdown", None)
        merged.pop("eta", None)
    for name, value in given.items():
        if value is None:
            merged.pop(name, None)
        elif name in CALLBACK_OPTIONS:
            merged[name] = [*merged.get(name, ()), *_callbacks(value, name)]
        elif name in ("eta", "expires") and isinstance(value, datetime | str):
            merged[name] = _moment(value, name).isoformat()
        else:
            merged[name] = value
    SendOptions(**send_values(merged))  # refuses a malformed option or combination
    return merged


def send_values(options: Mapping[str, Any]) -> dict[str, Any]:
    """A signature's options as ``SendOptions`` takes them: without its callbacks, and its
    times as datetimes."""
    values = {name: value for name, value in options.items() if name not in CALLBACK_OPTIONS}
    for name in ("eta", "expires"):
        if isinstance(values.get(name), str):
            values[name] = datetime.fromisoformat(values[name])
    return values


def _moment(value: datetime | str, name: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidOptionError(
                f"{name}= takes an aware datetime, or its ISO 8601 text, not {value!r}."
            ) from None
    return check_aware(value, name)


def _callbacks(value: Any, name: str) -> list[Signature]:
    """What ``link=``/``link_error=`` take: a signature, a signature's dict, or a list of them."""
    items = value if isinstance(value, list | tuple) else [value]
    return [signature_of(item, f"{name}=") for item in items]


def signature_of(value: Any, what: str) -> Signature:
    """A signature as given, or rebuilt from its dict; refused, naming ``what`` took it."""
    if isinstance(value, Signature):
        return value
    if isinstance(value, Mapping):
        return Signature.from_dict(value)
    raise InvalidOptionError(
        f"{what} takes signatures, e.g. add.s(16), or their dicts, not {value!r}."
    )
