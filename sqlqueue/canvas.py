"""Celery's canvas: chains, groups and chords of signatures, and ``signature()``.

    from sqlqueue import chain, chord, group, signature

    add.s(2, 2) | add.s(4) | add.s(8)              # a chain: each step gets the previous result first
    group(add.s(i, i) for i in range(10))          # a group: its jobs run side by side
    chord(group(...), tsum.s())                    # a chord: the body gets the list of their results

Each is a ``Signature`` (``signatures``) that keeps its parts in ``kwargs``, so a workflow is
JSON as a call is. Sending one (``apply_async``) compiles it into a ``WorkflowPlan``
(``planning``), which the store writes in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlqueue.signatures import Signature, copy_of, signature_of

if TYPE_CHECKING:
    from sqlqueue.app import SQLQueue
    from sqlqueue.caller_connections import CallerConnection
    from sqlqueue.group_result import GroupResult
    from sqlqueue.result import AsyncResult

__all__ = ["Signature", "chain", "chord", "group", "maybe_signature", "signature", "subtask"]


class _Signatures(Signature):
    """A chain or a group: the signatures it is made of, kept in its ``kwargs``, those of
    its own kind without options of their own flattened into it."""

    def __init__(self, *tasks: Any, app: SQLQueue | None = None, **options: Any) -> None:
        kind = cast(str, self.kind)
        parts: list[Signature] = []
        for part in _parts(tasks, kind):
            if isinstance(part, type(self)) and not part.options and not part.immutable:
                parts.extend(part.tasks)
            else:
                parts.append(part)
        super().__init__(
            f"sqlqueue.{kind}",
            kwargs={"tasks": parts},
            subtask_type=kind,
            app=app or _app_of(parts),
            **options,
        )

    @property
    def tasks(self) -> list[Signature]:
        return cast(list[Signature], self.kwargs["tasks"])

    @classmethod
    def from_parts(
        cls, parts: Mapping[str, Any], app: SQLQueue | None, options: Mapping[str, Any]
    ) -> Signature:
        return cls(*[copy_of(part, app) for part in parts.get("tasks") or ()], app=app, **options)


class chain(_Signatures, kind="chain"):  # lower case, as Celery's chain, group and chord
    """Steps run one after the other, each given the previous step's result before its own
    arguments: ``chain(add.s(2, 2), add.s(4))`` or ``add.s(2, 2) | add.s(4)``. A step may be
    a group (the next step gets the list of its results) or a chord; nested chains without
    options of their own are flattened."""

    def _give(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        if not self.immutable and self.tasks:
            self.tasks[0]._give(args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> AsyncResult:
        """Send the chain, as Celery's call of a chain does: ``apply_async(args, kwargs)``."""
        return self.apply_async(args, kwargs)

    def __or__(self, other: Signature) -> Signature:  # type: ignore[override]
        if not isinstance(other, Signature):
            return NotImplemented
        steps = self.tasks
        if steps and isinstance(steps[-1], group) and not isinstance(other, group):
            # As Celery: the group the chain ends with becomes a chord's header.
            upgraded = chord(steps[-1], other, app=self._app)
            return chain(*steps[:-1], upgraded, app=self._app, **self.options)
        return chain(self, other, app=self._app)

    def __repr__(self) -> str:
        return " | ".join(map(repr, self.tasks)) if self.tasks else "chain()"


class group(_Signatures, kind="group"):
    """Calls run side by side: ``group(add.s(i, i) for i in range(10))``; its result is the
    list of theirs, in the group's order. Nested groups without options of their own are
    flattened; a group may be empty."""

    def _give(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        if not self.immutable:
            for member in self.tasks:
                member._give(args, kwargs)

    # Celery's group.apply_async returns a GroupResult, which is no AsyncResult.
    def apply_async(  # type: ignore[override]
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        connection: CallerConnection | None = None,
        **options: Any,
    ) -> GroupResult:
        """Send every member, in one transaction; returns the group's ``GroupResult``."""
        from sqlqueue.planning import send

        return cast("GroupResult", send(self, args, kwargs, options, connection))

    def apply(  # type: ignore[override]
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        throw: bool | None = None,
        **options: Any,
    ) -> GroupResult:
        from sqlqueue.planning import run_inline

        return cast("GroupResult", run_inline(self, args, kwargs, options, throw))

    def delay(self, *args: Any, **kwargs: Any) -> GroupResult:  # type: ignore[override]
        return self.apply_async(args, kwargs)

    def __call__(self, *args: Any, **options: Any) -> GroupResult:
        """Send the group, as Celery's call of a group does: ``apply_async(args, **options)``."""
        return self.apply_async(args, **options)

    def __or__(self, other: Signature) -> Signature:  # type: ignore[override]
        """``group | step``: a chord, the step its body."""
        if not isinstance(other, Signature):
            return NotImplemented
        return chord(self, other, app=self._app)

    def __repr__(self) -> str:
        return f"group([{', '.join(map(repr, self.tasks))}])"


class chord(Signature, kind="chord"):
    """A group (the header) and a body that runs once every header job has succeeded, given
    the list of their results: ``chord(header, body)``, or ``chord(header)(body)`` to send
    at once. A header job's failure fails the body with ``ChordError``; an empty header
    runs the body at once with ``[]``."""

    def __init__(
        self,
        header: Any = (),
        body: Signature | Mapping[str, Any] | None = None,
        *,
        app: SQLQueue | None = None,
        **options: Any,
    ) -> None:
        heads = header if isinstance(header, group) else group(header)
        tail = None if body is None else signature_of(body, "A chord's body")
        super().__init__(
            "sqlqueue.chord",
            kwargs={"header": heads, "body": tail},
            subtask_type="chord",
            app=app or _app_of([heads, *([tail] if tail is not None else [])]),
            **options,
        )

    @property
    def header(self) -> group:
        return cast(group, self.kwargs["header"])

    @property
    def body(self) -> Signature | None:
        return cast("Signature | None", self.kwargs["body"])

    @property
    def tasks(self) -> list[Signature]:
        """The header's calls."""
        return self.header.tasks

    @classmethod
    def from_parts(
        cls, parts: Mapping[str, Any], app: SQLQueue | None, options: Mapping[str, Any]
    ) -> Signature:
        header, body = parts.get("header"), parts.get("body")
        if not isinstance(header, Mapping):  # Celery keeps a list of calls; sqlqueue, a group
            header = group([copy_of(call, app) for call in header or ()], app=app)
        return cls(
            copy_of(header, app),
            None if body is None else copy_of(body, app),
            app=app,
            **options,
        )

    def _give(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        if not self.immutable:
            self.header._give(args, kwargs)

    def __call__(self, body: Signature | None = None, **options: Any) -> AsyncResult:
        """Send the chord, with ``body`` as its body when given: ``chord(header)(body)``."""
        sent = self if body is None else chord(self.header, body, app=self._app, **self.options)
        return sent.apply_async(**options)

    def __or__(self, other: Signature) -> Signature:  # type: ignore[override]
        if isinstance(other, Signature) and not isinstance(other, group) and self.body:
            # As Celery: the step joins the body, so the chord's result is still its body's.
            return chord(self.header, self.body | other, app=self._app, **self.options)
        return super().__or__(other)

    def __repr__(self) -> str:
        return f"chord({self.header!r}, {self.body!r})"


def signature(varies: Any, *args: Any, **kwargs: Any) -> Signature:
    """A signature, as Celery's ``signature``: from a task's name or the task
    (``signature("tasks.add", args=(2, 2), countdown=10)``, options as keywords or
    ``options=``), or rebuilt from a signature's dict (``signature(json.loads(text))``, of
    any kind); a signature given is copied."""
    if isinstance(varies, Mapping):
        return copy_of(varies, kwargs.get("app"))
    return Signature(varies, *args, **kwargs)


subtask = signature
"""Celery's older name for ``signature``."""


def maybe_signature(value: Any, app: SQLQueue | None = None) -> Any:
    """Celery's ``maybe_signature``: a dict (or a list of them) as signatures; a signature or
    None as it is. For a task that takes a signature as an argument (JSON, so a dict)."""
    if isinstance(value, list):
        return [maybe_signature(item, app) for item in value]
    if isinstance(value, Mapping) and not isinstance(value, Signature):
        return Signature.from_dict(value, app)
    return value


def _parts(given: tuple[Any, ...], what: str) -> list[Signature]:
    """A chain's or group's parts, given one by one or as one iterable (a list, a generator)."""
    if len(given) == 1 and _many(given[0]):
        given = tuple(given[0])
    return [signature_of(part, f"{what}()") for part in given]


def _many(value: Any) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, Mapping | str | bytes)


def _app_of(parts: Iterable[Signature]) -> SQLQueue | None:
    """The app of the first part that has one: a composite's, as in Celery."""
    return next((part._app for part in parts if part._app is not None), None)
