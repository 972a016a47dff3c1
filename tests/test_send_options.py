"""SendOptions: the options of one send, checked once when built, with their fallbacks in one
place (the call's, then the task's, then the app's), and copied with ``dataclasses.replace``."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import count_jobs

from sqlqueue import CeleryCompatibilityWarning, SQLQueue
from sqlqueue.conf import DEFAULT_PRIORITY, Settings
from sqlqueue.exceptions import InvalidOptionError
from sqlqueue.send_options import OPTION_NAMES, SendOptions

IN_AN_HOUR = datetime.now(UTC) + timedelta(hours=1)


def stored(app: SQLQueue, job_id: str) -> tuple[str, int]:
    job = app.store.get_job(job_id)
    assert job is not None
    return job.queue, job.priority


@pytest.fixture
def mail(app: SQLQueue) -> Any:
    """A task with a queue and a priority of its own."""

    @app.task(name="t.mail", queue="mail", priority=5)
    def mail(to: str) -> None: ...

    return mail


def test_an_option_given_to_the_call_wins(app: SQLQueue, mail: Any) -> None:
    result = mail.apply_async(("a@example.com",), queue="urgent", priority=9)
    assert stored(app, result.id) == ("urgent", 9)


def test_an_option_not_given_falls_back_to_the_task_then_to_the_app(
    app: SQLQueue, mail: Any, add: Any
) -> None:
    app.conf.task_default_queue = "everything"
    assert stored(app, mail.delay("a@example.com").id) == ("mail", 5)
    assert stored(app, add.delay(1, 2).id) == ("everything", DEFAULT_PRIORITY)
    # A name not registered here has no task to fall back to.
    assert stored(app, app.send_task("t.elsewhere").id) == ("everything", DEFAULT_PRIORITY)


def test_every_send_path_applies_the_same_fallbacks(app: SQLQueue, mail: Any) -> None:
    ids = [
        mail.delay("a").id,
        mail.apply_async(("b",)).id,
        app.send_task("t.mail", ("c",)).id,
        *(result.id for result in mail.delay_many([("d",), ("e",)])),
    ]
    assert {stored(app, job_id) for job_id in ids} == {("mail", 5)}


def test_build_falls_back_in_order_call_task_conf(app: SQLQueue, mail: Any) -> None:
    conf = Settings(task_default_queue="fallback")
    assert (SendOptions.build(conf).queue, SendOptions.build(conf).priority) == ("fallback", 0)
    assert SendOptions.build(conf, mail).queue == "mail"
    assert SendOptions.build(conf, mail, queue="given", priority=None).queue == "given"
    assert SendOptions.build(conf, mail, priority=-3).priority == -3


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"queue": ""}, "non-empty"),
        ({"priority": 101}, "out of range"),
        ({"priority": True}, "integer"),
        ({"countdown": -1}, "zero or more"),
        ({"countdown": float("inf")}, "number of seconds"),
        ({"countdown": 5, "eta": IN_AN_HOUR}, "not both"),
        ({"eta": datetime(2030, 1, 1)}, "no timezone"),
        ({"expires": "soon"}, "number of seconds"),
        ({"countdown": 60, "expires": 30}, "could never run"),
        ({"eta": IN_AN_HOUR, "expires": IN_AN_HOUR}, "could never run"),
        ({"queue_name": "mail"}, "Unknown send option 'queue_name'"),
    ],
)
def test_a_bad_option_is_refused_and_nothing_is_written(
    app: SQLQueue, add: Any, given: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        SendOptions.build(app.conf, add, **given)
    with pytest.raises(InvalidOptionError, match=message):
        app.send_task("t.add", (1, 2), **given)
    with pytest.raises(InvalidOptionError, match=message):
        app.send_task("t.elsewhere", **given)
    if "queue_name" not in given:
        with pytest.raises(InvalidOptionError, match=message):
            add.delay_many([(1, 2), (3, 4)], **given)
    assert count_jobs(app) == 0


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"link": "next"}, r"link= takes signatures, e\.g\. add\.s\(16\)"),
        ({"headers": {"a": 1}}, "no message headers: pass the data as an argument"),
        ({"ignore_result": True}, r"@app\.task\(ignore_result=True\)"),
        ({"time_limit": 5}, r"time_limit= is Celery's: set the limits on the task"),
        ({"routing_key": "x", "exchange": "y"}, "routing_key= is Celery's: give queue="),
        ({"serializer": "pickle", "retry": True}, "JSON only, never pickle"),
    ],
)
def test_celerys_send_options_sqlqueue_lacks_are_refused_naming_the_way(
    app: SQLQueue, add: Any, given: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        add.apply_async((1, 2), **given)
    with pytest.raises(InvalidOptionError, match=message):
        app.send_task("t.elsewhere", **given)
    assert count_jobs(app) == 0


def test_celerys_send_options_that_change_nothing_here_warn_once(app: SQLQueue, add: Any) -> None:
    with pytest.warns(CeleryCompatibilityWarning) as caught:
        add.apply_async((1, 2), retry=True, retry_policy={"max_retries": 3}, serializer="json")
    assert len(caught) == 1
    assert caught[0].filename == __file__  # the caller's line, not sqlqueue's
    assert "retry (there is no broker connection to retry" in str(caught[0].message)
    with pytest.warns(CeleryCompatibilityWarning, match="compression"):
        app.send_task("t.add", (1, 2), compression="zlib")
    assert count_jobs(app) == 2


def test_the_unknown_option_error_lists_the_options() -> None:
    with pytest.raises(InvalidOptionError) as caught:
        SendOptions.build(Settings(), route="x", queue_name="y")
    assert "'queue_name', 'route'" in str(caught.value)
    assert ", ".join(OPTION_NAMES) in str(caught.value)
    assert OPTION_NAMES == (
        "countdown",
        "eta",
        "expires",
        "queue",
        "priority",
        "task_id",
        "unique_key",
        "connection",
    )


def test_values_are_normalised_when_built() -> None:
    paris = timezone(timedelta(hours=1))
    options = SendOptions(countdown=5, expires=datetime(2099, 1, 1, 1, tzinfo=paris))
    assert options.countdown == 5.0 and isinstance(options.countdown, float)
    assert options.expires == datetime(2099, 1, 1, tzinfo=UTC)
    assert options.expires.tzinfo is UTC  # type: ignore[union-attr]
    assert (options.expires_at, options.expires_in) == (options.expires, None)
    in_seconds = SendOptions(expires=30)
    assert (in_seconds.expires_at, in_seconds.expires_in) == (None, 30.0)
    assert SendOptions(eta=datetime(2099, 1, 1, 1, tzinfo=paris)).eta == datetime(
        2099, 1, 1, tzinfo=UTC
    )


def test_a_copy_changes_only_what_it_names_and_is_checked_again() -> None:
    original = SendOptions(queue="mail", priority=5, countdown=10)
    copy = replace(original, queue="urgent")
    assert copy == SendOptions(queue="urgent", priority=5, countdown=10.0)
    assert original.queue == "mail"
    with pytest.raises(FrozenInstanceError):
        original.queue = "other"  # type: ignore[misc]
    with pytest.raises(InvalidOptionError, match="non-empty"):
        replace(original, queue="")
    with pytest.raises(InvalidOptionError, match="not both"):
        replace(original, eta=IN_AN_HOUR)
    assert replace(original, countdown=None, eta=IN_AN_HOUR).eta == IN_AN_HOUR


def test_a_copy_sends_what_it_says(app: SQLQueue, mail: Any) -> None:
    options = replace(SendOptions.build(app.conf, mail), priority=-7)
    (result,) = app.send_jobs(mail, mail.name, [(["a@example.com"], {})], options)
    assert stored(app, result.id) == ("mail", -7)


def test_eager_runs_see_the_queue_of_their_options(app: SQLQueue) -> None:
    app.conf.task_always_eager = True

    @app.task(name="t.where", queue="mail", bind=True)
    def where(self: Any) -> str | None:
        return self.request.queue  # type: ignore[no-any-return]

    assert where.delay().get() == "mail"
    assert where.apply_async(queue="urgent").get() == "urgent"
    assert count_jobs(app) == 0
