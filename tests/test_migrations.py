"""sqlqueue's alembic migrations (API.md §6): they build exactly ``sqlqueue.schema.metadata``,
keep their own version table beside an application's, undo cleanly, and ship in the wheel.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from conftest import empty_mysql, on_a_terminal
from sqlalchemy.engine import Engine

import sqlqueue
import sqlqueue.migrate
from sqlqueue import DatabaseError, JobStatus, SQLQueue
from sqlqueue.schema import jobs, metadata

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN_DIR = Path(sys.executable).parent
COMMAND_TIMEOUT = 60.0
"""Seconds a migration command run as a subprocess may take."""

VERSION_TABLE = "sqlqueue_alembic_version"
HEAD = ScriptDirectory(str(sqlqueue.migrate.migrations_directory())).get_current_head()
"""The newest revision in migrations/versions."""

APP_REVISION = "app_0042"
"""A revision of the application's own alembic history, which sqlqueue must never touch."""


def include_name(name: str | None, type_: str, _parent: Any) -> bool:
    """The filter of migrations/env.py: only sqlqueue_ tables are sqlqueue's to compare."""
    return type_ != "table" or (name or "").startswith("sqlqueue_")


def schema_differences(engine: Engine) -> list[Any]:
    """What autogenerate would change to make the database match ``schema.metadata``."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_name": include_name,
                "version_table": VERSION_TABLE,
                "compare_type": True,
                "compare_server_default": True,
            },
        )
        return list(compare_metadata(context, metadata))


def table_names(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def versions(engine: Engine, table: str = VERSION_TABLE) -> list[str]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text(f"SELECT version_num FROM {table}"))
        return sorted(row[0] for row in rows)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def fresh_postgres_url(postgres_server: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (psycopg 3 URL), dropped after the test."""
    name = f"sqlqueue_migrations_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = sa.make_url(postgres_server).set(drivername="postgresql+psycopg", database=name)
    yield url.render_as_string(hide_password=False)
    with psycopg.connect(postgres_server, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a database with no table at all: a new SQLite file, or a new PostgreSQL
    database."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "empty.db")
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
def empty_engine(empty_url: str) -> Iterator[Engine]:
    """A plain SQLAlchemy engine, as an application builds one, on an empty database."""
    engine = sa.create_engine(empty_url)
    yield engine
    engine.dispose()


def test_upgrade_on_an_empty_database_builds_exactly_the_schema_metadata(
    empty_engine: Engine,
) -> None:
    sqlqueue.migrate.upgrade(empty_engine)

    assert schema_differences(empty_engine) == []
    assert table_names(empty_engine) == {*metadata.tables, VERSION_TABLE}
    assert versions(empty_engine) == [HEAD]
    indexes = {index["name"] for index in sa.inspect(empty_engine).get_indexes("sqlqueue_jobs")}
    assert indexes == {index.name for index in jobs.indexes}
    assert {"ix_sqlqueue_jobs_ready", "ix_sqlqueue_jobs_leased"} <= indexes
    if empty_engine.dialect.name == "sqlite":  # the claim reads its indexes in its order
        with empty_engine.connect() as connection:
            claim_indexes = connection.execute(
                sa.text("SELECT sql FROM sqlite_master WHERE name LIKE 'ix_sqlqueue_jobs_ready%'")
            ).scalars()
            assert ["priority DESC" in sql for sql in claim_indexes] == [True, True]


def test_the_comparison_notices_a_database_that_differs_from_the_metadata(
    empty_engine: Engine,
) -> None:
    # The drift test above is only worth something if the comparison can fail.
    sqlqueue.migrate.upgrade(empty_engine)
    with empty_engine.begin() as connection:
        connection.execute(sa.text("DROP INDEX ix_sqlqueue_jobs_leased"))

    differences = schema_differences(empty_engine)

    assert [difference[0] for difference in differences] == ["add_index"]
    assert differences[0][1].name == "ix_sqlqueue_jobs_leased"


@pytest.mark.postgresql
def test_the_jobs_table_is_vacuumed_early_on_postgresql(fresh_postgres_url: str) -> None:
    engine = sa.create_engine(fresh_postgres_url)

    def options() -> list[str] | None:
        with engine.connect() as connection:
            return connection.execute(
                sa.text("SELECT reloptions FROM pg_class WHERE relname = 'sqlqueue_jobs'")
            ).scalar_one()

    sqlqueue.migrate.upgrade(engine)
    assert "autovacuum_vacuum_scale_factor=0.01" in (options() or [])
    sqlqueue.migrate.downgrade(engine, "0002")
    assert options() is None
    engine.dispose()


@pytest.mark.postgresql
def test_the_claim_function_is_held_to_its_plan_on_postgresql(fresh_postgres_url: str) -> None:
    engine = sa.create_engine(fresh_postgres_url)

    def settings() -> list[str] | None:
        with engine.connect() as connection:
            return connection.execute(
                sa.text("SELECT proconfig FROM pg_proc WHERE proname = 'sqlqueue_claim'")
            ).scalar_one()

    sqlqueue.migrate.upgrade(engine)
    assert settings() == [
        "enable_bitmapscan=off",
        "enable_sort=off",
        "enable_hashjoin=off",
        "enable_mergejoin=off",
        "jit=off",
    ]
    sqlqueue.migrate.downgrade(engine, "0005")
    assert settings() == [
        "enable_bitmapscan=off",
        "enable_sort=off",
        "enable_hashjoin=off",
        "enable_mergejoin=off",
    ]
    sqlqueue.migrate.downgrade(engine, "0004")
    assert settings() == ["enable_bitmapscan=off", "enable_sort=off"]
    engine.dispose()


NEW_IN_0006 = {
    "ix_sqlqueue_jobs_ready_in_queue",
    "ix_sqlqueue_jobs_deferred",
    "ix_sqlqueue_jobs_deferred_in_queue",
    "ix_sqlqueue_jobs_expiring",
}


NEW_IN_0008 = {"ix_sqlqueue_jobs_workflow", "ix_sqlqueue_jobs_group"}
NEW_IN_0009 = {"ix_sqlqueue_jobs_unique"}
NEW_IN_0011 = {"ix_sqlqueue_jobs_outcomes"}
NEW_IN_0012 = {"ix_sqlqueue_jobs_limited", "ix_sqlqueue_jobs_limited_running"}


def test_downgrade_from_0006_leaves_the_0005_schema_and_a_working_claim(
    empty_url: str, empty_engine: Engine
) -> None:
    sqlqueue.migrate.upgrade(empty_engine)
    sqlqueue.migrate.downgrade(empty_engine, "0005")

    indexes = {index["name"] for index in sa.inspect(empty_engine).get_indexes("sqlqueue_jobs")}
    assert indexes == (
        {index.name for index in jobs.indexes}
        - NEW_IN_0006
        - NEW_IN_0008
        - NEW_IN_0009
        - NEW_IN_0011
        - NEW_IN_0012
    )
    if empty_engine.dialect.name == "postgresql":
        with empty_engine.connect() as connection:
            language = connection.execute(
                sa.text(
                    "SELECT lanname FROM pg_proc JOIN pg_language ON prolang = pg_language.oid"
                    " WHERE proname = 'sqlqueue_claim'"
                )
            ).scalar_one()
        assert language == "sql"
    # ...and up again, to a working claim.
    sqlqueue.migrate.upgrade(empty_engine)
    app = SQLQueue(empty_url)
    job_id = app.send_task("tasks.add", args=[1, 2], queue="rare").id
    assert [job.id for job in app.store.claim_jobs(10, ["rare"], "w", 30)] == [job_id]
    app.engine.dispose()


def test_0007_keeps_the_ids_of_existing_jobs_and_takes_ids_callers_choose(
    empty_url: str, empty_engine: Engine
) -> None:
    sqlqueue.migrate.upgrade(empty_engine, "0006")
    old_id = str(uuid.uuid4())
    # As 0006's code wrote it: SQLAlchemy's Uuid stores 32 hex digits on SQLite.
    stored = old_id.replace("-", "") if empty_engine.dialect.name == "sqlite" else old_id
    with empty_engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO sqlqueue_jobs (id, task_name, queue, priority, args, kwargs, status,"
                " scheduled_at, created_at) VALUES (:id, 'tasks.add', 'default', 0, '[1, 2]',"
                " '{}', 'PENDING', :now, :now)"
            ),
            {"id": stored, "now": datetime.now(UTC)},
        )

    sqlqueue.migrate.upgrade(empty_engine)

    app = SQLQueue(empty_url)
    assert app.AsyncResult(old_id).status == "PENDING"
    chosen = app.send_task("tasks.add", args=[3, 4], task_id="order-42-receipt").id
    assert chosen == "order-42-receipt"
    claimed = {job.id for job in app.store.claim_jobs(10, None, "w", 30)}
    assert claimed == {old_id, chosen}
    sqlqueue.migrate.downgrade(empty_engine, "0007")
    for kept in (chosen, "order-42-receipt-sent-to-ann-at-noon"):  # the second: 36 characters
        if kept != chosen:
            app.send_task("tasks.add", args=[5, 6], task_id=kept)
        with pytest.raises(RuntimeError, match="cannot hold; delete them"):
            sqlqueue.migrate.downgrade(empty_engine, "0006")
        assert versions(empty_engine) == ["0007"]  # refused before changing anything
        with empty_engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM sqlqueue_jobs WHERE id = :id"), {"id": kept})
    sqlqueue.migrate.downgrade(empty_engine, "0006")
    with empty_engine.connect() as connection:
        assert connection.execute(sa.text("SELECT id FROM sqlqueue_jobs")).scalar_one() in (
            stored,
            uuid.UUID(old_id),
        )
    app.engine.dispose()


def test_0009_adds_unique_keys_and_undoes_cleanly(empty_url: str, empty_engine: Engine) -> None:
    sqlqueue.migrate.upgrade(empty_engine, "0008")
    app = SQLQueue(empty_url)
    before = app.send_task("tasks.add", args=[1, 2]).id

    sqlqueue.migrate.upgrade(empty_engine)
    assert schema_differences(empty_engine) == []
    first = app.send_task("tasks.add", args=[1, 2], unique_key="k")
    again = app.send_task("tasks.add", args=[1, 2], unique_key="k")
    assert (first.duplicate, again.duplicate, again.id) == (False, True, first.id)

    sqlqueue.migrate.downgrade(empty_engine, "0008")
    columns = {column["name"] for column in sa.inspect(empty_engine).get_columns("sqlqueue_jobs")}
    assert "unique_key" not in columns
    indexes = {index["name"] for index in sa.inspect(empty_engine).get_indexes("sqlqueue_jobs")}
    assert indexes == (
        {index.name for index in jobs.indexes} - NEW_IN_0009 - NEW_IN_0011 - NEW_IN_0012
    )
    with empty_engine.connect() as connection:
        ids = set(connection.execute(sa.text("SELECT id FROM sqlqueue_jobs")).scalars())
    assert ids == {before, first.id}  # the jobs stay, without their keys
    sqlqueue.migrate.upgrade(empty_engine)
    assert schema_differences(empty_engine) == []
    app.engine.dispose()


def test_0010_adds_the_schedules_table_and_undoes_cleanly(empty_engine: Engine) -> None:
    sqlqueue.migrate.upgrade(empty_engine, "0009")
    assert "sqlqueue_schedules" not in sa.inspect(empty_engine).get_table_names()

    sqlqueue.migrate.upgrade(empty_engine)
    assert schema_differences(empty_engine) == []
    sqlqueue.migrate.downgrade(empty_engine, "0009")
    assert "sqlqueue_schedules" not in sa.inspect(empty_engine).get_table_names()
    sqlqueue.migrate.upgrade(empty_engine)
    assert schema_differences(empty_engine) == []


def test_0011_adds_the_workers_table_and_the_outcomes_index_and_undoes_cleanly(
    empty_url: str, empty_engine: Engine
) -> None:
    sqlqueue.migrate.upgrade(empty_engine, "0010")
    app = SQLQueue(empty_url)
    before = app.send_task("tasks.add", args=[1, 2]).id

    sqlqueue.migrate.upgrade(empty_engine)
    assert schema_differences(empty_engine) == []

    sqlqueue.migrate.downgrade(empty_engine, "0010")
    assert "sqlqueue_workers" not in table_names(empty_engine)
    indexes = {index["name"] for index in sa.inspect(empty_engine).get_indexes("sqlqueue_jobs")}
    assert indexes == {index.name for index in jobs.indexes} - NEW_IN_0011 - NEW_IN_0012
    with empty_engine.connect() as connection:
        ids = set(connection.execute(sa.text("SELECT id FROM sqlqueue_jobs")).scalars())
    assert ids == {before}
    app.engine.dispose()


@pytest.mark.postgresql
def test_a_schema_without_the_claim_function_says_to_migrate(fresh_postgres_url: str) -> None:
    engine = sa.create_engine(fresh_postgres_url)
    sqlqueue.migrate.upgrade(engine, "0003")
    engine.dispose()
    app = SQLQueue(fresh_postgres_url)

    with pytest.raises(DatabaseError, match=r"older than this code .*run `sqlqueue migrate`"):
        app.store.claim_jobs(1, None, "w", 30)
    app.engine.dispose()


def test_version_table_is_sqlqueues_own(empty_engine: Engine) -> None:
    sqlqueue.migrate.upgrade(empty_engine)

    assert sqlqueue.migrate.VERSION_TABLE == VERSION_TABLE
    assert VERSION_TABLE in table_names(empty_engine)
    assert "alembic_version" not in table_names(empty_engine)
    assert all(name.startswith("sqlqueue_") for name in table_names(empty_engine))


def test_the_applications_own_alembic_version_table_is_left_alone(empty_engine: Engine) -> None:
    # Given an application with its own alembic history in the same database...
    with empty_engine.begin() as connection:
        connection.execute(
            sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        )
        connection.execute(sa.text(f"INSERT INTO alembic_version VALUES ('{APP_REVISION}')"))

    # ...sqlqueue's migrations go up and down beside it without touching it.
    sqlqueue.migrate.upgrade(empty_engine)
    assert versions(empty_engine, "alembic_version") == [APP_REVISION]
    assert versions(empty_engine) == [HEAD]
    assert schema_differences(empty_engine) == []

    sqlqueue.migrate.downgrade(empty_engine, "base")
    assert versions(empty_engine, "alembic_version") == [APP_REVISION]


def test_downgrade_to_base_removes_every_sqlqueue_table_but_the_version_table(
    empty_engine: Engine,
) -> None:
    with empty_engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE shop_orders (id INTEGER PRIMARY KEY)"))
    sqlqueue.migrate.upgrade(empty_engine)

    sqlqueue.migrate.downgrade(empty_engine, "base")

    remaining = table_names(empty_engine)
    assert {name for name in remaining if name.startswith("sqlqueue_")} == {VERSION_TABLE}
    assert versions(empty_engine) == []
    assert "shop_orders" in remaining


def test_upgrade_after_downgrade_to_base_builds_the_schema_again(empty_engine: Engine) -> None:
    sqlqueue.migrate.upgrade(empty_engine)
    sqlqueue.migrate.downgrade(empty_engine, "base")

    sqlqueue.migrate.upgrade(empty_engine)

    assert schema_differences(empty_engine) == []
    assert versions(empty_engine) == [HEAD]


def test_upgrade_twice_is_a_no_op(empty_engine: Engine) -> None:
    sqlqueue.migrate.upgrade(empty_engine)
    app = sqlqueue.SQLQueue(engine=empty_engine)
    job = app.send_task("tasks.add", args=[1, 2])

    sqlqueue.migrate.upgrade(empty_engine)

    assert versions(empty_engine) == [HEAD]
    assert schema_differences(empty_engine) == []
    assert table_names(empty_engine) == {*metadata.tables, VERSION_TABLE}
    # The queue's rows survive: the second upgrade changed nothing.
    assert job.status == "PENDING"
    with empty_engine.connect() as connection:
        count = connection.execute(sa.text("SELECT count(*) FROM sqlqueue_jobs")).scalar_one()
    assert count == 1


def test_constraints_autogenerate_does_not_compare_are_those_of_the_metadata(
    empty_engine: Engine,
) -> None:
    # compare_metadata() skips CHECK constraints and constraint names; look at them here.
    sqlqueue.migrate.upgrade(empty_engine)
    inspector = sa.inspect(empty_engine)

    checks = {check["name"] for check in inspector.get_check_constraints("sqlqueue_jobs")}
    expected_checks = {
        constraint.name
        for constraint in jobs.constraints
        if isinstance(constraint, sa.CheckConstraint)
    }
    assert checks == expected_checks == {"ck_sqlqueue_jobs_status"}
    assert inspector.get_pk_constraint("sqlqueue_jobs")["name"] == jobs.primary_key.name

    # The CHECK admits every status sqlqueue writes, and nothing else.
    app = sqlqueue.SQLQueue(engine=empty_engine)
    job_id = app.send_task("tasks.add", args=[1, 2]).id
    update = sa.text("UPDATE sqlqueue_jobs SET status = :status WHERE id = :id")
    for status in JobStatus:
        with empty_engine.begin() as connection:
            assert connection.execute(update, {"status": status.value, "id": job_id}).rowcount == 1
    with pytest.raises(sa.exc.IntegrityError), empty_engine.begin() as connection:
        connection.execute(update, {"status": "BOGUS", "id": job_id})


def run_command(
    command: list[str], *, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end (within ``COMMAND_TIMEOUT``); it must exit 0."""
    completed = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, (
        f"{' '.join(command)} exited {completed.returncode}:\n"
        f"{completed.stdout}\n{completed.stderr}"
    )
    return completed


@pytest.mark.parametrize(
    "scheme",
    [
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgresql),
    ],
)
def test_alembic_upgrade_head_from_the_repository_root_creates_the_table(
    scheme: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if scheme == "sqlite":
        url = sqlite_url(tmp_path / "from-alembic.db")
        given = url
    else:
        url = request.getfixturevalue("fresh_postgres_url")
        # What a user writes; migrations/env.py picks psycopg 3 for it.
        given = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    run_command(
        [str(BIN_DIR / "alembic"), "upgrade", "head"],
        cwd=REPO_ROOT,
        env={"SQLQUEUE_DATABASE_URL": given},
    )

    engine = sa.create_engine(url)
    try:
        assert table_names(engine) == {*metadata.tables, VERSION_TABLE}
        assert versions(engine) == [HEAD]
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


def test_alembic_check_finds_nothing_to_generate_after_upgrade_head(tmp_path: Path) -> None:
    env = {"SQLQUEUE_DATABASE_URL": sqlite_url(tmp_path / "checked.db")}
    alembic = str(BIN_DIR / "alembic")
    run_command([alembic, "upgrade", "head"], cwd=REPO_ROOT, env=env)

    completed = run_command([alembic, "check"], cwd=REPO_ROOT, env=env)

    assert "No new upgrade operations detected" in completed.stdout + completed.stderr


@pytest.mark.parametrize(
    "url",
    ["sqlite:///offline.db", "postgresql://user@db.invalid/app"],
    ids=["sqlite", "postgresql"],
)
def test_alembic_offline_sql_writes_only_sqlqueue_tables(url: str) -> None:
    # --sql renders the migration without connecting: the URL's host need not exist. On
    # SQLite, 0007 rebuilds the table, which needs the live database (it says so, below).
    target = "0006" if url.startswith("sqlite") else "head"
    completed = run_command(
        [str(BIN_DIR / "alembic"), "upgrade", target, "--sql"],
        cwd=REPO_ROOT,
        env={"SQLQUEUE_DATABASE_URL": url},
    )

    created = re.findall(r"CREATE TABLE (\w+)", completed.stdout)
    tables = [*metadata.tables] if target == "head" else ["sqlqueue_jobs"]
    assert sorted(created) == sorted([*tables, VERSION_TABLE])
    assert re.search(r"\balembic_version\b", completed.stdout) is None
    # The rendered script leaves the version table at the newest revision.
    stamps = re.findall(r"(?:VALUES \(|SET version_num=)'(\w+)'", completed.stdout)
    assert stamps[-1] == (HEAD if target == "head" else target)


def test_alembic_offline_sql_on_sqlite_says_to_migrate_on_the_live_database() -> None:
    completed = subprocess.run(
        [str(BIN_DIR / "alembic"), "upgrade", "head", "--sql"],
        cwd=REPO_ROOT,
        env={**os.environ, "SQLQUEUE_DATABASE_URL": "sqlite:///offline.db"},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )

    assert completed.returncode != 0
    assert "run `sqlqueue migrate`" in completed.stderr


@pytest.mark.parametrize(
    "scheme", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def test_sqlqueue_migrate_with_url_creates_the_table_and_says_so(
    scheme: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if scheme == "sqlite":
        url = sqlite_url(tmp_path / "from-cli.db")
        given = url
    else:
        url = request.getfixturevalue("fresh_postgres_url")
        given = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()

    completed = run_command([str(BIN_DIR / "sqlqueue"), "migrate", "--url", given], cwd=workdir)

    lines = completed.stdout.splitlines()
    assert len(lines) == 1, completed.stdout
    assert "sqlqueue schema is up to date" in lines[0]
    assert sa.make_url(url).database in lines[0]
    engine = sa.create_engine(url)
    try:
        assert table_names(engine) == {*metadata.tables, VERSION_TABLE}
        assert versions(engine) == [HEAD]
        assert schema_differences(engine) == []
    finally:
        engine.dispose()
    # The --url was used, not the default sqlite:///sqlqueue.db of the working directory.
    assert list(workdir.iterdir()) == []


def test_sqlqueue_migrate_without_url_uses_the_environment_variable(tmp_path: Path) -> None:
    path = tmp_path / "from-env.db"

    completed = run_command(
        [str(BIN_DIR / "sqlqueue"), "migrate"],
        cwd=tmp_path,
        env={"SQLQUEUE_DATABASE_URL": sqlite_url(path)},
    )

    assert str(path) in completed.stdout
    assert not (tmp_path / "sqlqueue.db").exists()
    engine = sa.create_engine(sqlite_url(path))
    try:
        assert versions(engine) == [HEAD]
    finally:
        engine.dispose()


def test_upgrade_says_which_step_runs_before_each(empty_engine: Engine) -> None:
    sqlqueue.migrate.upgrade(empty_engine, "0009")
    said: list[str] = []

    sqlqueue.migrate.upgrade(empty_engine, "0011", progress=said.append)

    assert [line.split()[1] for line in said] == ["0010", "0011"]
    assert said[0].endswith("(1 of 2)") and "sqlqueue_schedules" in said[0]
    assert said[1].endswith("(2 of 2)")
    assert versions(empty_engine) == ["0011"]
    said.clear()
    sqlqueue.migrate.upgrade(empty_engine, "0011", progress=said.append)
    assert said == []  # nothing to do, nothing said


def test_sqlqueue_migrate_shows_its_steps_on_a_terminal_only(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "steps.db")
    code, _stdout, shown = on_a_terminal("migrate", "--url", url, cwd=tmp_path)
    piped = run_command(
        [str(BIN_DIR / "sqlqueue"), "migrate", "--url", sqlite_url(tmp_path / "piped.db")],
        cwd=tmp_path,
    )

    assert code == 0
    assert f"migrating: {HEAD} " in shown and "migrating: 0001 " in shown
    assert "\r" not in piped.stdout + piped.stderr and "migrating" not in piped.stderr


def test_sqlqueue_migrate_twice_is_a_no_op(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "twice.db")
    command = [str(BIN_DIR / "sqlqueue"), "migrate", "--url", url]

    run_command(command, cwd=tmp_path)
    completed = run_command(command, cwd=tmp_path)

    assert "up to date" in completed.stdout
    engine = sa.create_engine(url)
    try:
        assert versions(engine) == [HEAD]
    finally:
        engine.dispose()


# --- the package under test is the built wheel ------------------------------------------------


def test_sqlqueue_is_imported_from_the_installed_wheel_not_the_checkout() -> None:
    installed = Path(sysconfig.get_paths()["purelib"]).resolve()
    package = Path(sqlqueue.__file__).resolve().parent

    assert package.is_relative_to(installed), f"sqlqueue imported from {package}"
    assert package != REPO_ROOT / "sqlqueue"


def test_the_wheel_ships_the_migrations_of_the_repository() -> None:
    package = Path(sqlqueue.__file__).resolve().parent
    shipped = sqlqueue.migrate.migrations_directory().resolve()

    assert shipped == package / "migrations"
    assert (shipped / "env.py").is_file()
    # `sqlqueue migrate` must run the very migrations `alembic upgrade head` runs.
    repository = REPO_ROOT / "migrations"
    expected = sorted(
        path.relative_to(repository).as_posix()
        for path in repository.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )
    found = sorted(
        path.relative_to(shipped).as_posix()
        for path in shipped.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )
    assert found == expected, "the installed wheel is stale: reinstall it (make install)"
    for name in expected:
        assert (shipped / name).read_bytes() == (repository / name).read_bytes(), (
            f"migrations/{name} differs from the installed wheel's: reinstall it (make install)"
        )


def test_0012_down_and_up_keeps_the_jobs_and_a_working_claim(
    empty_url: str, empty_engine: Engine
) -> None:
    sqlqueue.migrate.upgrade(empty_engine)
    app = SQLQueue(empty_url)

    @app.task(name="tasks.one", concurrency_limit=1)
    def one(n: int) -> None: ...

    one.delay_many([(1,), (2,)])
    plain = app.send_task("tasks.add", args=[1, 2]).id

    sqlqueue.migrate.downgrade(empty_engine, "0011")
    columns = {column["name"] for column in sa.inspect(empty_engine).get_columns("sqlqueue_jobs")}
    assert not {"limit_key", "concurrency_limit", "rate_interval"} & columns
    assert "sqlqueue_rate_limits" not in table_names(empty_engine)
    indexes = {index["name"] for index in sa.inspect(empty_engine).get_indexes("sqlqueue_jobs")}
    assert indexes == {index.name for index in jobs.indexes} - NEW_IN_0012
    if empty_engine.dialect.name == "postgresql":
        # 0011's claim again, which knows no limits: it takes all three jobs.
        with empty_engine.begin() as connection:
            taken = connection.execute(
                sa.text("SELECT id FROM sqlqueue_claim(10, 30, 'w', NULL)")
            ).scalars()
            assert len(list(taken)) == 3
            connection.execute(sa.text("UPDATE sqlqueue_jobs SET status = 'PENDING'"))

    sqlqueue.migrate.upgrade(empty_engine)
    assert schema_differences(empty_engine) == []
    # Jobs from before the upgrade have no limits; jobs sent after it have theirs.
    one.delay(3)
    taken = app.store.claim_jobs(10, None, "w", 30)
    assert len(taken) == 4  # the three from before, and one of the limited task
    assert plain in {job.id for job in taken}
    app.engine.dispose()


MYSQL_FORMS = {
    ("remove_index", "ix_sqlqueue_jobs_claim"),
    ("remove_index", "ix_sqlqueue_jobs_claim_in_queue"),
    ("remove_index", "ix_sqlqueue_jobs_unique"),
    ("add_index", "ix_sqlqueue_jobs_unique"),
    ("add_index", "ix_sqlqueue_jobs_ready"),
    ("add_index", "ix_sqlqueue_jobs_ready_in_queue"),
    ("remove_column", "claim_ready"),
    ("remove_column", "unique_unfinished"),
    ("remove_index", "ix_sqlqueue_jobs_limited"),
    ("remove_index", "ix_sqlqueue_jobs_limited_running"),
    ("add_index", "ix_sqlqueue_jobs_limited"),
    ("add_index", "ix_sqlqueue_jobs_limited_running"),
    ("remove_column", "limited_ready"),
    ("remove_column", "limited_running"),
    ("remove_table", "sqlqueue_limit_groups"),
}
"""Where MySQL's tables differ from the metadata, by design (migrations 0013 and 0014): its
claim, unique and limited indexes are led by generated columns, in place of the partial
indexes it lacks, and the groups of concurrency limits have rows to lock."""


def mysql_differences(engine: Engine) -> set[tuple[str, str]]:
    """``schema_differences`` by kind and name: ("add_index", Index), ("remove_column",
    schema, table, Column), ("remove_table", Table)."""
    return {
        (change[0], change[-1].name if change[0] == "remove_column" else change[1].name)
        for change in schema_differences(engine)
    }


def test_upgrade_on_mysql_builds_the_schema_metadata_but_for_its_own_forms(
    mysql_url: str,
) -> None:
    engine = sa.create_engine(mysql_url)
    try:
        # Times, ids, JSON and every other index match.
        assert mysql_differences(engine) == MYSQL_FORMS
        assert table_names(engine) == {*metadata.tables, VERSION_TABLE, "sqlqueue_limit_groups"}
        assert versions(engine) == [HEAD]
        # No sqlqueue before 0013 ran on MySQL: going below it is refused there (MySQL's DDL
        # commits as it goes: the revisions above 0013 are undone first).
        with pytest.raises(RuntimeError, match="from revision 0013 on"):
            sqlqueue.migrate.downgrade(engine, "0012")
        assert versions(engine) == ["0013"]
        sqlqueue.migrate.upgrade(engine)
        assert mysql_differences(engine) == MYSQL_FORMS
    finally:
        engine.dispose()


@pytest.mark.mysql
def test_0014_down_and_up_on_mysql_keeps_the_jobs_and_working_limits(mysql_url: str) -> None:
    # Given jobs with limits and unique keys sent at head, I expect 0014 undone to leave
    # MySQL's 0013 forms (no generated columns of limits, no groups' table, keys in the
    # table's collation), refused while two unfinished keys differ only in case, and done
    # again to take up the same jobs, limits and keys.
    empty_mysql(mysql_url)
    engine = sa.create_engine(mysql_url)
    app = SQLQueue(engine=engine)

    @app.task(name="t.one", concurrency_limit=1)
    def one(n: int) -> None: ...

    try:
        one.delay_many([(1,), (2,)])
        held = app.send_task("t.plain", unique_key="k")
        other_case = app.send_task("t.plain", unique_key="K")
        # Two unfinished jobs whose keys differ only in case: one key in 0013's collation.
        with pytest.raises(sa.exc.IntegrityError, match="ix_sqlqueue_jobs_unique"):
            sqlqueue.migrate.downgrade(engine, "0013")
        assert versions(engine) == ["0014"]
        assert mysql_differences(engine) == MYSQL_FORMS  # nothing of it was done
        other_case.revoke()
        sqlqueue.migrate.downgrade(engine, "0013")
        columns = {column["name"] for column in sa.inspect(engine).get_columns("sqlqueue_jobs")}
        assert {"limited_ready", "limited_running"}.isdisjoint(columns)
        assert "unique_unfinished" in columns
        assert "sqlqueue_limit_groups" not in table_names(engine)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM sqlqueue_jobs")).scalar_one() == 4
        sqlqueue.migrate.upgrade(engine)
        assert mysql_differences(engine) == MYSQL_FORMS
        assert app.send_task("t.plain", unique_key="k").id == held.id
        assert app.send_task("t.plain", unique_key="K").duplicate is False
        taken = app.store.claim_jobs(10, None, "w", 30)
        assert sorted(job.task_name for job in taken) == ["t.one", "t.plain", "t.plain"]
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM sqlqueue_jobs")
        engine.dispose()
