"""Bad input is refused with a clear SQLQueueError that says what to do, and nothing is written."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from conftest import count_jobs, work_off
from sqlalchemy.dialects.postgresql.pg8000 import PGDialect_pg8000

from sqlqueue import SQLQueue, Worker
from sqlqueue.dialects import check_driver
from sqlqueue.exceptions import (
    ConfigurationError,
    InvalidOptionError,
    SerializationError,
    SQLQueueError,
    TaskArgumentsError,
    TaskFailedError,
    UnknownTaskError,
    UnsupportedDatabaseError,
)

CASES: dict[str, tuple[Callable[[Any, SQLQueue], object], type[SQLQueueError], str]] = {
    "object argument": (
        lambda add, app: add.delay(object(), 1),
        SerializationError,
        "JSON-serialisable",
    ),
    "NaN argument": (lambda add, app: add.delay(float("nan"), 1), SerializationError, "JSON"),
    "set keyword argument": (
        lambda add, app: add.apply_async((1,), {"y": {1}}),
        SerializationError,
        "keyword arguments",
    ),
    "NUL character": (lambda add, app: add.delay("a\x00b", 1), SerializationError, "NUL character"),
    "lone surrogate argument": (
        lambda add, app: add.delay("caf\udce9", 1),
        SerializationError,
        r"arguments of task 't\.add' cannot be stored: a lone surrogate .* at \[0\]\. ",
    ),
    "lone surrogate keyword argument": (
        lambda add, app: add.apply_async((1,), {"y": {"names": ["ok", "\ud800"]}}),
        SerializationError,
        r"keyword arguments .* lone surrogate .* at \['y'\]\['names'\]\[1\]\. ",
    ),
    "lone surrogate in a key": (
        lambda add, app: add.delay({"\udfff": 1}, 1),
        SerializationError,
        r"lone surrogate .* at \[0\]\['\\udfff'\] \(the key\)",
    ),
    "surrogates that would pair up in JSON": (
        lambda add, app: add.delay("\ud83d\ude00", 1),
        SerializationError,
        "lone surrogate",
    ),
    "missing argument": (
        lambda add, app: add.delay(1),
        TaskArgumentsError,
        "missing a required argument",
    ),
    "unexpected keyword": (
        lambda add, app: add.apply_async((1, 2), {"z": 3}),
        TaskArgumentsError,
        "cannot take",
    ),
    "args as a string": (
        lambda add, app: add.apply_async("12"),
        TaskArgumentsError,
        "list or tuple",
    ),
    "negative countdown": (
        lambda add, app: add.apply_async((1, 2), countdown=-1),
        InvalidOptionError,
        "zero or more",
    ),
    "countdown not a number": (
        lambda add, app: add.apply_async((1, 2), countdown="soon"),
        InvalidOptionError,
        "number of seconds",
    ),
    "countdown and eta": (
        lambda add, app: add.apply_async((1, 2), countdown=1, eta=datetime.now().astimezone()),
        InvalidOptionError,
        "not both",
    ),
    "naive eta": (
        lambda add, app: add.apply_async((1, 2), eta=datetime(2030, 1, 1)),
        InvalidOptionError,
        "no timezone",
    ),
    "naive expires": (
        lambda add, app: add.apply_async((1, 2), expires=datetime(2030, 1, 1)),
        InvalidOptionError,
        "no timezone",
    ),
    "negative expires": (
        lambda add, app: add.apply_async((1, 2), expires=-5),
        InvalidOptionError,
        "zero or more",
    ),
    "expires before countdown": (
        lambda add, app: add.apply_async((1, 2), countdown=60, expires=30),
        InvalidOptionError,
        "could never run",
    ),
    "oversized arguments": (
        lambda add, app: add.delay("x" * 1_000_001, 1),
        InvalidOptionError,
        "max_payload_bytes",
    ),
    "priority too high": (
        lambda add, app: add.apply_async((1, 2), priority=101),
        InvalidOptionError,
        "-100 to 100",
    ),
    "priority not an int": (
        lambda add, app: add.apply_async((1, 2), priority="high"),
        InvalidOptionError,
        "integer",
    ),
    "empty queue": (
        lambda add, app: add.apply_async((1, 2), queue=""),
        InvalidOptionError,
        "non-empty",
    ),
    "queue with control characters": (
        lambda add, app: add.apply_async((1, 2), queue="a\nb"),
        InvalidOptionError,
        "control characters",
    ),
    "queue too long": (
        lambda add, app: add.apply_async((1, 2), queue="q" * 201),
        InvalidOptionError,
        "at most 200",
    ),
    "empty task name": (lambda add, app: app.send_task(""), InvalidOptionError, "task name"),
    "task name with a NUL": (
        lambda add, app: app.send_task("t.\x00add"),
        InvalidOptionError,
        "control characters",
    ),
    "unknown option of send_task": (
        lambda add, app: app.send_task("t.add", (1, 2), queue_name="mail"),
        InvalidOptionError,
        r"send option 'queue_name'.*countdown, eta, expires, queue, priority, task_id, unique_key, connection",
    ),
    "unknown option of send_task, task not registered here": (
        lambda add, app: app.send_task("t.elsewhere", (1, 2), run_after=5),
        InvalidOptionError,
        r"send option 'run_after'",
    ),
    "connection that is not one": (
        lambda add, app: add.apply_async((1, 2), connection="db"),
        ConfigurationError,
        "connection=",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused_and_nothing_is_written(case: str, add: Any, app: SQLQueue) -> None:
    call, error, message = CASES[case]
    with pytest.raises(error, match=message):
        call(add, app)
    assert count_jobs(app) == 0


def test_an_unknown_task_name_in_the_registry_says_what_is_registered(
    add: Any, app: SQLQueue
) -> None:
    with pytest.raises(UnknownTaskError, match=r"No task named 'nope'.*t\.add") as caught:
        app.tasks["nope"]
    assert isinstance(caught.value, KeyError)


def test_send_task_of_an_unknown_name_in_eager_mode_is_refused(app: SQLQueue) -> None:
    app.conf.task_always_eager = True
    with pytest.raises(UnknownTaskError, match="task_always_eager"):
        app.send_task("t.elsewhere")
    assert count_jobs(app) == 0


def test_a_malformed_job_id_is_refused(app: SQLQueue) -> None:
    with pytest.raises(InvalidOptionError, match="not a job id"):
        app.AsyncResult("")
    with pytest.raises(InvalidOptionError, match="not a job id"):
        app.AsyncResult(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "error", "message"),
    [
        ("mssql://sa@127.0.0.1/test", UnsupportedDatabaseError, "does not support the 'mssql'"),
        ("oracle://scott@db/orcl", UnsupportedDatabaseError, "PostgreSQL .*SQLite .*MySQL"),
        ("mysql+mysqlconnector://db/x", ConfigurationError, "through pymysql or mysqldb"),
        ("not a url", ConfigurationError, "is not a database URL"),
        ("postgresql+nosuchdriver://db/x", ConfigurationError, "through psycopg"),
    ],
)
def test_an_unsupported_or_malformed_url_is_refused(
    url: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        SQLQueue(url)


def test_a_url_and_an_engine_together_are_refused(app: SQLQueue) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        SQLQueue("sqlite://", engine=app.engine)


def test_a_missing_schema_says_to_run_migrate(tmp_path: Any) -> None:
    app = SQLQueue(f"sqlite:///{tmp_path / 'empty.db'}")
    app.task(name="t.noop")(lambda: None)
    with pytest.raises(SQLQueueError, match="sqlqueue migrate"):
        app.send_task("t.noop")


def test_postgres_scheme_is_understood_as_postgresql() -> None:
    app = SQLQueue("postgres://app@db.invalid/shop")
    assert (app.dialect.name, app.engine.url.drivername) == ("postgresql", "postgresql+psycopg")


def test_a_worker_refuses_settings_that_would_make_it_spin(app: SQLQueue) -> None:
    app.conf.poll_interval = 0
    with pytest.raises(InvalidOptionError, match="poll_interval"):
        Worker(app)


def test_an_engine_on_a_driver_sqlqueue_does_not_speak_is_refused() -> None:
    # sqlqueue's own SQL is written for psycopg's and sqlite3's parameter styles; an engine
    # on pg8000 or asyncpg would fail on the first send, so it is refused up front.
    with pytest.raises(ConfigurationError, match=r"postgresql\+psycopg://"):
        check_driver(PGDialect_pg8000())


def test_text_that_only_looks_like_an_escape_is_kept_as_it_is(app: SQLQueue) -> None:
    # Backslash-u-0000 written out (seven characters) is ordinary text, not a NUL character.
    @app.task(name="t.echo")
    def echo(text: str, more: str, *, key: str) -> list[str]:
        return [text, more, key, "\\ud800"]

    result = echo.apply_async(["\\u0000", "\\\\u0000"], {"key": "a\\ud800b"})
    work_off(app)

    assert result.get(timeout=5) == ["\\u0000", "\\\\u0000", "a\\ud800b", "\\ud800"]


def test_results_the_database_could_not_hold_fail_alone_and_clearly(app: SQLQueue) -> None:
    # A result or an error message with a lone surrogate ends its own job as a FAILURE that
    # says why; the jobs recorded in the same batch are not disturbed.
    @app.task(name="t.surrogate_result")
    def surrogate_result() -> dict[str, str]:
        return {"name": "caf\udce9"}

    @app.task(name="t.surrogate_error")
    def surrogate_error() -> None:
        raise ValueError("bad name caf\udce9")

    @app.task(name="t.fine")
    def fine(n: int) -> int:
        return n

    bad_result, bad_error = surrogate_result.delay(), surrogate_error.delay()
    good = fine.delay_many([(n,) for n in range(8)])
    work_off(app, concurrency=4)

    with pytest.raises(
        TaskFailedError,
        match=r"SerializationError: The return value of task 't\.surrogate_result' cannot be "
        r"stored: a lone surrogate .* at \['name'\]",
    ):
        bad_result.get(timeout=5)
    with pytest.raises(TaskFailedError, match=r"ValueError: bad name caf\\udce9"):
        bad_error.get(timeout=5)
    assert [result.get(timeout=5) for result in good] == list(range(8))
