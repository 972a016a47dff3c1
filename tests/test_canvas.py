"""Celery's canvas: signatures as JSON, composition, the plans that compositions compile to,
the options and callbacks of each job, what is refused, and eager runs of every shape."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sqlqueue import (
    ChordError,
    GroupResult,
    InvalidOptionError,
    Signature,
    SQLQueue,
    TaskArgumentsError,
    TaskFailedError,
    UnknownTaskError,
    chain,
    chord,
    group,
    maybe_signature,
    signature,
)
from sqlqueue.exceptions import CeleryCompatibilityWarning
from sqlqueue.planning import plan_workflow
from sqlqueue.plans import Feed, PlannedJob, WorkflowPlan


@pytest.fixture
def app(tmp_path: Path) -> Iterator[SQLQueue]:
    """An app whose tasks compile and run inline; its SQLite file is never written."""
    queue = SQLQueue(f"sqlite:///{tmp_path / 'queue.db'}")
    yield queue
    queue.engine.dispose()


@pytest.fixture
def calls() -> list[Any]:
    """What ``t.record`` and ``t.on_error`` were called with, in order."""
    return []


@pytest.fixture
def tasks(app: SQLQueue, calls: list[Any]) -> Any:
    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.tsum")
    def tsum(numbers: list[int]) -> int:
        return sum(numbers)

    @app.task(name="t.record")
    def record(*args: Any, **kwargs: Any) -> list[Any]:
        calls.append([list(args), kwargs])
        return [list(args), kwargs]

    @app.task(name="t.boom")
    def boom(*args: Any) -> None:
        raise ValueError("boom")

    @app.task(name="t.on_error")
    def on_error(job_id: str, *args: Any) -> str:
        calls.append(["errback", job_id, *args])
        return job_id

    @app.task(name="t.mail", queue="mail", priority=3)
    def mail(*args: Any) -> None: ...

    class Tasks:
        pass

    found = Tasks()
    for task in (add, tsum, record, boom, on_error, mail):
        setattr(found, task.name.removeprefix("t."), task)
    return found


@pytest.fixture
def eager(app: SQLQueue) -> SQLQueue:
    app.conf.task_always_eager = True
    return app


def compile_(app: SQLQueue, sig: Signature, **options: Any) -> WorkflowPlan:
    """The plan ``sig.apply_async(**options)`` would hand to the store."""
    plan, _ = plan_workflow(app, sig, sig.clone(**options).options)
    return plan


def shape(plan: WorkflowPlan) -> list[tuple[Any, ...]]:
    """Each job as (name, args, prerequisites, feed, parent, group index), with ids replaced
    by the job's place in the plan (``#0``) or the group's name (``G0``, in order of first
    sight), so a test can spell a plan out."""
    names = {job.id: f"#{n}" for n, job in enumerate(plan.jobs)}
    groups: dict[str, str] = {}

    def name(job_id: str | None) -> str | None:
        if job_id is None:
            return None
        if job_id not in names:
            names[job_id] = groups[job_id] = f"G{len(groups)}"
        return names[job_id]

    return [
        (
            job.task_name.removeprefix("t."),
            job.args,
            tuple(name(p) for p in job.prerequisites),
            job.feed,
            name(job.parent_id),
            None if job.group_id is None else (name(job.group_id), job.group_index),
        )
        for job in plan.jobs
    ]


def by_name(plan: WorkflowPlan) -> dict[str, PlannedJob]:
    return {f"{job.task_name}{job.args}": job for job in plan.jobs}


# Signatures as data


def test_a_signature_is_celerys_dict_and_json_rebuilds_it(tasks: Any) -> None:
    sig = tasks.add.s(2).set(queue="bulk", priority=5)

    assert sig == {
        "task": "t.add",
        "args": [2],
        "kwargs": {},
        "options": {"queue": "bulk", "priority": 5},
        "subtask_type": None,
        "immutable": False,
    }
    rebuilt = signature(json.loads(json.dumps(sig)))
    assert rebuilt == sig and type(rebuilt) is Signature
    assert (rebuilt.task, rebuilt.name, rebuilt.args, rebuilt.type) == (
        "t.add",
        "t.add",
        [2],
        tasks.add,
    )
    assert repr(tasks.add.si(1, y=2)) == "%t.add(1, y=2)"


def test_every_kind_of_workflow_survives_a_json_round_trip(tasks: Any) -> None:
    eta = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    workflow = chain(
        tasks.add.s(1, 1).set(eta=eta, link_error=tasks.on_error.s()),
        group(tasks.add.s(1), tasks.add.si(2, 2).set(task_id="mine")),
        chord([tasks.record.s(x=1)], tasks.tsum.s()).set(queue="q"),
        group([]),
        chord([], tasks.tsum.s()),
    )

    text = json.dumps(workflow)
    rebuilt = signature(json.loads(text))

    assert rebuilt == workflow and json.dumps(rebuilt) == text
    assert [type(step) for step in rebuilt.tasks] == [Signature, group, chord, group, chord]
    assert workflow.tasks[0].options["eta"] == "2030-01-02T03:04:05+00:00"  # JSON, not a datetime
    assert shape(compile_(rebuilt.app, rebuilt)) == shape(compile_(workflow.app, workflow))


def test_signature_by_name_takes_options_as_keywords_or_options(tasks: Any, app: SQLQueue) -> None:
    by_keywords = signature("t.add", args=(2, 2), countdown=10)
    by_options = signature("t.add", (2, 2), options={"countdown": 10})
    by_task = tasks.add.signature((2, 2), countdown=10)

    assert by_keywords == by_options == by_task
    assert by_keywords.options == {"countdown": 10}
    assert app.signature("t.add", args=(2, 2)).app is app
    assert signature("elsewhere.task", args=[1]).task == "elsewhere.task"  # sent by name


def test_set_changes_the_signature_and_clone_copies_it(tasks: Any) -> None:
    sig = tasks.add.s(2)
    same = sig.set(queue="bulk")
    copy = sig.clone(queue="other")

    assert same is sig and sig.options == {"queue": "bulk"}
    assert copy.options == {"queue": "other"} and copy is not sig
    assert sig.set(queue=None).options == {}  # None removes an option
    assert sig.set(countdown=5).set(eta=datetime(2030, 1, 1, tzinfo=UTC)).options == {
        "eta": "2030-01-01T00:00:00+00:00"  # one start time: the later given wins
    }


def test_partial_arguments_come_first_and_immutable_signatures_ignore_them(tasks: Any) -> None:
    sig = tasks.record.s(2, b=1)

    assert sig.clone((4,), {"c": 3}) == tasks.record.s(4, 2, b=1, c=3)
    assert sig.args == [2]  # the original is unchanged
    assert tasks.record.si(2).clone((4,), {"c": 3}).args == [2]
    assert chain(tasks.record.s(1), tasks.record.s()).clone((0,)).tasks[0].args == [0, 1]
    assert [m.args for m in group(tasks.record.s(1), tasks.record.s(2)).clone((0,)).tasks] == [
        [0, 1],
        [0, 2],
    ]
    assert sig(5) == [[5, 2], {"b": 1}]  # calling it calls the function here


def test_link_and_link_error_add_to_a_signatures_callbacks(tasks: Any) -> None:
    sig = tasks.add.s(2, 2)
    callback = sig.link(tasks.add.s(16))

    assert callback == tasks.add.s(16) and callback is sig.options["link"][0]
    assert sig.on_error(tasks.on_error.s()) is sig
    sig.set(link=[tasks.tsum.s()])
    assert [c.task for c in sig.options["link"]] == ["t.add", "t.tsum"]
    assert [c.task for c in sig.options["link_error"]] == ["t.on_error"]


def test_maybe_signature_rebuilds_dicts_and_leaves_the_rest(tasks: Any) -> None:
    sig = tasks.add.s(1)

    assert maybe_signature(None) is None
    assert maybe_signature(sig) is sig
    assert maybe_signature(dict(sig)) == sig and isinstance(maybe_signature(dict(sig)), Signature)
    assert maybe_signature([dict(sig)]) == [sig]


# Composition


def test_or_makes_chains_flattened_and_a_group_followed_by_a_step_a_chord(tasks: Any) -> None:
    a, b, c = tasks.add.s(1, 1), tasks.add.s(2), tasks.add.s(3)

    assert (a | b | c) == chain(a, b, c) == chain([a, b, c]) == chain(chain(a, b), c)
    upgraded = group(a, b) | c
    assert type(upgraded) is chord and upgraded.header.tasks == [a, b] and upgraded.body == c
    in_chain = a | group(b, c) | tasks.tsum.s()
    assert [type(step) for step in in_chain.tasks] == [Signature, chord]
    assert chord([a], b) | c == chord([a], b | c)  # a step after a chord joins its body
    assert group(group(a, b), c).tasks == [a, b, c]  # nested groups are flattened
    assert group(x for x in (a, b)).tasks == [a, b]


# Plans


def test_a_chain_feeds_each_step_the_result_before_and_ends_in_its_last_job(tasks: Any) -> None:
    plan = compile_(tasks.add.app, tasks.add.s(2, 2) | tasks.add.s(4) | tasks.add.si(8, 8))

    assert shape(plan) == [
        ("add", [2, 2], (), None, None, None),
        ("add", [4], ("#0",), Feed.RESULT, "#0", None),
        ("add", [8, 8], ("#1",), None, "#1", None),  # .si(): waits, receives nothing
    ]
    assert plan.id == plan.jobs[-1].id
    assert [job.id for job in plan.jobs] == sorted(job.id for job in plan.jobs)


def test_a_group_marks_each_members_result_job_and_is_its_own_id(tasks: Any) -> None:
    plan = compile_(
        tasks.add.app,
        group(tasks.add.s(0, 0), tasks.add.s(1, 1) | tasks.add.s(2), tasks.add.s(3, 3)),
    )

    assert shape(plan) == [
        ("add", [0, 0], (), None, None, ("G0", 0)),
        ("add", [1, 1], (), None, None, None),
        ("add", [2], ("#1",), Feed.RESULT, "#1", ("G0", 1)),  # a chain counts by its last job
        ("add", [3, 3], (), None, None, ("G0", 2)),
    ]
    assert plan.id == plan.jobs[0].group_id
    uuid.UUID(plan.id)


def test_a_chord_body_waits_for_every_header_job_and_gets_their_results(tasks: Any) -> None:
    plan = compile_(tasks.add.app, chord((tasks.add.s(i, i) for i in range(3)), tasks.tsum.s()))

    assert shape(plan) == [
        ("add", [0, 0], (), None, None, ("G0", 0)),
        ("add", [1, 1], (), None, None, ("G0", 1)),
        ("add", [2, 2], (), None, None, ("G0", 2)),
        ("tsum", [], ("#0", "#1", "#2"), Feed.RESULTS, "G0", None),
    ]
    assert plan.id == plan.jobs[-1].id


def test_groups_and_chords_inside_chains_and_chains_and_chords_inside_groups(tasks: Any) -> None:
    add, tsum = tasks.add, tasks.tsum
    plan = compile_(
        add.app,
        chain(
            add.s(1, 1),
            group(add.s(1), chain(add.s(2), add.s(3))),  # each member gets the one result
            tsum.s(),  # after a group: the list of the members' results
            chord([add.s(4), add.s(5)], tsum.s()),
            add.s(6),
        ),
    )

    assert shape(plan) == [
        ("add", [1, 1], (), None, None, None),
        ("add", [1], ("#0",), Feed.RESULT, "#0", ("G0", 0)),
        ("add", [2], ("#0",), Feed.RESULT, "#0", None),
        ("add", [3], ("#2",), Feed.RESULT, "#2", ("G0", 1)),
        ("tsum", [], ("#1", "#3"), Feed.RESULTS, "G0", None),
        ("add", [4], ("#4",), Feed.RESULT, "#4", ("G1", 0)),
        ("add", [5], ("#4",), Feed.RESULT, "#4", ("G1", 1)),
        ("tsum", [], ("#5", "#6"), Feed.RESULTS, "G1", None),
        ("add", [6], ("#7",), Feed.RESULT, "#7", None),
    ]


def test_a_chord_in_a_group_counts_by_its_body(tasks: Any) -> None:
    plan = compile_(
        tasks.add.app, group(chord([tasks.add.s(1, 1)], tasks.tsum.s()), tasks.add.s(2, 2))
    )

    assert shape(plan) == [
        ("add", [1, 1], (), None, None, ("G0", 0)),
        ("tsum", [], ("#0",), Feed.RESULTS, "G0", ("G1", 0)),
        ("add", [2, 2], (), None, None, ("G1", 1)),
    ]


def test_empty_groups_have_no_jobs_and_what_follows_gets_an_empty_list(tasks: Any) -> None:
    assert compile_(tasks.add.app, group([])).jobs == ()
    assert shape(compile_(tasks.add.app, chord([], tasks.tsum.s()))) == [
        ("tsum", [[]], (), None, "G0", None),  # at once, with []
    ]
    assert shape(
        compile_(tasks.add.app, chain(tasks.add.s(1, 1), group([]), tasks.record.s()))
    ) == [
        ("add", [1, 1], (), None, None, None),
        ("record", [[]], ("#0",), None, "G0", None),  # after the step, with []
    ]


def test_link_follows_success_with_the_result_and_link_error_failure_with_the_id(
    tasks: Any,
) -> None:
    sig = tasks.add.s(2, 2).set(
        link=[tasks.add.s(16), tasks.record.si("done")], link_error=tasks.on_error.s()
    )

    plan = compile_(tasks.add.app, sig)
    assert shape(plan) == [
        ("add", [2, 2], (), None, None, None),
        ("add", [16], ("#0",), Feed.RESULT, "#0", None),
        ("record", ["done"], ("#0",), None, "#0", None),
        ("on_error", [], ("#0",), Feed.FAILED_ID, "#0", None),
    ]
    assert plan.id == plan.jobs[0].id  # the handle is the job's, as without callbacks


def test_callbacks_of_a_chain_group_and_chord_go_where_celery_sends_them(tasks: Any) -> None:
    add, on_error, record = tasks.add, tasks.on_error, tasks.record

    def followers(sig: Signature) -> dict[str, list[str]]:
        plan = compile_(add.app, sig, link=record.s(), link_error=on_error.s())
        names = {job.id: f"{job.task_name}{job.args}" for job in plan.jobs}
        followed: dict[str, list[str]] = {}
        for job in plan.jobs:
            if job.task_name in ("t.record", "t.on_error"):
                followed.setdefault(job.task_name, []).extend(names[p] for p in job.prerequisites)
        return followed

    # A chain: link_error to every step, link to its last.
    assert followers(chain(add.s(1, 1), add.s(2))) == {
        "t.on_error": ["t.add[1, 1]", "t.add[2]"],
        "t.record": ["t.add[2]"],
    }
    # A group: both to each member.
    assert followers(group(add.s(1, 1), add.s(2, 2))) == {
        "t.record": ["t.add[1, 1]", "t.add[2, 2]"],
        "t.on_error": ["t.add[1, 1]", "t.add[2, 2]"],
    }
    # A chord: both to its body.
    assert followers(chord([add.s(1, 1)], add.s(2))) == {
        "t.record": ["t.add[2]"],
        "t.on_error": ["t.add[2]"],
    }


def test_a_steps_options_win_over_the_workflows_which_win_over_the_tasks(tasks: Any) -> None:
    add, mail = tasks.add, tasks.mail
    workflow = chain(add.s(1, 1), mail.s().set(priority=9), group(mail.s(), add.s(2)))
    plan = compile_(add.app, workflow, queue="bulk", countdown=30, expires=3600)

    options = [
        (job.options.queue, job.options.priority, job.options.countdown) for job in plan.jobs
    ]
    assert options == [
        ("bulk", 0, 30.0),  # the workflow's countdown: for the job that starts it only
        ("bulk", 9, None),  # its own priority; the workflow's queue over the task's "mail"
        ("bulk", 3, None),  # the task's priority, where none other is given
        ("bulk", 0, None),
    ]
    assert {job.options.expires for job in plan.jobs} == {3600.0}
    own = compile_(add.app, chain(add.s(1, 1), add.s(2).set(countdown=5, queue="q")), queue="bulk")
    assert [(job.options.queue, job.options.countdown) for job in own.jobs] == [
        ("bulk", None),
        ("q", 5.0),  # counted from its release
    ]


def test_start_options_reach_every_job_that_starts_the_workflow(tasks: Any) -> None:
    plan = compile_(
        tasks.add.app, chord([tasks.add.s(1, 1), tasks.add.s(2, 2)], tasks.tsum.s()), countdown=9
    )
    assert [job.options.countdown for job in plan.jobs] == [9.0, 9.0, None]
    at_once = compile_(tasks.add.app, chord([], tasks.tsum.s()), countdown=9)
    assert [job.options.countdown for job in at_once.jobs] == [9.0]


def test_routes_are_asked_with_each_jobs_own_arguments(tasks: Any, app: SQLQueue) -> None:
    def route(name: str, args: Any, kwargs: Any, options: Any, **rest: Any) -> dict[str, Any]:
        return {"queue": f"q{args[0]}"} if name == "t.add" else {}

    app.conf.task_routes = route
    plan = compile_(app, group(tasks.add.s(1, 1), tasks.add.s(2, 2), tasks.tsum.s([])))

    assert [job.options.queue for job in plan.jobs] == ["q1", "q2", "default"]


def test_a_steps_task_id_is_its_job_id_and_the_connection_is_the_plans(
    tasks: Any, app: SQLQueue
) -> None:
    workflow = tasks.add.s(1, 1).set(task_id="first") | tasks.add.s(2)
    with app.engine.connect() as connection:
        plan, _ = plan_workflow(app, workflow, workflow.options, connection)
        assert plan.connection is connection
    assert plan.jobs[0].id == "first" and plan.jobs[1].prerequisites == ("first",)
    assert plan.jobs[0].options.task_id is None and plan.jobs[0].options.connection is None


# Refusals


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: t.add.s(1).set(priority=1000), "priority 1000 is out of range"),
        (lambda t: t.add.s(1).set(qeue="x"), "Unknown signature option 'qeue'"),
        (lambda t: t.add.s(1).set(countdown=-1), "zero or more seconds"),
        (lambda t: t.add.s(1).set(eta=datetime(2030, 1, 1)), "has no timezone"),
        (lambda t: t.add.s(1).set(eta="soon"), "ISO 8601"),
        (lambda t: t.add.s(1).set(countdown=60, expires=30), "could never run"),
        (lambda t: t.add.s(1).set(connection=object()), r"apply_async\(connection=\.\.\.\)"),
        (lambda t: t.add.s(1).set(headers={}), "no message headers"),
        (lambda t: t.add.s(1).set(link="next"), r"link= takes signatures, e\.g\. add\.s\(16\)"),
        (lambda t: chain(t.add.s(1)).set(task_id="x"), "task_id= names one job, and a chain"),
        (lambda t: group([1, 2]), r"group\(\) takes signatures"),
        (lambda t: Signature({**t.add.s(1), "subtask_type": "chain"}), r"signature\(d\)"),
        (lambda t: signature({**chain(t.add.s(1)), "subtask_type": "map"}), "none of sqlqueue's"),
    ],
)
def test_bad_signatures_are_refused_when_made(tasks: Any, make: Any, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        make(tasks)


@pytest.mark.parametrize(
    ("send", "error", "message"),
    [
        (lambda t: chain().apply_async(), InvalidOptionError, "An empty chain has nothing"),
        (lambda t: chord([t.add.s(1, 1)]).apply_async(), InvalidOptionError, "has no body"),
        (
            lambda t: group(t.add.s(1, 1)).apply_async(task_id="g"),
            InvalidOptionError,
            "a group has several",
        ),
        (
            lambda t: group(t.add.s(1, 1) | group(t.add.s(1), t.add.s(2))).apply_async(),
            InvalidOptionError,
            "ends in a group",
        ),
        (
            lambda t: chain(
                t.add.s(1, 1).set(task_id="x"), t.add.s(1).set(task_id="x")
            ).apply_async(),
            InvalidOptionError,
            "given to two jobs",
        ),
        (
            lambda t: (t.add.s(1, 1) | t.add.s(1, 2)).apply_async(),
            TaskArgumentsError,
            r"called with the result of the step before it before its own arguments; make it immutable",
        ),
        (
            lambda t: chord([t.add.s(1, 1)], t.add.s()).apply_async(),
            TaskArgumentsError,
            "list of the group's results",
        ),
        (
            lambda t: t.add.apply_async((1, 1), link="next"),
            InvalidOptionError,
            "link= takes signatures",
        ),
        (lambda t: t.add.apply_async((1, 1), link=t.add.s()), TaskArgumentsError, "cannot take"),
        (
            lambda t: (t.add.s(1, 1) | signature("nowhere.task")).apply_async(),
            UnknownTaskError,
            "nowhere.task",
        ),
    ],
)
def test_bad_workflows_are_refused_before_anything_runs(
    tasks: Any, eager: SQLQueue, calls: list[Any], send: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        send(tasks)
    assert calls == []


def test_celerys_send_options_without_effect_warn_and_are_dropped(tasks: Any) -> None:
    with pytest.warns(CeleryCompatibilityWarning, match="serializer"):
        sig = tasks.add.s(1).set(serializer="json")
    assert sig.options == {}


# Eager runs


def test_eager_chain_passes_results_along(tasks: Any, eager: SQLQueue) -> None:
    result = (tasks.add.s(2, 2) | tasks.add.s(4) | tasks.add.s(8)).apply_async()

    assert result.get() == 16
    assert result.parent is not None and result.parent.get() == 8  # as a worker's run gives
    assert result.parent.parent.parent is None  # type: ignore[union-attr]
    assert tasks.add.s(2).delay(4).get() == 6
    assert tasks.record.s(2, b=1).delay(4, c=3).get() == [[4, 2], {"b": 1, "c": 3}]
    assert (tasks.add.s(1, 1) | tasks.record.si("ignores")).delay().get() == [["ignores"], {}]


def test_eager_groups_and_chords_of_every_shape(tasks: Any, eager: SQLQueue) -> None:
    add, tsum = tasks.add, tasks.tsum

    g = group(add.s(i, i) for i in range(10)).apply_async()
    assert isinstance(g, GroupResult) and g.get() == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert (g.ready(), g.successful(), g.completed_count(), len(g)) == (True, True, 10, 10)
    body = chord((add.s(i, i) for i in range(10)), tsum.s()).apply_async()
    assert body.get() == 90
    assert isinstance(body.parent, GroupResult) and body.parent.get()[-1] == 18
    assert chord(add.s(i, i) for i in range(10))(tsum.s()).get() == 90
    assert (group(add.s(1, 1), add.s(2, 2)) | tsum.s()).delay().get() == 6
    assert chord([add.s(3, 4)], tsum.s()).delay().get() == 7  # one member
    assert group([]).apply_async().get() == []
    assert chord([], tsum.s()).apply_async().get() == 0
    assert (add.s(1, 1) | group(add.s(1), add.s(2)) | tsum.s()).delay().get() == 7
    assert chain(add.s(1, 1), chord([add.s(1), add.s(2)], tsum.s()), add.s(10)).delay().get() == 17
    assert group(add.s(1, 1) | add.s(1), chord([add.s(2, 2)], tsum.s())).delay().get() == [3, 4]
    assert (add.s(1, 1) | group(add.s(1), add.s(2))).delay().get() == [3, 4]  # ends in a group
    assert group(add.s(1), add.s(2)).delay(10).get() == [11, 12]  # partial args to each member


def test_eager_apply_runs_inline_whatever_the_setting(tasks: Any, app: SQLQueue) -> None:
    assert (tasks.add.s(2, 2) | tasks.add.s(4)).apply().get() == 8
    assert group(tasks.add.s(1, 1)).apply().get() == [2]
    assert tasks.add.s(1).apply((2,)).get() == 3


def test_eager_failure_stops_the_chain_and_get_raises_the_failed_steps_error(
    tasks: Any, eager: SQLQueue, calls: list[Any]
) -> None:
    result = chain(
        tasks.add.s(1, 1), tasks.boom.s(), tasks.record.s(), tasks.record.s()
    ).apply_async(link_error=tasks.on_error.s())

    assert result.status == "REVOKED"
    with pytest.raises(TaskFailedError, match="ValueError: boom"):
        result.get()
    failed_id = calls[0][1]
    assert calls == [["errback", failed_id]]  # once, for the job that failed, with its id
    assert isinstance(failed_id, str) and failed_id != result.id


def test_eager_chord_body_fails_with_chord_error_naming_the_failed_job(
    tasks: Any, eager: SQLQueue, calls: list[Any]
) -> None:
    body = tasks.tsum.s().set(link_error=tasks.on_error.s("body"), link=tasks.record.s())
    failing = tasks.boom.s().on_error(tasks.on_error.s("header"))
    result = chord([tasks.add.s(1, 1), tasks.add.s(1, 1) | failing], body).apply_async()

    assert result.status == "FAILURE"
    with pytest.raises(TaskFailedError) as caught:
        result.get()
    [(_, failed_id, _), body_errback] = calls  # each errback once; the body's link never ran
    assert body_errback == ["errback", result.id, "body"]
    assert (caught.value.task_name, caught.value.exc_type) == ("t.tsum", "ChordError")
    assert caught.value.exc_message == f"Dependency {failed_id} raised ValueError: boom"


def test_eager_link_runs_on_success_and_link_error_never_does(
    tasks: Any, eager: SQLQueue, calls: list[Any]
) -> None:
    result = tasks.add.apply_async((2, 2), link=tasks.record.s(16), link_error=tasks.on_error.s())

    assert result.get() == 4
    assert calls == [[[4, 16], {}]]


def test_eager_propagation_raises_the_first_failure_after_the_workflow_ran(
    tasks: Any, eager: SQLQueue, calls: list[Any]
) -> None:
    eager.conf.task_eager_propagates = True

    with pytest.raises(TaskFailedError, match="boom"):
        (tasks.boom.s() | tasks.add.s(1)).apply_async(link_error=tasks.on_error.s())
    assert [call[0] for call in calls] == ["errback"]  # the errback ran first
    kept = (tasks.boom.s() | tasks.add.s(1)).apply(throw=False)
    assert kept.status == "REVOKED"
    with pytest.raises(TaskFailedError, match="boom"):
        kept.get()


def test_a_plain_send_stays_the_plain_send(db_url: str) -> None:
    # Not eager: a lone signature without callbacks writes one job as Task.apply_async does.
    queue = SQLQueue(db_url)

    @queue.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    job = queue.store.get_job(add.s(2).delay(4).id)
    queue.engine.dispose()
    assert job is not None and (job.task_name, job.args) == ("t.add", [4, 2])


def test_canvas_names_are_where_a_celery_user_looks() -> None:
    import sqlqueue.canvas
    import sqlqueue.result

    for name in ("signature", "Signature", "chain", "group", "chord", "maybe_signature"):
        assert getattr(sqlqueue, name) is getattr(sqlqueue.canvas, name)
    assert sqlqueue.result.GroupResult is GroupResult
    assert sqlqueue.ChordError is ChordError
    assert sqlqueue.subtask is sqlqueue.signature


def test_sends_that_take_no_callbacks_say_where_they_go(tasks: Any) -> None:
    message = r"callbacks are taken by apply_async\(\), send_task\(\) and signatures"
    with pytest.raises(InvalidOptionError, match=message):
        asyncio.run(tasks.add.aapply_async((1, 1), link=tasks.add.s(1)))
    with pytest.raises(InvalidOptionError, match=message):
        tasks.add.apply((1, 1), link=tasks.add.s(1))


def test_send_task_takes_callbacks_by_name(tasks: Any, eager: SQLQueue, calls: list[Any]) -> None:
    assert eager.send_task("t.add", (2, 2), link=tasks.record.s(16)).get() == 4
    assert calls == [[[4, 16], {}]]
