"""Compiling a signature, chain, group or chord into the jobs of one ``WorkflowPlan``.

Each part is compiled after what it follows (``After``): the jobs its first jobs wait for,
what they receive from them, and the job or group whose outcome that is.

- A task's call is one job; its ``link`` callbacks follow its result, its ``link_error``
  callbacks its failure.
- A chain compiles its steps in turn, each after the one before.
- A group compiles every member after the same thing. What follows a group waits for each
  member's result job (a chain's last, a chord's body) and receives the list of their
  results: so a group followed by a step is a chord, wherever it stands.
- A chord is its header, a group, then its body after it.

Jobs are appended after their prerequisites, so the plan is in topological order. Their
ids are drawn once the plan is complete, ascending in its order: jobs released together
(a group's) are then taken in the order the workflow lists them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlqueue.app import new_job_ids
from sqlqueue.eager import run_workflow_eagerly
from sqlqueue.exceptions import InvalidOptionError, TaskArgumentsError
from sqlqueue.group_result import GroupResult
from sqlqueue.options import check_job_id
from sqlqueue.plans import Feed, PlannedJob, WorkflowPlan
from sqlqueue.send_options import SendOptions
from sqlqueue.signatures import (
    CALLBACK_OPTIONS,
    START_OPTIONS,
    Signature,
    send_values,
    with_options,
)

if TYPE_CHECKING:
    from sqlqueue.app import SQLQueue
    from sqlqueue.caller_connections import CallerConnection
    from sqlqueue.result import AsyncResult
    from sqlqueue.tasks import Task


def send(
    sig: Signature,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    options: Mapping[str, Any],
    connection: CallerConnection | None,
) -> AsyncResult | GroupResult:
    """``sig.apply_async(args, kwargs, connection=connection, **options)``: one task's call
    with no callbacks is sent as ``Task.apply_async`` sends it; anything else as a plan."""
    if args or kwargs:
        sig = sig.clone(args, kwargs)
    own = with_options(sig.options, options, sig.subtask_type)
    app = sig.app
    if sig.subtask_type is None and not own.keys() & set(CALLBACK_OPTIONS):
        task = app.tasks.get(sig.task)
        values = send_values(own)
        if task is None:
            return app.send_task(sig.task, sig.args, sig.kwargs, connection=connection, **values)
        return task.apply_async(sig.args, sig.kwargs, connection=connection, **values)
    plan, outcome = plan_workflow(app, sig, own, connection)
    return outcome.handle(app, app.send_workflow(plan))


def run_inline(
    sig: Signature,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    options: Mapping[str, Any],
    throw: bool | None,
) -> AsyncResult | GroupResult:
    """``sig.apply(...)``: its plan run here and now, whatever ``task_always_eager`` says."""
    if args or kwargs:
        sig = sig.clone(args, kwargs)
    own = with_options(sig.options, options, sig.subtask_type)
    plan, outcome = plan_workflow(sig.app, sig, own, None)
    return outcome.handle(sig.app, run_workflow_eagerly(sig.app, plan, propagate=throw))


@dataclass(frozen=True, slots=True)
class After:
    """What the first jobs of a part of a workflow follow."""

    prerequisites: tuple[str, ...] = ()
    feed: Feed | None = None
    parent_id: str | None = None
    empty_results: bool = False
    """It follows an empty group: its jobs get that group's results, ``[]``, in their
    arguments, from no job (they still wait for what the group waited for)."""

    def ignored(self) -> After:
        """The same wait, for an immutable part, which receives nothing."""
        return After(self.prerequisites, None, self.parent_id)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a compiled part comes to: one job's result, or a group's results."""

    then: After
    """What a part that follows it follows."""
    job_id: str | None = None
    group_id: str | None = None
    member_ids: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """The id of the handle it is seen through: the job's, or the group's."""
        return self.job_id or self.group_id or ""

    def handle(
        self, app: SQLQueue, receipts: Mapping[str, AsyncResult]
    ) -> AsyncResult | GroupResult:
        """Its receipt, made of the receipts of the plan's jobs."""
        if self.job_id is not None:
            return receipts[self.job_id]
        return GroupResult(self.id, [receipts[job_id] for job_id in self.member_ids], app)


def plan_workflow(
    app: SQLQueue,
    sig: Signature,
    options: Mapping[str, Any],
    connection: CallerConnection | None = None,
) -> tuple[WorkflowPlan, Outcome]:
    """The plan of sending ``sig`` with these options (its own, merged with the send's),
    and its outcome, the handle to return; refused, with nothing written, if any of its
    jobs could not be sent."""
    planner = _Planner(app)
    outcome = planner.part(sig, After(), {}, (), (), None, own=options)
    ids = iter(new_job_ids(planner.drawn))
    final = {f"\0{n}": next(ids) for n in range(planner.drawn)}

    def rename(job_id: str) -> str:
        return final.get(job_id, job_id)

    jobs = tuple(
        PlannedJob(
            **fields,
            id=rename(job_id),
            prerequisites=tuple(map(rename, prerequisites)),
            parent_id=None if parent_id is None else rename(parent_id),
        )
        for job_id, prerequisites, parent_id, fields in planner.jobs
    )
    outcome = Outcome(
        outcome.then,
        None if outcome.job_id is None else rename(outcome.job_id),
        outcome.group_id,
        tuple(map(rename, outcome.member_ids)),
    )
    return WorkflowPlan(id=outcome.id, jobs=jobs, connection=connection), outcome


FED_PLACEHOLDERS: dict[Feed, Any] = {Feed.RESULT: None, Feed.RESULTS: [], Feed.FAILED_ID: ""}
"""Stand-ins for what a job receives, to check its call against the task's signature."""

FED_WHAT = {
    Feed.RESULT: "the result of the step before it",
    Feed.RESULTS: "the list of the group's results",
    Feed.FAILED_ID: "the failed job's id",
}


class _Planner:
    """Collects the jobs of one plan, under stand-in ids (``"\\0<n>"``, which no job id
    can be) until the plan is complete."""

    def __init__(self, app: SQLQueue) -> None:
        self.app = app
        self.jobs: list[tuple[str, tuple[str, ...], str | None, dict[str, Any]]] = []
        """Each job as its id, prerequisites, parent (stand-in ids) and other fields."""
        self.built: dict[tuple[Any, ...], SendOptions] = {}
        self.drawn = 0
        """How many stand-in ids were given out."""
        self.chosen: set[str] = set()
        """Ids chosen with ``task_id=``: one job each."""

    def part(
        self,
        sig: Signature,
        after: After,
        inherited: Mapping[str, Any],
        links: tuple[Signature, ...],
        errbacks: tuple[Signature, ...],
        member: tuple[str, int] | None,
        own: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """Compile ``sig`` after ``after``, with the options of the parts around it, the
        callbacks given to them, and ``member``: the group (and the place in it) whose result
        its result is one of."""
        own = sig.options if own is None else own
        links = (*links, *own.get("link", ()))
        errbacks = (*errbacks, *own.get("link_error", ()))
        options = _merge(inherited, {k: v for k, v in own.items() if k not in CALLBACK_OPTIONS})
        if sig.immutable:
            after = after.ignored()
        if sig.subtask_type is None:
            return self.call(sig, after, options, links, errbacks, member)
        if "task_id" in own:
            raise InvalidOptionError(f"task_id= names one job, not a {sig.subtask_type}: {sig!r}.")
        if sig.subtask_type == "chain":
            return self.chain(sig.kwargs["tasks"], after, options, links, errbacks, member)
        if sig.subtask_type == "group":
            return self.group(sig, after, options, links, errbacks, member)
        if sig.subtask_type == "chord":
            header, body = sig.kwargs["header"], sig.kwargs["body"]
            if body is None:
                raise InvalidOptionError(
                    f"{sig!r} has no body: give it one, chord(header, body), or send it with "
                    "one, chord(header)(body)."
                )
            head = self.part(header, after, options, (), (), None)
            started = _later(options) if head.member_ids else options  # chord([], body): at once
            return self.part(body, head.then, started, links, errbacks, member)
        raise InvalidOptionError(f"{sig.subtask_type!r} is no kind of signature: {sig!r}.")

    def chain(
        self,
        steps: list[Signature],
        after: After,
        options: Mapping[str, Any],
        links: tuple[Signature, ...],
        errbacks: tuple[Signature, ...],
        member: tuple[str, int] | None,
    ) -> Outcome:
        """Each step after the one before; ``link_error`` to every step, ``link`` to the last."""
        if not steps:
            raise InvalidOptionError("An empty chain has nothing to send: give it a step.")
        outcome = None
        for index, step in enumerate(steps):
            last = index == len(steps) - 1
            outcome = self.part(
                step,
                after,
                options if index == 0 else _later(options),
                links if last else (),
                errbacks,
                member if last else None,
            )
            after = outcome.then
        assert outcome is not None  # noqa: S101 - steps is not empty
        return outcome

    def group(
        self,
        sig: Signature,
        after: After,
        options: Mapping[str, Any],
        links: tuple[Signature, ...],
        errbacks: tuple[Signature, ...],
        member: tuple[str, int] | None,
    ) -> Outcome:
        """Every member after the same thing, the callbacks given to each."""
        if member is not None:
            raise InvalidOptionError(
                f"A group's member ends in a group, {sig!r}, whose result is a list, not one "
                "job's: end that member with a task (e.g. | tsum.s()), or make the inner "
                "group's members the outer group's."
            )
        group_id = str(uuid.uuid4())
        members = sig.kwargs["tasks"]
        if not members:
            then = After(after.prerequisites, None, group_id, empty_results=True)
            return Outcome(then, group_id=group_id)
        ids = []
        for index, call in enumerate(members):
            outcome = self.part(call, after, options, links, errbacks, (group_id, index))
            assert outcome.job_id is not None  # noqa: S101 - a member that is a group is refused
            ids.append(outcome.job_id)
        return Outcome(
            After(tuple(ids), Feed.RESULTS, group_id), group_id=group_id, member_ids=tuple(ids)
        )

    def call(
        self,
        sig: Signature,
        after: After,
        options: Mapping[str, Any],
        links: tuple[Signature, ...],
        errbacks: tuple[Signature, ...],
        member: tuple[str, int] | None,
    ) -> Outcome:
        """One job, then its callbacks."""
        name = sig.task
        task = self.app.tasks.get(name)
        args, kwargs = ([[]] if after.empty_results else []) + sig.args, dict(sig.kwargs)
        if task is not None:
            fed = [] if after.feed is None else [FED_PLACEHOLDERS[after.feed]]
            try:
                task.check_arguments([*fed, *args], kwargs)
            except TaskArgumentsError as exc:
                if after.feed is None:
                    raise
                raise TaskArgumentsError(
                    f"{exc} In a workflow, {sig!r} is called with {FED_WHAT[after.feed]} "
                    "before its own arguments; make it immutable (.si()) to ignore it."
                ) from exc
        values = send_values(options)
        job_id = self._id(values.pop("task_id", None))
        fields = {
            "task_name": name,
            "args": args,
            "kwargs": kwargs,
            "options": self._send_options(task, name, args, kwargs, values),
            "feed": after.feed,
            "group_id": None if member is None else member[0],
            "group_index": None if member is None else member[1],
        }
        self.jobs.append((job_id, after.prerequisites, after.parent_id, fields))
        for callback in links:
            self.part(callback, After((job_id,), Feed.RESULT, job_id), {}, (), (), None)
        for errback in errbacks:
            self.part(errback, After((job_id,), Feed.FAILED_ID, job_id), {}, (), (), None)
        return Outcome(After((job_id,), Feed.RESULT, job_id), job_id=job_id)

    def _send_options(
        self,
        task: Task[..., Any] | None,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any],
        values: dict[str, Any],
    ) -> SendOptions:
        """The job's options, built as a send's: once for each task and set of values,
        unless routes, which may read the arguments, are configured."""
        if self.app.conf.routes is not None:
            return SendOptions.build(
                self.app.conf, task, name=name, args=args, kwargs=kwargs, **values
            )
        key = (name, *sorted(values.items()))
        if key not in self.built:
            self.built[key] = SendOptions.build(
                self.app.conf, task, name=name, args=args, kwargs=kwargs, **values
            )
        return self.built[key]

    def _id(self, chosen: str | None) -> str:
        if chosen is None:
            self.drawn += 1
            return f"\0{self.drawn - 1}"
        chosen = check_job_id(chosen)
        if chosen in self.chosen:
            raise InvalidOptionError(
                f"task_id={chosen!r} is given to two jobs of this workflow; a job id names "
                "one job (clone() a signature to use it twice, without its task_id)."
            )
        self.chosen.add(chosen)
        return chosen


def _merge(inherited: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """A part's options: its own, then those of the parts around it; one start time."""
    merged = dict(inherited)
    if own.keys() & START_OPTIONS:
        merged.pop("countdown", None)
        merged.pop("eta", None)
    return merged | dict(own)


def _later(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options for a part that does not start what they were given to: no start time."""
    return {name: value for name, value in options.items() if name not in START_OPTIONS}
