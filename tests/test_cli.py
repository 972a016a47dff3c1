"""The `sqlqueue` command as a user meets it: a mistake gets one line saying what failed and
what to do, and click's exit codes (2: the command line is wrong, 1: what it asked failed)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import sqlqueue_command

from sqlqueue.migrate import VERSION_TABLE


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*sqlqueue_command(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def assert_clean_error(completed: subprocess.CompletedProcess[str], code: int) -> str:
    """The command exited with ``code`` and one error line, no traceback; that line."""
    output = completed.stdout + completed.stderr
    assert completed.returncode == code, output
    assert "Traceback" not in output
    *_, last = output.strip().splitlines()
    assert last.startswith("Error: "), output  # the message is the last line, whole
    assert output.count("Error: ") == 1, output
    return last


def run_burst_worker(db_url: str, *args: str) -> str:
    """Run `sqlqueue worker -A tasks --burst` with these options; its output, once it exited 0."""
    completed = subprocess.run(
        [*sqlqueue_command(), "worker", "-A", "tasks", "--burst", *args],
        cwd=Path(__file__).parent,
        env={**os.environ, "SQLQUEUE_DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    return output


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_migrate_against_an_unreachable_server_says_what_to_check() -> None:
    url = f"postgresql://someone:secret@127.0.0.1:{unused_port()}/app"

    error = assert_clean_error(run_cli("migrate", "--url", url), 1)

    assert "Cannot migrate postgresql+psycopg://someone:***@127.0.0.1" in error
    assert "Connection refused" in error
    assert "Check the URL" in error
    assert "secret" not in error


def test_migrate_where_no_database_file_can_be_made_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-folder' / 'queue.db'}"

    error = assert_clean_error(run_cli("migrate", "--url", url), 1)

    assert "unable to open database file" in error


def test_migrate_a_database_of_a_newer_sqlqueue_says_to_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    assert run_cli("migrate", "--url", url).returncode == 0
    with sa.create_engine(url).begin() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))

    error = assert_clean_error(run_cli("migrate", "--url", url), 1)

    assert "'9999'" in error
    assert "newer sqlqueue" in error


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql+asyncpg://db/app", "asyncpg"),
        ("postgresql+psycopg2://db/app", "psycopg2"),
        ("sqlite+aiosqlite:///queue.db", "sqlite:///"),
        ("postgresql://db/app?prepare_threshold=off", "give prepare_threshold=none"),
    ],
)
def test_a_url_with_a_driver_sqlqueue_does_not_use_is_refused(url: str, says: str) -> None:
    error = assert_clean_error(run_cli("migrate", "--url", url), 1)

    assert says in error


@pytest.mark.parametrize(
    ("listen_url", "says"),
    [
        ("sqlite:///other.db", "listen_url must be a PostgreSQL URL (postgresql://…)"),
        ("postgresql://127.0.0.1/queue", "listen_url is for PostgreSQL's LISTEN; workers on "),
    ],
)
def test_a_listen_url_that_cannot_listen_is_refused(
    tmp_path: Path, listen_url: str, says: str
) -> None:
    completed = subprocess.run(
        [*sqlqueue_command(), "worker", "-A", "tasks", "--burst", "--listen-url", listen_url],
        cwd=Path(__file__).parent,
        env={**os.environ, "SQLQUEUE_DATABASE_URL": f"sqlite:///{tmp_path / 'queue.db'}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert says in assert_clean_error(completed, 1)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["retry"], "Say which jobs to retry"),
        (["retry", ""], "'' is not a job id"),
        (["migrate", "-A", "tasks", "--url", "sqlite:///x.db"], "not both"),
        (["worker", "-A", "tasks", "--lease", "5", "--visibility-timeout", "5"], "not both"),
        # celery worker's options, as Procfiles write them, say the sqlqueue way
        (["worker", "-A", "tasks", "--pool", "prefork"], "give --pool process"),
        (["worker", "-A", "tasks", "-P", "solo"], "-P is an option of celery worker"),
        (
            ["worker", "-A", "tasks", "-S", "django"],
            "periodic tasks come from app.conf.beat_schedule",
        ),
        (["worker", "-A", "tasks", "-s", "celerybeat-schedule"], "state in the database table"),
        (["worker", "-A", "tasks", "-n", "w1@%h"], "a worker names itself"),
        (["worker", "-A", "tasks", "-Ofair"], "sizes its prefetch itself"),
        (["worker", "-A", "tasks", "--bogus"], "No such option '--bogus'"),
        (["beat", "-A", "tasks", "-s", "celerybeat-schedule"], "-s is an option of celery beat"),
        (
            ["beat", "-A", "tasks", "-S", "django"],
            "periodic tasks come from app.conf.beat_schedule",
        ),
        (["beat", "-A", "tasks", "--max-interval", "5"], "sleeps until the next tick"),
        (["beat", "-A", "tasks", "--bogus"], "No such option '--bogus'"),
    ],
)
def test_a_wrong_command_line_is_a_usage_error(
    db_url: str, args: list[str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SQLQUEUE_DATABASE_URL", db_url)

    completed = run_cli(*args)

    assert says in assert_clean_error(completed, 2)
    assert "Usage: sqlqueue" in completed.stderr


def test_a_file_name_given_to_dash_a_says_to_give_the_module(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text("from sqlqueue import SQLQueue\n\napp = SQLQueue()\n")

    completed = subprocess.run(
        [*sqlqueue_command(), "worker", "-A", "tasks.py"],
        cwd=tmp_path,
        env={**os.environ, "SQLQUEUE_DATABASE_URL": f"sqlite:///{tmp_path / 'queue.db'}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert "-A takes a module's name, not its file's; give -A tasks." in assert_clean_error(
        completed, 2
    )


@pytest.mark.parametrize("command", ["prune", "retry --task t.add"])
def test_maintenance_against_an_unreachable_server_is_one_line(command: str) -> None:
    url = f"postgresql://someone@127.0.0.1:{unused_port()}/app"

    error = assert_clean_error(run_cli(*command.split(), "--url", url), 1)

    assert "Connection refused" in error


def test_the_first_releases_name_for_the_lease_still_works_and_says_the_new_one(
    db_url: str,
) -> None:
    output = run_burst_worker(db_url, "--visibility-timeout", "7")

    assert "Warning: --visibility-timeout is now --lease" in output
    assert "lease=7s" in output


@pytest.mark.parametrize("level", ["critical", "FATAL", "warning"])
def test_the_worker_takes_celerys_log_levels(db_url: str, level: str) -> None:
    output = run_burst_worker(db_url, "-l", level)

    assert "worker started" not in output  # an INFO line, below the level asked for
