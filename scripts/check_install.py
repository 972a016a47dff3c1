"""Use an installed sqlqueue as a new user would, from a virtualenv holding one install only.

``make test-install`` builds the wheel, installs it into a fresh virtualenv per extra (none,
``async``, ``metrics``, ``dashboard``, ``django``, ``mysql``, and ``async,mysql`` together)
and runs this script with that virtualenv's Python: the console script,
``sqlqueue migrate`` on a new SQLite file, a job sent and run by a burst worker, and what the
extra adds (or, without it, the error that names it). It exits 1 at the first check that
fails, saying which.

    python scripts/check_install.py bare|async|metrics|dashboard|django|mysql|async,mysql
"""

from __future__ import annotations

import asyncio
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/mysql"
"""The server of the MySQL check unless $SQLQUEUE_TEST_MARIADB_URL names one (as for the
test suite)."""

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
"""The server of the PostgreSQL check unless $SQLQUEUE_TEST_POSTGRES_URL names one (as for
the test suite)."""

BIN = Path(sys.executable).parent
"""The virtualenv's scripts: ``sqlqueue`` and ``django-admin`` as the install made them."""

TASKS_MODULE = """
from sqlqueue import SQLQueue

app = SQLQueue({url!r})


@app.task
def add(x, y):
    return x + y
"""

DJANGO_SETTINGS = """
SECRET_KEY = "install-check"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "sqlqueue.contrib.django",
    "checkapp",
]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {path!r}}}}}
"""

DJANGO_TASKS = """
from sqlqueue.contrib.django import app


@app.task
def add(x, y):
    return x + y
"""


class CheckFailed(Exception):
    """One check did not give what a user would expect."""


def run(args: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command of the virtualenv; its output, or CheckFailed with it."""
    done = subprocess.run(
        args,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    if done.returncode != 0 or "Traceback" in output:
        raise CheckFailed(f"`{' '.join(args)}` exited {done.returncode}:\n{output}")
    print(f"ok: {shlex.join([Path(args[0]).name, *args[1:]])}")
    return output


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)
    print(f"ok: {what}")


def check_core(work: Path) -> Any:
    """The console script, the migration, and one job through a burst worker; the tasks
    module, for the extra's own checks."""
    sqlqueue = str(BIN / "sqlqueue")
    expect("worker" in run([sqlqueue, "--help"], work), "sqlqueue --help lists the worker")
    url = f"sqlite:///{work / 'queue.db'}"
    run([sqlqueue, "migrate", "--url", url], work)
    (work / "checktasks.py").write_text(TASKS_MODULE.format(url=url))
    sys.path.insert(0, str(work))
    import checktasks  # type: ignore[import-not-found]  # written just above

    result = checktasks.add.delay(2, 3)
    run([sqlqueue, "worker", "-A", "checktasks", "--burst", "--concurrency", "1"], work)
    expect(result.get(timeout=10) == 5, "a burst worker ran the job sent with delay()")
    return checktasks


def check_bare(work: Path) -> None:
    """Without the async extra, async calls that need SQLAlchemy's asyncio say which extra to
    install, and one that does not (a send on the caller's psycopg.AsyncConnection) works."""
    from sqlqueue.exceptions import ConfigurationError

    if not check_greenlet_is_missing():
        print(
            "NOTE: greenlet is installed without the async extra (another dependency brought "
            "it), so SQLAlchemy's asyncio loads here: the checks below cannot prove that a bare "
            "install works, or refuses, without it."
        )
    tasks = check_core(work)
    result = tasks.add.delay(1, 1)
    for name, call in [
        ("adelay()", lambda: tasks.add.adelay(1, 2)),
        ("aget()", lambda: result.aget(timeout=1)),
    ]:
        try:
            asyncio.run(call())
        except ConfigurationError as exc:
            expect("sqlqueue[async]" in str(exc), f"{name} names the async extra")
        else:
            raise CheckFailed(f"{name} worked without the async extra")
    check_send_on_a_psycopg_async_connection(work)
    check_refused_without(
        "metrics", work, "worker", "-A", "checktasks", "--burst", "--metrics-port", "9108"
    )
    check_refused_without("dashboard", work, "dashboard", "-A", "checktasks")
    check_refused_without("mysql", work, "migrate", "--url", f"{mariadb_admin_url()}_none")


def check_refused_without(extra: str, work: Path, *args: str) -> None:
    """``sqlqueue ARGS`` without ``extra`` installed: exit 1, one line naming the extra."""
    done = subprocess.run(
        [str(BIN / "sqlqueue"), *args],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    expect(
        done.returncode == 1 and "Traceback" not in output and f"sqlqueue[{extra}]" in output,
        f"sqlqueue {' '.join(args)} without the {extra} extra names it "
        f"(exit {done.returncode}: {output})",
    )


def check_greenlet_is_missing() -> bool:
    """Whether greenlet, which SQLAlchemy's asyncio needs, is missing, as a bare install
    should leave it. Not a failure when present: SQLAlchemy 2.0 brought it on common
    platforms, and a future release may again; the bare checks then say what they cannot
    prove instead of passing as if they had."""
    try:
        import greenlet  # noqa: F401
    except ImportError:
        print("ok: greenlet is not installed, so SQLAlchemy's asyncio cannot load")
        return True
    return False


def check_send_on_a_psycopg_async_connection(work: Path) -> None:
    """aapply_async(connection=psycopg.AsyncConnection) on PostgreSQL: psycopg is a dependency of
    every install and the send uses none of SQLAlchemy's asyncio. Skipped, saying so, when
    no PostgreSQL server is reachable; a failure under CI=true, where one must be."""
    import psycopg
    from sqlalchemy import make_url

    from sqlqueue import SQLQueue
    from sqlqueue.exceptions import ConfigurationError

    server = os.environ.get("SQLQUEUE_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL
    try:
        psycopg.connect(server, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is unreachable at {server}: {exc}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            raise CheckFailed(message) from exc
        print(f"SKIPPED: aapply_async() on a psycopg.AsyncConnection: {message}")
        return
    name = f"sqlqueue_install_check_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        # A libpq URI, which is also a SQLAlchemy URL.
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
        run([str(BIN / "sqlqueue"), "migrate", "--url", url], work)
        app = SQLQueue(url)

        @app.task(name="checktasks.add")
        def add(x: int, y: int) -> int:
            return x + y

        async def send() -> str:
            async with await psycopg.AsyncConnection.connect(url) as conn:
                result = await add.aapply_async((6, 7), connection=conn)
            return result.id

        try:
            job_id = asyncio.run(send())
        except ConfigurationError as exc:
            raise CheckFailed(f"aapply_async() on a psycopg.AsyncConnection: {exc}") from exc
        expect(
            app.AsyncResult(job_id).status == "PENDING",
            "aapply_async() on a psycopg.AsyncConnection wrote the job, without the async extra",
        )
        app.engine.dispose()
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def check_async(work: Path) -> None:
    """adelay() and aget() on SQLite, through the async extra's drivers."""
    tasks = check_core(work)
    result = asyncio.run(tasks.add.adelay(4, 5))
    run([str(BIN / "sqlqueue"), "worker", "-A", "checktasks", "--burst"], work)
    expect(asyncio.run(result.aget(timeout=10)) == 9, "adelay() and aget() round trip")


def check_metrics(work: Path) -> None:
    """A burst worker started with --metrics-port: the extra's prometheus_client loads and
    the port opens (tests/test_metrics.py scrapes it)."""
    check_core(work)
    run(
        [str(BIN / "sqlqueue"), "worker", "-A", "checktasks", "--burst", "--metrics-port", "9108"],
        work,
    )


def check_dashboard(work: Path) -> None:
    """``sqlqueue dashboard`` serves its pages, templates included, from the installed
    wheel (tests/test_dashboard*.py test what they show)."""
    check_core(work)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(BIN / "sqlqueue"), "dashboard", "-A", "checktasks", "--port", str(port)],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/jobs", timeout=2) as page:
                    html = page.read().decode()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    raise CheckFailed(
                        f"sqlqueue dashboard did not answer: {server.communicate()[0]}"
                    ) from None
                time.sleep(0.2)
        expect("checktasks.add" in html, "the dashboard's jobs page lists the job sent")
    finally:
        server.terminate()
        server.communicate(timeout=30)


def check_django(work: Path) -> None:
    """A minimal Django project: check, migrate, a job sent and run by the management
    command, and the django.tasks backend."""
    check_core(work)
    (work / "checksettings.py").write_text(DJANGO_SETTINGS.format(path=str(work / "dj.sqlite3")))
    (work / "checkapp").mkdir()
    (work / "checkapp" / "__init__.py").write_text("")
    (work / "checkapp" / "tasks.py").write_text(DJANGO_TASKS)
    admin = str(BIN / "django-admin")
    env = {"DJANGO_SETTINGS_MODULE": "checksettings", "PYTHONPATH": str(work)}
    run([admin, "check"], work, env)
    run([admin, "migrate", "-v", "0"], work, env)
    send = "from checkapp.tasks import add; print(add.delay(20, 22).id)"
    job_id = run([admin, "shell", "-c", send], work, env).split()[-1]  # after shell's notes
    run([admin, "sqlqueue_worker", "--burst"], work, env)
    read = f"from sqlqueue.contrib.django import app; print(app.AsyncResult({job_id!r}).get())"
    expect(
        run([admin, "shell", "-c", read], work, env).split()[-1] == "42", "sqlqueue_worker ran it"
    )
    # The extra brings django.tasks (Django 6) or its backport (Django 5.2, Python 3.11).
    backend = "import sqlqueue.contrib.django.backend as b; print(b.SQLQueueBackend.__name__)"
    run([admin, "shell", "-c", backend], work, env)


def mariadb_admin_url() -> str:
    return os.environ.get("SQLQUEUE_TEST_MARIADB_URL") or DEFAULT_MARIADB_URL


@contextmanager
def mariadb_database(work: Path) -> Iterator[str | None]:
    """The URL of a new MariaDB (or MySQL) database, migrated with ``sqlqueue migrate`` and
    dropped afterwards; None, saying so, when no server is reachable (a failure under
    CI=true, where one must be)."""
    import sqlalchemy as sa

    admin = sa.create_engine(mariadb_admin_url(), connect_args={"connect_timeout": 3})
    name = f"sqlqueue_check_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError as exc:
        admin.dispose()
        message = f"MariaDB is unreachable at {mariadb_admin_url()}: {exc.orig}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            raise CheckFailed(message) from exc
        print(f"SKIPPED: the checks on MariaDB: {message}")
        yield None
        return
    try:
        url = sa.make_url(mariadb_admin_url()).set(database=name)
        url_text = url.render_as_string(hide_password=False)
        run([str(BIN / "sqlqueue"), "migrate", "--url", url_text], work)
        yield url_text
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name}")
        admin.dispose()


def check_mysql(work: Path) -> None:
    """The core checks, then on a new MariaDB (or MySQL) database: a job sent and run by a
    burst worker through the extra's PyMySQL, one sent in the transaction of a
    ``pymysql.Connection`` (rolled back, then committed), and, without the async extra,
    async calls that name it."""
    import pymysql
    import sqlalchemy as sa

    from sqlqueue.exceptions import ConfigurationError

    check_core(work)
    with mariadb_database(work) as url_text:
        if url_text is None:
            return
        (work / "mysqltasks.py").write_text(TASKS_MODULE.format(url=url_text))
        import mysqltasks  # type: ignore[import-not-found]  # written just above

        url = sa.make_url(url_text)
        conn = pymysql.connect(
            host=url.host, port=url.port or 3306, user=url.username, database=url.database
        )
        try:
            rolled_back = mysqltasks.add.apply_async((1, 1), connection=conn)
            conn.rollback()
            committed = mysqltasks.add.apply_async((20, 22), connection=conn)
            conn.commit()
        finally:
            conn.close()
        run([str(BIN / "sqlqueue"), "worker", "-A", "mysqltasks", "--burst"], work)
        expect(
            committed.get(timeout=10) == 42
            and mysqltasks.app.store.get_job(rolled_back.id) is None,
            "a job sent in a pymysql.Connection's transaction exists once it commits, not "
            "after a rollback, and a burst worker ran it on MariaDB",
        )
        if check_greenlet_is_missing():
            try:
                asyncio.run(mysqltasks.add.adelay(1, 2))
            except ConfigurationError as exc:
                expect("sqlqueue[async]" in str(exc), "adelay() on MySQL names the async extra")
            else:
                raise CheckFailed("adelay() on MySQL worked without the async extra")
        check_send_on_an_aiomysql_connection(mysqltasks, url)
        mysqltasks.app.engine.dispose()


def check_send_on_an_aiomysql_connection(tasks: Any, url: Any) -> None:
    """aapply_async(connection=aiomysql.Connection): the mysql extra brings aiomysql, and the
    send uses none of SQLAlchemy's asyncio, so it works without the async extra."""
    import aiomysql

    async def send() -> str:
        conn = await aiomysql.connect(
            host=url.host, port=url.port or 3306, user=url.username, db=url.database
        )
        try:
            result = await tasks.add.aapply_async((6, 7), connection=conn)
            await conn.commit()
        finally:
            await conn.ensure_closed()
        return str(result.id)

    job_id = asyncio.run(send())
    expect(
        tasks.app.AsyncResult(job_id).status == "PENDING",
        "aapply_async() on an aiomysql.Connection wrote the job",
    )


def check_async_mysql(work: Path) -> None:
    """With both extras: adelay() and aget() on MariaDB, through aiomysql."""
    check_core(work)
    with mariadb_database(work) as url_text:
        if url_text is None:
            return
        (work / "asynctasks.py").write_text(TASKS_MODULE.format(url=url_text))
        import asynctasks  # type: ignore[import-not-found]  # written just above

        result = asyncio.run(asynctasks.add.adelay(4, 5))
        run([str(BIN / "sqlqueue"), "worker", "-A", "asynctasks", "--burst"], work)
        expect(asyncio.run(result.aget(timeout=10)) == 9, "adelay() and aget() on MariaDB")
        asynctasks.app.engine.dispose()


CHECKS = {
    "bare": check_bare,
    "async": check_async,
    "metrics": check_metrics,
    "dashboard": check_dashboard,
    "django": check_django,
    "mysql": check_mysql,
    "async,mysql": check_async_mysql,
}


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1 or argv[0] not in CHECKS:
        print(f"usage: check_install.py {'|'.join(CHECKS)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="sqlqueue-install-check-") as work:
        try:
            CHECKS[argv[0]](Path(work))
        except CheckFailed as exc:
            print(f"FAILED ({argv[0]}): {exc}", file=sys.stderr)
            return 1
    print(f"install check passed: {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
