"""The dashboard in a real browser: Debian's chromium driven by Playwright, against a real
`sqlqueue dashboard` process and a real worker, as an operator uses it. `make browser`
installs chromium (the Makefile's test target runs it first); without it this test skips,
and fails under CI=true."""

from __future__ import annotations

import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import IN_CI, TESTS_DIR, sqlqueue_command, start_worker, stop_worker, wait_until

from sqlqueue import SQLQueue

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = 'Playwright is not installed: pip install ".[test]".'
    if missing is None and not CHROMIUM.exists():
        missing = f"No {CHROMIUM}: run `make browser` (as root) to install Debian's chromium."
    if missing is not None:
        if IN_CI:
            pytest.fail(missing)
        pytest.skip(missing)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def dashboard(db_url: str, *args: str) -> Iterator[str]:
    """A real `sqlqueue dashboard` process; its base URL while it runs."""
    port = free_port()
    process = subprocess.Popen(
        [*sqlqueue_command(), "dashboard", "--url", db_url, "--port", str(port), *args],
        cwd=TESTS_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert process.poll() is None, process.communicate()[0]
        try:
            urllib.request.urlopen(f"{base}/workers", timeout=1)  # noqa: S310
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    try:
        wait_until(answers, 30, "the dashboard to answer")
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def test_an_operator_finds_a_failed_job_and_retries_it(
    db_url: str, app: SQLQueue, browser: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "may-pass"
    job = app.send_task("tasks.fails_until", args=[str(marker)], queue="celery")
    app.send_task("tasks.add", args=[1, 2], queue="celery")
    worker = start_worker(db_url, "--concurrency", "1")
    try:
        wait_until(lambda: app.AsyncResult(job.id).state == "FAILURE", 60, "the job to fail")
        with dashboard(db_url) as base:
            page = browser.new_page()
            page.goto(f"{base}/")
            assert page.locator("h1").first.inner_text() == "Queues"
            assert page.locator("td a", has_text="celery").count() == 1
            assert "No live worker" not in page.content()

            page.click("text=Jobs")
            page.select_option("select[name=status]", "FAILURE")
            page.click("button:has-text('Filter')")
            assert "status=FAILURE" in page.url
            links = page.locator("td a code")
            assert links.count() == 1
            links.first.click()
            assert page.locator("#status").inner_text() == "FAILURE"
            assert "does not exist yet" in page.content()

            marker.write_text("")
            page.click("button:has-text('Retry')")
            assert "Queued again" in page.content()

            def succeeded() -> bool:
                page.reload()
                return page.locator("#status").inner_text() == "SUCCESS"

            wait_until(succeeded, 60, "the retried job to succeed on the dashboard")
            assert app.AsyncResult(job.id).get(timeout=5) == "done"

            forged = page.request.post(f"{base}/jobs/{job.id}/revoke", form={"x": "1"})
            assert forged.status == 403 and "CSRF" in forged.text()
            page.close()
    finally:
        stop_worker(worker)


def refused(browser: Any, url: str, **credentials: str) -> None:
    """The browser is asked for credentials at ``url`` and these do not do: the page is the
    401 (or, when chromium gave up on credentials given, an auth error), a request gets 401."""
    from playwright.sync_api import Error

    context = browser.new_context(
        http_credentials={"username": credentials["user"], "password": credentials["password"]}
        if credentials
        else None
    )
    try:
        try:
            page = context.new_page().goto(url)
            assert page is not None and page.status == 401
        except Error as exc:
            assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
        answer = context.request.get(url)
        assert answer.status == 401
        assert answer.headers["www-authenticate"].startswith("Basic")
    finally:
        context.close()


def test_auth_demands_credentials_in_the_browser(db_url: str, browser: Any) -> None:
    with dashboard(db_url, "--auth", "ops:s3cret") as base:
        refused(browser, f"{base}/")
        refused(browser, f"{base}/jobs", user="ops", password="nope")  # noqa: S106
        known = browser.new_context(http_credentials={"username": "ops", "password": "s3cret"})
        page = known.new_page()
        assert page.goto(f"{base}/").status == 200
        assert page.locator("h1").first.inner_text() == "Queues"
        known.close()


def test_the_environment_gives_the_credentials(
    db_url: str, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SQLQUEUE_DASHBOARD_AUTH", "env:pw")
    with dashboard(db_url) as base:
        refused(browser, f"{base}/")
