"""Periodic tasks in one process, on both databases: how they are declared (Celery's
beat_schedule, add_periodic_task and signals), and what a scheduler's pass sends: nothing
for a task seen first, the latest tick once after downtime, a tick once when two schedulers
race for it, and nothing at all when its transaction does not commit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from conftest import work_off

from sqlqueue import Celery, DatabaseError, SQLQueue, Worker, WorkerOptions
from sqlqueue.exceptions import (
    CeleryCompatibilityWarning,
    ConfigurationError,
    InvalidOptionError,
)
from sqlqueue.jobs import as_utc
from sqlqueue.migrate import upgrade
from sqlqueue.periodic import read_periodic_tasks
from sqlqueue.scheduler import Scheduler
from sqlqueue.schedules import crontab, schedule
from sqlqueue.schema import jobs, schedules


@pytest.fixture
def queue(db_url: str) -> Iterator[SQLQueue]:
    if db_url.startswith("postgresql"):
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("TRUNCATE sqlqueue_schedules")
    elif db_url.startswith("mysql"):
        engine = sa.create_engine(db_url)
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM sqlqueue_schedules")
        engine.dispose()
    app = SQLQueue(db_url)

    @app.task(name="t.tick")
    def tick(label: str) -> str:
        return label

    yield app
    app.engine.dispose()


def scheduler(app: SQLQueue) -> Scheduler:
    return Scheduler(app, read_periodic_tasks(app), threading.Event())


def sent(app: SQLQueue) -> list[tuple[str, datetime]]:
    """The ticks' jobs, in the order they were sent: label and tick (the job's eta)."""
    with app.engine.connect() as conn:
        rows = conn.execute(
            sa.select(jobs.c.args, jobs.c.scheduled_at).order_by(jobs.c.created_at)
        ).all()
    return [(args[0], as_utc(tick)) for args, tick in rows]


def set_last_tick(app: SQLQueue, name: str, tick: datetime) -> None:
    with app.engine.begin() as conn:
        conn.execute(sa.update(schedules).where(schedules.c.name == name).values(last_tick=tick))


def test_a_periodic_task_seen_first_starts_at_its_next_tick(queue: SQLQueue) -> None:
    queue.conf.beat_schedule = {"hourly": {"task": "t.tick", "schedule": 3600, "args": ["h"]}}
    now = queue.store.database_now()
    following = scheduler(queue).send_due(now)
    assert sent(queue) == []
    state = queue.store.get_schedules(["hourly"])["hourly"]
    assert (state.last_tick, state.job_id) == (schedule(3600).latest(now), None)
    assert following == state.last_tick + timedelta(hours=1)
    assert now < following <= now + timedelta(hours=1)


@pytest.mark.parametrize(
    "every", [schedule(60), crontab(minute="*"), crontab(minute="*/5")], ids=str
)
def test_after_downtime_the_latest_missed_tick_runs_once(queue: SQLQueue, every: Any) -> None:
    queue.conf.beat_schedule = {"often": {"task": "t.tick", "schedule": every, "args": ["o"]}}
    scheduler(queue).send_due(queue.store.database_now())
    # Given the schedulers were all down for a day (dozens of ticks missed),
    set_last_tick(queue, "often", queue.store.database_now() - timedelta(days=1))
    # a pass sends one job, for the latest tick,
    scheduler(queue).send_due(queue.store.database_now())
    latest = every.latest(queue.store.database_now())
    assert sent(queue) == [("o", latest)]
    # and another pass before the next tick sends nothing more.
    scheduler(queue).send_due(queue.store.database_now())
    assert len(sent(queue)) == 1
    state = queue.store.get_schedules(["often"])["often"]
    assert state.last_tick == latest and state.job_id is not None
    assert queue.AsyncResult(state.job_id).name == "t.tick"


def test_a_tick_whose_transaction_does_not_commit_is_not_taken(queue: SQLQueue) -> None:
    tick = datetime(2026, 1, 1, 12, tzinfo=UTC)
    queue.store.insert_schedule("often", "t.tick", tick - timedelta(minutes=1))

    def send_then_die(conn: Any) -> str:
        queue.send_task("t.tick", ["lost"], connection=conn, eta=tick)
        raise KeyboardInterrupt  # the scheduler dies between the job's insert and the commit

    with pytest.raises(KeyboardInterrupt):
        queue.store.send_tick("often", "t.tick", tick, send_then_die)
    assert sent(queue) == []
    assert queue.store.get_schedules(["often"])["often"].last_tick == tick - timedelta(minutes=1)
    # The tick is still there for the next scheduler to take.
    job_id = queue.store.send_tick(
        "often",
        "t.tick",
        tick,
        lambda conn: queue.send_task("t.tick", ["kept"], connection=conn, eta=tick).id,
    )
    assert sent(queue) == [("kept", tick)]
    assert queue.store.get_schedules(["often"])["often"].job_id == job_id


def test_two_schedulers_racing_for_a_tick_send_it_once(queue: SQLQueue, db_url: str) -> None:
    # Given the first scheduler's transaction has taken the tick and written its job but
    # not committed,
    other = SQLQueue(db_url)
    tick = datetime(2026, 1, 1, 12, tzinfo=UTC)
    queue.store.insert_schedule("often", "t.tick", tick - timedelta(minutes=1))
    written, go_on = threading.Event(), threading.Event()
    results: dict[str, str | None] = {}

    def first(conn: Any) -> str:
        job_id = queue.send_task("t.tick", ["first"], connection=conn, eta=tick).id
        written.set()
        go_on.wait(10)
        return job_id

    def race(name: str, app: SQLQueue, send: Any) -> None:
        results[name] = app.store.send_tick("often", "t.tick", tick, send)

    one = threading.Thread(target=race, args=("first", queue, first))
    one.start()
    written.wait(10)
    # when a second scheduler tries the same tick meanwhile (it waits: a row lock on
    # PostgreSQL, the write lock on SQLite), and the first commits,
    two = threading.Thread(
        target=race,
        args=(
            "second",
            other,
            lambda conn: other.send_task("t.tick", ["second"], connection=conn, eta=tick).id,
        ),
    )
    two.start()
    two.join(0.5)
    assert two.is_alive()  # waiting for the first transaction
    go_on.set()
    one.join(10)
    two.join(10)
    other.engine.dispose()
    # then the second took nothing and wrote nothing.
    assert results["second"] is None and results["first"] is not None
    assert sent(queue) == [("first", tick)]


def test_a_periodic_task_whose_schedule_and_arguments_change_keeps_its_history(
    queue: SQLQueue,
) -> None:
    queue.conf.beat_schedule = {"report": {"task": "t.tick", "schedule": 60, "args": ["v1"]}}
    scheduler(queue).send_due(queue.store.database_now())
    set_last_tick(queue, "report", queue.store.database_now() - timedelta(minutes=5))
    scheduler(queue).send_due(queue.store.database_now())
    assert [label for label, _ in sent(queue)] == ["v1"]
    # Given the entry changes (its arguments, and an hourly schedule whose latest tick is
    # older than the last minute's tick sent), a pass sends nothing until the next hour;
    queue.conf.beat_schedule = {
        "report": {"task": "t.tick", "schedule": crontab(minute=0), "args": ["v2"]}
    }
    scheduler(queue).send_due(queue.store.database_now())
    assert [label for label, _ in sent(queue)] == ["v1"]
    # from then on, the new arguments are sent.
    set_last_tick(queue, "report", queue.store.database_now() - timedelta(hours=2))
    scheduler(queue).send_due(queue.store.database_now())
    assert [label for label, _ in sent(queue)] == ["v1", "v2"]


def statements_on(app: SQLQueue) -> list[str]:
    seen: list[str] = []
    sa.event.listen(
        app.engine, "before_cursor_execute", lambda _c, _cur, sql, *_a: seen.append(sql)
    )
    return seen


def test_a_worker_without_periodic_tasks_never_queries_their_table(queue: SQLQueue) -> None:
    seen = statements_on(queue)
    queue.send_task("t.tick", ["x"])
    work_off(queue)
    assert seen and not [sql for sql in seen if "sqlqueue_schedules" in sql]
    # With one, a worker does.
    queue.conf.beat_schedule = {"often": {"task": "t.tick", "schedule": 60, "args": ["o"]}}
    work_off(queue)
    assert [sql for sql in seen if "sqlqueue_schedules" in sql]


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"task": "t.tick"}, "give at least 'task' and 'schedule'"),
        ({"task": "t.tick", "schedule": "often"}, "a schedule is seconds, a timedelta"),
        ({"task": "t.tick", "schedule": 5, "args": "abc"}, "args must be a list or tuple"),
        ({"task": "t.tick", "schedule": 5, "kwargs": [1]}, "kwargs must be a dict"),
        ({"task": "t.tick", "schedule": 5, "relative": True}, "relative= is not supported"),
        ({"task": "t.tick", "schedule": 5, "every": 3}, "unknown key 'every'"),
        ({"task": "t.tick", "schedule": 5, "options": {"countdown": 3}}, "due at its tick"),
        ({"task": "", "schedule": 5}, "task name must be a non-empty string"),
        ("t.tick", "give a dict with task, schedule"),
    ],
)
def test_a_bad_beat_schedule_entry_is_refused_when_set(
    queue: SQLQueue, entry: Any, says: str
) -> None:
    with pytest.raises(ConfigurationError, match=rf"beat_schedule\['bad'\]: .*{says}"):
        queue.conf.beat_schedule = {"bad": entry}
    assert queue.conf.beat_schedule == {}


def test_an_entry_written_in_place_is_checked_when_read(queue: SQLQueue) -> None:
    queue.conf.beat_schedule["late"] = {"task": "t.tick", "schedule": 5, "args": [1, 2]}
    with pytest.raises(ConfigurationError, match=r"beat_schedule\['late'\]: .*argument"):
        read_periodic_tasks(queue)
    queue.conf.beat_schedule["late"] = {
        "task": "t.tick",
        "schedule": 5,
        "args": ["x"],
        "options": {"queue": ""},
    }
    with pytest.raises(ConfigurationError, match=r"beat_schedule\['late'\]: .*queue name"):
        read_periodic_tasks(queue)


def test_celerys_way_of_adding_periodic_tasks_in_signals(db_url: str) -> None:
    app = Celery("proj", broker=db_url)

    @app.task(name="proj.tick")
    def tick(label: str) -> str:
        return label

    calls: list[str] = []

    @app.on_after_configure.connect
    def setup_periodic_tasks(sender: Any, **kwargs: Any) -> None:
        calls.append("configure")
        sender.add_periodic_task(10.0, tick.s("hello"), name="add every 10")
        sender.add_periodic_task(30.0, tick.s("world"), expires=10)
        sender.add_periodic_task(
            crontab(hour=7, minute=30, day_of_week=1), tick.s("Happy Mondays!")
        )

    @app.on_after_finalize.connect(weak=False)
    def finalized(sender: Any, **kwargs: Any) -> None:
        calls.append("finalize")

    periodic = {entry.name: entry for entry in read_periodic_tasks(app)}
    read_periodic_tasks(app)  # the signals are sent once
    assert calls == ["configure", "finalize"]
    assert sorted(periodic) == [
        "add every 10",
        "proj.tick('Happy Mondays!')",
        "proj.tick('world')",
    ]
    assert periodic["add every 10"].schedule == schedule(10)
    assert periodic["add every 10"].args == ("hello",)
    assert periodic["proj.tick('world')"].options == {"expires": 10}
    assert periodic["proj.tick('Happy Mondays!')"].schedule == crontab(30, 7, day_of_week=1)
    assert app.conf.beat_schedule["add every 10"]["task"] == "proj.tick"
    app.engine.dispose()


def test_add_periodic_task_refuses_a_workflow_and_a_bad_schedule(queue: SQLQueue) -> None:
    tick = queue.tasks["t.tick"]
    with pytest.raises(ConfigurationError, match="a periodic task sends one task, not a chain"):
        queue.add_periodic_task(10, tick.s("a") | tick.s())
    with pytest.raises(InvalidOptionError, match=r"crontab\(hour=24\)"):
        queue.add_periodic_task(crontab(hour=24), tick.s("a"))  # refused by crontab itself
    with pytest.raises(ConfigurationError, match="a schedule is seconds"):
        queue.add_periodic_task("hourly", tick.s("a"))
    with pytest.raises(ConfigurationError, match="takes a signature"):
        queue.add_periodic_task(10, "t.tick")
    assert queue.conf.beat_schedule == {}


def test_crontabs_are_read_in_the_apps_timezone(queue: SQLQueue) -> None:
    queue.conf.timezone = "Asia/Tokyo"
    queue.conf.beat_schedule = {
        "nine": {"task": "t.tick", "schedule": crontab(minute=0, hour=9), "args": ["9"]}
    }
    scheduler(queue).send_due(queue.store.database_now())
    set_last_tick(queue, "nine", queue.store.database_now() - timedelta(days=3))
    scheduler(queue).send_due(queue.store.database_now())
    [(_, tick)] = sent(queue)
    assert (tick.hour, tick.minute) == (0, 0)  # 09:00 in Tokyo is midnight UTC


def test_a_scheduler_sleeps_until_the_next_tick_and_stops_at_once(queue: SQLQueue) -> None:
    queue.conf.beat_schedule = {"often": {"task": "t.tick", "schedule": 1, "args": ["o"]}}
    seen = statements_on(queue)
    stopping = threading.Event()
    thread = threading.Thread(target=Scheduler(queue, read_periodic_tasks(queue), stopping).run)
    thread.start()
    time.sleep(2.5)
    stopping.set()
    started = time.monotonic()
    thread.join(5)
    assert time.monotonic() - started < 0.5
    # One pass per tick (and the first), each reading the rows once: no polling between.
    passes = [sql for sql in seen if "FROM sqlqueue_schedules" in sql]
    assert 2 <= len(passes) <= 4, passes
    assert 1 <= len(sent(queue)) <= 3


def test_a_worker_on_a_schema_without_the_schedules_table_stops_saying_to_migrate(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = SQLQueue(url)
    upgrade(old.engine)
    with old.engine.begin() as conn:  # as before 0010, and nothing else older to trip on
        conn.execute(sa.text("DROP TABLE sqlqueue_schedules"))
    old.conf.beat_schedule = {"often": {"task": "t.tick", "schedule": 1, "args": ["o"]}}
    with pytest.raises(DatabaseError, match=r"sqlqueue_schedules.*run `sqlqueue migrate`"):
        Worker(old, WorkerOptions(poll_interval=0.05)).run()
    old.engine.dispose()


def test_celerys_old_and_other_beat_settings(queue: SQLQueue) -> None:
    with pytest.warns(
        CeleryCompatibilityWarning, match=r"beat_max_loop_interval \(.*sqlqueue_schedules"
    ):
        queue.conf.update(
            CELERYBEAT_SCHEDULE={"often": {"task": "t.tick", "schedule": 5, "args": ["o"]}},
            beat_max_loop_interval=300,
        )
    assert [entry.name for entry in read_periodic_tasks(queue)] == ["often"]
