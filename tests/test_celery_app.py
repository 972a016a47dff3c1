"""The Celery-shaped app: constructor, states, settings (Celery's names, old names, namespaces,
warnings, typos), task_routes in Celery's three forms, the database found on first use, and
autodiscover_tasks."""

from __future__ import annotations

import importlib
import re
import sys
import textwrap
import threading
import types
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sqlqueue import (
    Celery,
    CeleryCompatibilityWarning,
    ConfigurationError,
    InvalidOptionError,
    JobStatus,
    SQLQueue,
    Task,
    WorkerOptions,
    states,
)
from sqlqueue.loading import load_app
from sqlqueue.shared import get_current_app


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path for a throwaway project; its modules are forgotten after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def celery(db_url: str) -> Iterator[Celery]:
    app = Celery("proj", broker=db_url)
    yield app
    app.engine.dispose()


# -- states ---------------------------------------------------------------------------------


def test_states_have_celerys_names_and_sets_and_match_the_stored_statuses() -> None:
    for status in JobStatus:
        assert getattr(states, status.name) == status
    assert states.READY_STATES == {"SUCCESS", "FAILURE", "REVOKED"}
    assert states.UNREADY_STATES == {
        "WAITING", "PENDING", "RECEIVED", "STARTED", "REJECTED", "RETRY"
    }  # fmt: skip
    assert states.EXCEPTION_STATES == {"RETRY", "FAILURE", "REVOKED"}
    assert states.PROPAGATE_STATES == {"FAILURE", "REVOKED"}
    assert states.ALL_STATES == {
        "PENDING", "RECEIVED", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED"
    }  # fmt: skip
    assert (states.IGNORED, states.REJECTED) == ("IGNORED", "REJECTED")


# -- the constructor -------------------------------------------------------------------------


def on(app: SQLQueue, url: str) -> bool:
    """Whether the app's engine is on the database of ``url`` (its driver may be added)."""
    return app.engine.url.database == sa.make_url(url).database


def test_a_database_url_as_broker_or_backend_is_the_queues_database(db_url: str) -> None:
    for app in (Celery("proj", broker=db_url), Celery("proj", backend=db_url)):
        assert on(app, db_url)
        assert re.fullmatch(r"<Celery proj at 0x[0-9a-f]+>", repr(app))
        app.engine.dispose()


def test_celerys_database_prefixes_are_understood(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    app = Celery("proj", broker=f"sqla+{url}", backend=f"db+{url}")
    assert str(app.engine.url) == url


@pytest.mark.parametrize(
    "broker", ["redis://localhost:6379/0", "amqp://guest:secret@rabbit//", "sqs://"]
)
def test_a_broker_only_url_is_refused_saying_to_give_a_database_url(broker: str) -> None:
    with pytest.raises(ConfigurationError, match="not a database URL") as raised:
        Celery("proj", broker=broker)
    assert "postgresql://" in str(raised.value)
    assert "secret" not in str(raised.value)


def test_a_result_backend_that_is_not_a_database_is_ignored_with_a_warning(db_url: str) -> None:
    with pytest.warns(CeleryCompatibilityWarning, match="result_backend"):
        app = Celery("proj", broker=db_url, backend="rpc://")
    assert on(app, db_url)


@pytest.mark.parametrize(
    "bad",
    [
        {"task_rutes": {}},
        {"task_default_queue": ""},
        {"backend": "sqlite:///elsewhere.db"},
        {"include": 3},
    ],
)
def test_an_app_refused_for_its_settings_never_becomes_the_current_app(
    celery: Celery, bad: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError):
        Celery("broken", broker=str(celery.conf.broker_url), **bad)
    assert get_current_app() is celery  # shared tasks still go to the app that was made


def test_broker_and_backend_on_two_databases_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="two databases"):
        Celery("proj", broker=f"sqlite:///{tmp_path}/a.db", backend=f"sqlite:///{tmp_path}/b.db")


def test_constructor_arguments_without_an_equivalent_are_refused_naming_the_sqlqueue_way() -> None:
    with pytest.raises(ConfigurationError, match=r"amqp=.*no broker"):
        Celery("proj", amqp=object())
    with pytest.raises(ConfigurationError, match=r"control=.*no remote control"):
        Celery("proj", control=object())


class InContext(Task):
    """Flask's ``FlaskTask``: every run inside a context the app sets up."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return ("in context", self.run(*args, **kwargs))


def test_task_cls_is_the_base_of_the_apps_tasks_as_in_flasks_pattern(
    db_url: str, project: Path
) -> None:
    module = f"flaskish_{sa.make_url(db_url).get_backend_name()}"  # shared tasks stay shared
    write(
        project,
        {
            f"{module}.py": "from sqlqueue import shared_task\n"
            "@shared_task\ndef double(x):\n    return 2 * x\n"
        },
    )
    app = Celery("proj", broker=db_url, task_cls=InContext)  # Flask's celery_init_app
    flaskish = importlib.import_module(module)  # a task module, imported after the app

    @app.task
    def triple(x: int) -> int:
        return 3 * x

    assert app.Task is InContext
    assert triple.apply((2,)).get() == ["in context", 6]
    assert flaskish.double.apply((2,)).get() == ["in context", 4]
    by_path = Celery("proj", broker=db_url, task_cls=f"{__name__}:InContext")
    assert by_path.Task is InContext
    with pytest.raises(ConfigurationError, match=r"subclass of sqlqueue\.Task"):
        Celery("proj", broker=db_url, task_cls=object)


def test_replacing_app_task_changes_the_base_of_tasks_defined_after(celery: Celery) -> None:
    celery.Task = InContext  # the older Flask pattern: celery.Task = ContextTask

    @celery.task
    def triple(x: int) -> int:
        return 3 * x

    assert triple.apply((2,)).get() == ["in context", 6]
    assert SQLQueue.Task is Task  # a plain app has Celery's app.Task too


def test_keyword_settings_and_changes_are_settings(tmp_path: Path) -> None:
    app = Celery(
        "proj",
        changes={"task_default_queue": "web", "broker_url": f"sqlite:///{tmp_path}/q.db"},
        task_time_limit=30,
    )
    assert (app.conf.task_default_queue, app.conf.task_time_limit) == ("web", 30.0)
    assert app.engine.url.database == f"{tmp_path}/q.db"


def test_the_newest_celery_app_is_current() -> None:
    from sqlqueue.shared import get_current_app as current_app

    first = Celery("one")
    assert current_app() is first
    Celery("two", set_as_current=False)
    assert current_app() is first


# -- the database, found on first use --------------------------------------------------------


def test_the_database_comes_from_settings_read_after_the_app_was_built(
    project: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SQLQUEUE_DATABASE_URL", "sqlite:///not-this-one.db")
    write(project, {"lazyconf.py": f"CELERY_BROKER_URL = {db_url!r}\nDEBUG = True\n"})
    app = Celery("proj")
    app.config_from_object("lazyconf", namespace="CELERY")

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(1, 2)
    assert on(app, db_url)
    assert app.store.get_job(result.id) is not None
    app.engine.dispose()


def test_without_any_url_the_app_uses_sqlqueues_own_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "DJANGO_SETTINGS_MODULE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SQLQUEUE_DATABASE_URL", f"sqlite:///{tmp_path}/env.db")
    assert Celery("proj").engine.url.database == f"{tmp_path}/env.db"
    monkeypatch.delenv("SQLQUEUE_DATABASE_URL")
    assert Celery("proj").engine.url.database == "sqlqueue.db"


def test_a_broker_only_url_in_celerys_environment_variable_is_refused_on_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://localhost:6379/0")
    app = Celery("proj")
    with pytest.raises(ConfigurationError, match=r"CELERY_BROKER_URL=.*not a database URL"):
        app.engine  # noqa: B018


# -- settings --------------------------------------------------------------------------------


def test_conf_update_takes_celerys_names_and_checks_their_values(celery: Celery) -> None:
    celery.conf.update(
        {"task_default_queue": "default2", "result_expires": timedelta(hours=2)},
        task_time_limit=60,
        task_soft_time_limit=50,
        task_default_priority=5,
        worker_concurrency=3,
        worker_max_tasks_per_child=100,
        timezone="Europe/Paris",
        task_serializer="json",
        accept_content=["json"],
    )
    conf = celery.conf
    assert (conf.task_default_queue, conf.result_expires, conf.task_default_priority) == (
        "default2",
        7200.0,
        5,
    )
    assert (conf.task_time_limit, conf.task_soft_time_limit) == (60.0, 50.0)
    assert (conf.worker_concurrency, conf.worker_max_tasks_per_child) == (3, 100)
    assert conf.timezone == "Europe/Paris"
    celery.conf.result_expires = 0
    assert celery.conf.result_expires is None  # Celery's "never expire"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("timezone", "Mars/Olympus", "not a time zone"),
        ("worker_concurrency", 0, "1 or more"),
        ("task_time_limit", -1, "zero or more"),
        ("task_default_priority", 1000, "out of range"),
        ("result_expires", "1 day", "seconds"),
        ("task_always_eager", "yes", "True or False"),
        ("task_routes", 42, "task_routes takes a dict"),
        ("task_serializer", "pickle", "JSON only, never pickle"),
        ("accept_content", ["json", "yaml"], "JSON only"),
    ],
)
def test_a_bad_value_is_refused_and_nothing_is_set(
    celery: Celery, name: str, value: Any, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        celery.conf.update({"task_default_queue": "untouched", name: value})
    assert celery.conf.task_default_queue == "default"
    with pytest.raises(ConfigurationError, match=message):
        setattr(celery.conf, name, value)


def test_a_lowercase_name_unknown_to_both_is_refused_with_the_nearest(celery: Celery) -> None:
    with pytest.raises(ConfigurationError, match="did you mean 'task_routes'"):
        celery.conf.update(task_rutes={})
    with pytest.raises(ConfigurationError, match="did you mean 'worker_concurrency'"):
        celery.conf.worker_concurency = 4
    with pytest.raises(AttributeError, match="did you mean 'task_time_limit'"):
        celery.conf.task_time_limt  # noqa: B018


def test_using_conf_as_celerys_mapping_says_to_read_attributes(celery: Celery) -> None:
    with pytest.raises(AttributeError, match=r"not a mapping.*app\.conf\.task_routes") as raised:
        celery.conf.get("task_routes")
    assert not str(raised.value).endswith(";")
    with pytest.raises(TypeError, match=r"app\.conf\['task_routes'\]: app\.conf is not a mapping"):
        celery.conf["task_routes"]


def test_the_warning_of_settings_read_later_names_the_line_that_gave_them(db_url: str) -> None:
    app = Celery("proj", broker=db_url)
    app.config_from_object({"task_acks_late": True})
    given_at = sys._getframe().f_lineno - 1
    with pytest.warns(CeleryCompatibilityWarning, match="task_acks_late") as caught:
        app.conf  # noqa: B018 - read on first use, as a worker or a send would
    assert (caught[0].filename, caught[0].lineno) == (__file__, given_at)


def test_settings_celery_has_but_that_do_not_apply_are_accepted_with_one_warning(
    celery: Celery,
) -> None:
    with pytest.warns(CeleryCompatibilityWarning) as caught:
        celery.conf.update(
            task_acks_late=True,
            worker_prefetch_multiplier=1,
            broker_transport_options={"visibility_timeout": 3600},
            task_reject_on_worker_lost=True,
        )
    assert len(caught) == 1
    message = str(caught[0].message)
    for name in ("task_acks_late", "worker_prefetch_multiplier", "broker_transport_options"):
        assert name in message
    assert "leased" in message and "no broker" in message
    assert caught[0].filename == __file__
    assert celery.conf.task_acks_late is True  # reads back as set
    with pytest.warns(CeleryCompatibilityWarning, match="task_track_started"):
        celery.conf.task_track_started = True


def test_the_same_checks_hold_for_a_plain_sqlqueue_app(app: SQLQueue) -> None:
    with pytest.warns(CeleryCompatibilityWarning, match=r"broker_url \(SQLQueue takes"):
        app.conf.update(broker_url="postgresql://elsewhere/db")
    with pytest.raises(ConfigurationError, match="did you mean 'task_default_queue'"):
        app.conf.task_defualt_queue = "x"


def test_uppercase_keys_of_a_web_framework_are_ignored(celery: Celery) -> None:
    flask_config = {
        "SECRET_KEY": "s3cret",
        "DEBUG": True,
        "S3_BUCKET": "uploads",
        "SQLALCHEMY_DATABASE_URI": "sqlite://",
        "task_default_queue": "from-flask",
    }
    celery.conf.update(flask_config)
    assert celery.conf.task_default_queue == "from-flask"
    with pytest.raises(AttributeError):
        celery.conf.SECRET_KEY  # noqa: B018


def test_celerys_old_names_are_read_as_the_new_ones(celery: Celery) -> None:
    celery.conf.update(
        CELERY_ALWAYS_EAGER=True,
        CELERY_EAGER_PROPAGATES_EXCEPTIONS=True,
        CELERYD_CONCURRENCY=5,
        CELERYD_TASK_TIME_LIMIT=20,
        CELERY_TASK_RESULT_EXPIRES=60,
        CELERY_DEFAULT_QUEUE="old",
        CELERY_ROUTES={"a.*": {"queue": "a"}},
    )
    conf = celery.conf
    assert conf.task_always_eager and conf.task_eager_propagates
    assert (conf.worker_concurrency, conf.task_time_limit) == (5, 20.0)
    assert (conf.result_expires, conf.task_default_queue) == (60.0, "old")
    assert conf.task_routes == {"a.*": {"queue": "a"}}
    with pytest.warns(CeleryCompatibilityWarning, match="task_acks_late"):
        celery.conf.update(CELERY_ACKS_LATE=True)
    with pytest.raises(ConfigurationError, match="did you mean 'CELERY_ALWAYS_EAGER'"):
        celery.conf.update(CELERY_ALWAYS_EAGR=True)


def test_config_from_object_reads_a_module_path_a_module_a_dict_and_an_object(
    project: Path, celery: Celery
) -> None:
    write(
        project,
        {
            "celeryconfig.py": """
                import os
                from datetime import timedelta

                def route_task(name, args, kwargs, options, task=None, **kw):
                    return None

                task_default_queue = "from-module"
                result_expires = timedelta(minutes=5)
                task_routes = (route_task,)
            """,
        },
    )
    celery.config_from_object("celeryconfig")
    assert (celery.conf.task_default_queue, celery.conf.result_expires) == ("from-module", 300.0)

    celery.config_from_object({"task_default_queue": "from-dict"})
    assert celery.conf.task_default_queue == "from-dict"

    class Config:
        task_default_queue = "from-class"

    celery.config_from_object(Config)
    assert celery.conf.task_default_queue == "from-class"

    module = types.ModuleType("made")
    module.task_default_queue = "from-module-object"  # type: ignore[attr-defined]
    celery.config_from_object(module)
    assert celery.conf.task_default_queue == "from-module-object"


def test_a_thread_reading_conf_while_another_reads_the_pending_settings_waits_for_them(
    celery: Celery,
) -> None:
    reading, release = threading.Event(), threading.Event()

    class Slow:  # a settings object still being read by the first thread
        @property
        def task_default_queue(self) -> str:
            reading.set()
            release.wait()
            return "web"

    celery.config_from_object(Slow())
    first = threading.Thread(target=lambda: celery.conf)
    first.start()
    reading.wait()
    seen: list[str] = []
    second = threading.Thread(target=lambda: seen.append(celery.conf.task_default_queue))
    second.start()
    release.set()
    first.join()
    second.join()
    assert seen == ["web"]


def test_settings_that_failed_to_read_are_refused_again_not_forgotten(db_url: str) -> None:
    # Forgotten, the next read would use the defaults: jobs sent to sqlite:///sqlqueue.db.
    celery = Celery("proj")  # no database is opened: the settings never read
    celery.config_from_object({"task_rutes": {}, "broker_url": db_url})
    for _ in range(2):
        with pytest.raises(ConfigurationError, match="did you mean 'task_routes'"):
            celery.conf  # noqa: B018


def test_config_from_object_with_a_namespace_reads_prefixed_keys_of_module_attribute(
    project: Path, celery: Celery
) -> None:
    write(
        project,
        {
            "website/__init__.py": "",
            "website/conf.py": """
                class _Settings:
                    DEBUG = True
                    INSTALLED_APPS = ["shop"]
                    CELERY_TASK_ROUTES = {"shop.*": {"queue": "shop"}}
                    CELERY_TASK_TIME_LIMIT = 30
                    CELERY_WORKER_CONCURRENCY = 2

                settings = _Settings()
            """,
        },
    )
    celery.config_from_object("website.conf:settings", namespace="CELERY")
    assert celery.conf.task_routes == {"shop.*": {"queue": "shop"}}
    assert (celery.conf.task_time_limit, celery.conf.worker_concurrency) == (30.0, 2)


def test_only_attributes_that_may_be_settings_are_read_from_an_object(celery: Celery) -> None:
    # Django warns when a deprecated setting is read: Celery reads only its own names.
    class DjangoLike:
        CELERY_TASK_DEFAULT_QUEUE = "namespaced"

        @property
        def EMAIL_BACKEND(self) -> str:
            raise AssertionError("read a setting that is not Celery's")

    celery.config_from_object(DjangoLike(), namespace="CELERY", force=True)
    assert celery.conf.task_default_queue == "namespaced"
    celery.config_from_object(DjangoLike(), force=True)  # no namespace: old names, read too
    assert celery.conf.task_default_queue == "namespaced"


def test_an_old_name_under_a_namespace_is_refused_with_its_new_spelling(db_url: str) -> None:
    celery = Celery("proj", broker=db_url)  # no database is opened: the settings never read
    celery.config_from_object({"CELERY_ALWAYS_EAGER": True}, namespace="CELERY")
    with pytest.raises(ConfigurationError, match="did you mean 'CELERY_TASK_ALWAYS_EAGER'"):
        celery.conf  # noqa: B018 - the settings are read on first use, as in Celery


def test_a_missing_config_module_is_an_error_unless_silent(db_url: str) -> None:
    celery = Celery("proj", broker=db_url)  # no database is opened: the settings never read
    celery.config_from_object("no_such_celeryconfig", force=False)
    for _ in range(2):  # at each read, not only the first
        with pytest.raises(ModuleNotFoundError):
            celery.conf  # noqa: B018
    quiet = Celery("proj", broker=db_url)
    quiet.config_from_object("no_such_celeryconfig", silent=True, force=True)
    assert quiet.conf.task_default_queue == "default"


# -- task_routes -----------------------------------------------------------------------------


def router(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> Any:
    if name == "t.add" and args and args[0] > 100:
        return {"queue": "big", "priority": 7}
    return None


@pytest.mark.parametrize(
    ("routes", "queue"),
    [
        ({"t.*": {"queue": "by-glob"}}, "by-glob"),
        ({"t.add": "by-name", "t.*": "by-glob"}, "by-name"),
        ({re.compile(r"t\.\w+"): {"queue": "by-regex"}}, "by-regex"),
        ([{"other.*": "no"}, {"t.*": {"queue": "second-dict"}}], "second-dict"),
        (router, "big"),
        ((router, {"t.*": "fallback"}), "big"),
        (f"{__name__}.router", "big"),
    ],
)
def test_task_routes_in_celerys_forms_send_the_job_to_the_routed_queue(
    celery: Celery, routes: Any, queue: str
) -> None:
    @celery.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    celery.conf.task_routes = routes
    result = add.delay(500, 1)
    job = celery.store.get_job(result.id)
    assert job is not None and job.queue == queue


def test_routes_fill_only_what_the_call_and_the_task_leave_open(celery: Celery) -> None:
    celery.conf.update(task_routes={"t.*": {"queue": "routed", "priority": 3}})

    @celery.task(name="t.plain")
    def plain() -> None: ...

    @celery.task(name="t.own", queue="own")
    def own() -> None: ...

    def queue_of(result: Any) -> tuple[str, int]:
        job = celery.store.get_job(result.id)
        assert job is not None
        return job.queue, job.priority

    assert queue_of(plain.delay()) == ("routed", 3)
    assert queue_of(plain.apply_async(queue="given", priority=1)) == ("given", 1)
    assert queue_of(own.delay()) == ("own", 3)  # the task's queue beats the route, as in Celery
    assert queue_of(celery.send_task("t.unregistered")) == ("routed", 3)
    celery.conf.task_routes = router
    assert queue_of(plain.delay()) == ("default", 0)  # no route: the defaults


# -- autodiscover_tasks ----------------------------------------------------------------------


def test_autodiscover_tasks_imports_each_packages_tasks_module_when_a_worker_starts(
    project: Path, celery: Celery
) -> None:
    write(
        project,
        {
            "billing/__init__.py": "",
            "billing/tasks.py": "import sqlqueue.shared as s\ns.get_current_app().seen = 'billing'\n",
            "notasks/__init__.py": "",
        },
    )
    celery.autodiscover_tasks(["billing", "notasks"])
    assert "billing.tasks" not in sys.modules
    celery.import_default_modules()
    assert "billing.tasks" in sys.modules


def test_a_task_module_that_fails_to_import_raises_its_own_error(
    project: Path, celery: Celery
) -> None:
    write(
        project,
        {"broken/__init__.py": "", "broken/tasks.py": "import not_installed_dependency\n"},
    )
    with pytest.raises(ModuleNotFoundError, match="not_installed_dependency") as raised:
        celery.autodiscover_tasks(["broken"], force=True)
    assert "while autodiscover_tasks imported broken.tasks" in "".join(raised.value.__notes__)


def test_include_modules_are_imported_when_a_worker_starts(project: Path, db_url: str) -> None:
    write(project, {"included.py": "VALUE = 1\n"})
    app = Celery("proj", broker=db_url, include=["included"])
    assert "included" not in sys.modules
    app.import_default_modules()
    assert "included" in sys.modules
    app.engine.dispose()


def test_max_tasks_per_child_is_refused_for_a_thread_pool() -> None:
    with pytest.raises(InvalidOptionError, match="needs pool='process'"):
        WorkerOptions(max_tasks_per_child=10)
    with pytest.raises(InvalidOptionError, match="1 or more"):
        WorkerOptions(max_tasks_per_child=0, pool="process", app_spec="tasks")


# -- finding the app with -A -----------------------------------------------------------------


def test_dash_a_finds_the_app_of_proj_celery_as_celery_does(project: Path) -> None:
    write(
        project,
        {
            "proj/__init__.py": "",
            "proj/celery.py": "from sqlqueue import Celery\napp = Celery('proj')\n",
            "proj2/__init__.py": "from .celery import app as celery_app\n",
            "proj2/celery.py": "from sqlqueue import Celery\napp = Celery('proj2')\n",
        },
    )
    assert load_app("proj").main == "proj"  # type: ignore[attr-defined]
    assert load_app("proj2").main == "proj2"  # type: ignore[attr-defined]
    assert load_app("proj.celery.app").main == "proj"  # type: ignore[attr-defined]


def test_the_settings_table_of_docs_celery_md_lists_every_celery_setting() -> None:
    from sqlqueue.celery_names import CELERY_SETTINGS

    text = (Path(__file__).parents[1] / "docs" / "celery.md").read_text()
    table = text.split("### Settings\n", 1)[1]
    assert sorted(name for name in CELERY_SETTINGS if f"`{name}`" not in table) == []
