"""The web dashboard (API.md §10) through Starlette's TestClient, on SQLite and PostgreSQL:
every page, the retry and revoke actions and what guards them (CSRF token, read-only, HTTP
Basic), keyset pagination across pages and filters, mounting under a prefix, /metrics, and
the `sqlqueue dashboard` command's refusals. tests/test_dashboard_browser.py drives the real
command in chromium."""

from __future__ import annotations

import base64
import re
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import TESTS_DIR, explain, sqlqueue_command, uses_index, work_off
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

import sqlqueue.dashboard.listing
from sqlqueue import SQLQueue
from sqlqueue.dashboard import create_app
from sqlqueue.dashboard.listing import PAGE_SIZE, JobFilter, read_page
from sqlqueue.schema import jobs, workers


def client(app: SQLQueue, **options: Any) -> TestClient:
    return TestClient(create_app(app, **options), follow_redirects=False)


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def status_of(app: SQLQueue, job_id: str) -> str:
    with app.engine.connect() as conn:
        return str(
            conn.execute(
                sa.text("SELECT status FROM sqlqueue_jobs WHERE id = :id"), {"id": job_id}
            ).scalar_one()
        )


@pytest.fixture
def flaky(app: SQLQueue) -> Any:
    """``t.flaky``: fails while ``flaky.failing`` is true."""
    state = {"failing": True}

    @app.task(name="t.flaky")
    def flaky(x: int, *, why: str = "") -> int:
        if state["failing"]:
            raise ValueError(f"bad {x}: {why}")
        return x * 10

    flaky.state = state  # type: ignore[attr-defined]
    return flaky


def test_overview_shows_each_queue_its_counts_and_the_live_workers(
    app: SQLQueue, flaky: Any
) -> None:
    flaky.apply_async((1,), queue="emails")
    flaky.apply_async((2,), queue="emails")
    work_off(app)
    flaky.apply_async((3,), queue="reports")
    with app.engine.begin() as conn:
        now = datetime.now(UTC)
        conn.execute(
            workers.insert().values(
                id="host:1:abc", host="host", pid=1, queues=["emails"], concurrency=4,
                pool="thread", version="9.9", started_at=now, last_seen_at=now, jobs_running=2,
            )
        )  # fmt: skip

    page = client(app).get("/")

    assert page.status_code == 200
    html = page.text
    row = re.search(r"<tr>\s*<td><a[^>]*>emails</a></td>(.*?)</tr>", html, re.S)
    assert row, html
    numbers = re.findall(r'<td class="n">(?:<a[^>]*>)?([^<]*)', row.group(1))
    # ready, scheduled, retrying, running, failed 1h, failed 1d, succeeded 1d, oldest ready
    assert numbers[:7] == ["0", "0", "0", "0", "2", "2", "0"], numbers
    assert ">reports</a>" in html
    assert "host:1:abc" in html and "No live worker" not in html


def test_every_page_escapes_what_the_jobs_hold(app: SQLQueue) -> None:
    evil = "<script>alert(1)</script>"
    job = app.send_task("t.x", args=[evil], kwargs={"k": evil}, queue=evil)
    web = client(app)

    for path in ("/", f"/jobs?queue={evil}", f"/jobs/{job.id}"):
        html = web.get(path).text
        assert evil not in html, path
        assert "&lt;script&gt;" in html, path


def test_jobs_filters_by_status_queue_and_task(app: SQLQueue, flaky: Any) -> None:
    @app.task(name="t.ok")
    def ok(x: int) -> int:
        return x

    failed_emails = flaky.apply_async((1,), queue="emails")
    failed_reports = flaky.apply_async((2,), queue="reports")
    succeeded = ok.apply_async((3,), queue="emails")
    work_off(app)
    pending = ok.apply_async((4,), queue="emails")
    web = client(app)

    def ids(query: str) -> set[str]:
        html = web.get(f"/jobs?{query}").text
        return set(re.findall(r"<code>([0-9a-f-]{36})</code>", html))

    assert ids("status=FAILURE") == {failed_emails.id, failed_reports.id}
    assert ids("status=FAILURE&queue=reports") == {failed_reports.id}
    assert ids("status=SUCCESS") == {succeeded.id}
    assert ids("status=PENDING") == {pending.id}
    assert ids("task=t.ok") == {succeeded.id, pending.id}
    assert ids("status=FAILURE&task=t.ok") == set()
    assert ids("") == {failed_emails.id, failed_reports.id, succeeded.id, pending.id}
    assert web.get("/jobs?status=NOPE").status_code == 400
    assert web.get("/jobs?status=FAILURE&cursor=garbage").status_code == 400


def test_id_search_opens_the_job_or_says_there_is_none(app: SQLQueue) -> None:
    job = app.send_task("t.x")
    web = client(app)

    found = web.get(f"/jobs?id={job.id}")
    assert (found.status_code, found.headers["location"]) == (303, f"/jobs/{job.id}")
    missing = web.get("/jobs?id=no-such-job")
    assert missing.status_code == 404 and "No job &#39;no-such-job&#39;" in missing.text


def age_finished_jobs(app: SQLQueue, ids: list[str]) -> None:
    """Give the jobs distinct finish times, some equal, one second apart in pairs, so that
    paging must break ties by id."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with app.engine.begin() as conn:
        for n, job_id in enumerate(ids):
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(finished_at=start + timedelta(seconds=n // 2))
            )


def walk(web: TestClient, query: str) -> list[str]:
    """Every job id the jobs page lists, following its Next links."""
    seen: list[str] = []
    path: str | None = f"/jobs?{query}"
    while path is not None:
        html = web.get(path).text
        seen += re.findall(r"<code>([^<]+)</code></a></td>", html)
        found = re.search(r'<a href="([^"]+)" rel="next">', html)
        path = found.group(1).replace("&amp;", "&") if found else None
    return seen


def test_keyset_pages_list_every_job_once_in_order(app: SQLQueue, flaky: Any) -> None:
    count = 2 * PAGE_SIZE + 7
    sent = [flaky.apply_async((n,), queue=("a", "b")[n % 2]) for n in range(count)]
    work_off(app, concurrency=4)
    ids = [job.id for job in sent]
    age_finished_jobs(app, ids)
    web = client(app)

    listed = walk(web, "status=FAILURE")
    # Newest first; equal times by id, descending.
    expected = [
        job_id for _, job_id in sorted(((n // 2, i) for n, i in enumerate(ids)), reverse=True)
    ]
    assert listed == expected
    assert walk(web, "status=FAILURE&queue=a") == [i for i in expected if i in ids[0::2]]
    assert walk(web, "") == sorted(ids, reverse=True)
    app.send_task("t.other", args=[1])
    assert len(walk(web, "task=t.flaky")) == count


def test_keyset_pages_of_a_live_status(app: SQLQueue) -> None:
    ids = [app.send_task("t.x", args=[n], queue=("a", "b")[n % 2]).id for n in range(PAGE_SIZE + 3)]
    web = client(app)

    listed = walk(web, "status=PENDING")

    assert sorted(listed) == sorted(ids) and len(listed) == len(ids)
    assert set(walk(web, "status=PENDING&queue=b")) == set(ids[1::2])


def test_job_page_shows_the_call_timings_error_and_traceback(app: SQLQueue, flaky: Any) -> None:
    job = flaky.delay(7, why="testing")
    work_off(app)

    html = client(app).get(f"/jobs/{job.id}").text

    assert "t.flaky" in html and "FAILURE" in html
    assert "<pre>[7]</pre>" in html and "&#34;why&#34;: &#34;testing&#34;" in html
    assert "ValueError</code>: bad 7: testing" in html
    assert "Traceback (most recent call last)" in html
    assert "Ran" in html and "Waited" in html
    assert client(app).get("/jobs/no-such-job").status_code == 404


def test_job_page_shows_a_result_progress_and_workflow_links(app: SQLQueue) -> None:
    from sqlqueue.canvas import chain

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    handle = chain(add.s(1, 2), add.s(3)).delay()
    first = handle.parent
    web = client(app)
    waiting = web.get(f"/jobs/{handle.id}").text
    assert "WAITING" in waiting and f'href="/jobs/{first.id}"' in waiting
    work_off(app)
    assert "<pre>6</pre>" in web.get(f"/jobs/{handle.id}").text

    running = app.send_task("t.x")
    (claimed,) = app.store.claim_jobs(1, None, "host:1:abc", 60)
    app.store.update_progress(
        (claimed.id, claimed.attempts), {"state": "PROGRESS", "meta": {"done": 3}}
    )
    html = web.get(f"/jobs/{running.id}").text
    assert "&#34;done&#34;: 3" in html and "host:1:abc" in html


def test_retry_needs_the_csrf_token_then_the_job_runs_again(app: SQLQueue, flaky: Any) -> None:
    job = flaky.delay(4)
    work_off(app)
    web = client(app)
    page = web.get(f"/jobs/{job.id}").text

    refused = web.post(f"/jobs/{job.id}/retry")
    wrong = web.post(f"/jobs/{job.id}/retry", data={"csrf_token": "forged"})
    assert (refused.status_code, wrong.status_code) == (403, 403)
    assert "CSRF" in refused.text
    assert status_of(app, job.id) == "FAILURE"

    done = web.post(f"/jobs/{job.id}/retry", data={"csrf_token": csrf_token(page)})
    assert (done.status_code, done.headers["location"]) == (303, f"/jobs/{job.id}?done=retried")
    assert status_of(app, job.id) == "PENDING"
    assert "Queued again" in web.get(done.headers["location"]).text
    flaky.state["failing"] = False
    work_off(app)
    assert status_of(app, job.id) == "SUCCESS"
    assert job.get(timeout=1) == 40
    again = web.post(f"/jobs/{job.id}/retry", data={"csrf_token": csrf_token(page)})
    assert again.headers["location"].endswith("done=not-retried")


def test_the_token_is_this_browsers_and_any_process_accepts_it(app: SQLQueue) -> None:
    job = app.send_task("t.x")
    first = client(app)
    token = csrf_token(first.get(f"/jobs/{job.id}").text)
    assert first.cookies["sqlqueue_csrf"] == token

    other_browser = client(app)
    other_browser.get("/")  # a cookie of its own
    refused = other_browser.post(f"/jobs/{job.id}/revoke", data={"csrf_token": token})
    no_cookie = TestClient(create_app(app)).post(
        f"/jobs/{job.id}/revoke", data={"csrf_token": token}
    )
    assert (refused.status_code, no_cookie.status_code) == (403, 403)
    assert status_of(app, job.id) == "PENDING"

    # Another process of the same site (another app object): the same browser's form works.
    other_process = client(app)
    other_process.cookies.set("sqlqueue_csrf", token)
    done = other_process.post(f"/jobs/{job.id}/revoke", data={"csrf_token": token})
    assert done.status_code == 303 and status_of(app, job.id) == "REVOKED"


def test_revoke_stops_a_job_before_it_starts(app: SQLQueue) -> None:
    job = app.send_task("t.x")
    web = client(app)
    page = web.get(f"/jobs/{job.id}").text
    assert "/revoke" in page and "/retry" not in page

    assert web.post(f"/jobs/{job.id}/revoke").status_code == 403
    done = web.post(f"/jobs/{job.id}/revoke", data={"csrf_token": csrf_token(page)})

    assert done.headers["location"].endswith("done=revoked")
    assert status_of(app, job.id) == "REVOKED"
    assert "/retry" in web.get(f"/jobs/{job.id}").text


def test_terminate_revokes_a_running_job(app: SQLQueue) -> None:
    # Given a job a worker has taken
    job = app.send_task("t.x")
    assert [taken.id for taken in app.store.claim_jobs(1, None, "someone", 60)] == [job.id]
    web = client(app)
    page = web.get(f"/jobs/{job.id}").text
    assert "/terminate" in page and "/revoke" not in page

    # When the operator presses Terminate, I expect it refused without the token, then done
    assert web.post(f"/jobs/{job.id}/terminate").status_code == 403
    done = web.post(f"/jobs/{job.id}/terminate", data={"csrf_token": csrf_token(page)})

    assert done.headers["location"].endswith("done=terminated")
    assert status_of(app, job.id) == "REVOKED"


def test_read_only_shows_no_buttons_and_refuses_the_actions(app: SQLQueue, flaky: Any) -> None:
    job = flaky.delay(1)
    work_off(app)
    token = csrf_token(client(app).get(f"/jobs/{job.id}").text)
    web = client(app, read_only=True)

    html = web.get(f"/jobs/{job.id}").text
    assert "csrf_token" not in html and "read-only" in html
    for action in ("retry", "revoke", "terminate"):
        refused = web.post(f"/jobs/{job.id}/{action}", data={"csrf_token": token})
        assert refused.status_code == 403 and "read-only" in refused.text
    assert status_of(app, job.id) == "FAILURE"


def test_auth_asks_every_request_for_the_credentials(app: SQLQueue) -> None:
    web = client(app, auth="admin:s3cret")

    def basic(user_password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(user_password.encode()).decode()}

    for path in ("/", "/jobs", "/workers", "/metrics"):
        denied = web.get(path)
        assert denied.status_code == 401, path
        assert denied.headers["www-authenticate"].startswith("Basic")
    assert web.get("/", headers=basic("admin:wrong")).status_code == 401
    assert web.get("/", headers={"Authorization": "Basic !!!"}).status_code == 401
    assert web.post("/jobs/x/retry").status_code == 401
    assert web.get("/", headers=basic("admin:s3cret")).status_code == 200


@pytest.mark.parametrize("auth", ["nocolon", ":pw", "user:"])
def test_malformed_auth_is_refused(app: SQLQueue, auth: str) -> None:
    from sqlqueue.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="user:password"):
        create_app(app, auth=auth)


def test_workers_page_lists_live_and_gone_workers(app: SQLQueue) -> None:
    assert "No worker has registered" in client(app).get("/workers").text
    now = datetime.now(UTC)
    with app.engine.begin() as conn:
        for name, seen in (("live", now), ("gone", now - timedelta(minutes=5))):
            conn.execute(
                workers.insert().values(
                    id=f"{name}-host:1:abc", host=f"{name}-host", pid=1, queues=None,
                    concurrency=4, pool="process", version="9.9", started_at=seen,
                    last_seen_at=seen, jobs_running=0,
                )
            )  # fmt: skip

    html = client(app).get("/workers").text

    assert "live-host:1:abc" in html and "gone-host:1:abc" in html
    assert html.count("<td>gone</td>") == 1 and html.count("<td>live</td>") == 1


def test_schedules_page_lists_the_periodic_tasks(app: SQLQueue) -> None:
    assert "no periodic tasks" in client(app).get("/schedules").text
    app.conf.beat_schedule = {"hourly": {"task": "t.tick", "schedule": 3600, "args": ["h"]}}

    html = client(app).get("/schedules").text

    assert "<td>hourly</td><td>t.tick</td>" in html and "never" in html


def test_metrics_are_the_queue_gauges(app: SQLQueue) -> None:
    app.send_task("t.x", queue="emails")

    metrics = client(app).get("/metrics")

    assert metrics.status_code == 200
    assert 'sqlqueue_jobs{queue="emails",status="ready"} 1.0' in metrics.text
    assert "sqlqueue_workers 0.0" in metrics.text


def test_mounted_under_a_prefix_its_links_and_redirects_keep_it(app: SQLQueue) -> None:
    site = Starlette(routes=[Mount("/queue", app=create_app(app))])
    web = TestClient(site, follow_redirects=False)
    job = app.send_task("t.x", queue="emails")

    overview = web.get("/queue/").text
    assert 'href="/queue/jobs"' in overview and 'href="/queue/jobs?queue=emails"' in overview
    page = web.get(f"/queue/jobs/{job.id}").text
    assert f'action="/queue/jobs/{job.id}/revoke"' in page
    done = web.post(f"/queue/jobs/{job.id}/revoke", data={"csrf_token": csrf_token(page)})
    assert done.headers["location"] == f"/queue/jobs/{job.id}?done=revoked"
    assert web.get(f"/queue/jobs?id={job.id}").headers["location"] == f"/queue/jobs/{job.id}"


def run_dashboard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*sqlqueue_command(), "dashboard", "--url", "sqlite://", *args],
        capture_output=True, text=True, timeout=60, check=False, cwd=TESTS_DIR,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def test_command_refuses_to_listen_beyond_loopback_without_auth() -> None:
    refused = run_dashboard("--host", "0.0.0.0")  # noqa: S104
    assert refused.returncode == 2 and "--auth user:password" in refused.stderr
    assert "Traceback" not in refused.stderr
    bad = run_dashboard("--auth", "nocolon")
    assert bad.returncode == 2 and "user:password" in bad.stderr


@pytest.mark.postgresql
def test_list_queries_read_their_indexes(pg_app: SQLQueue) -> None:
    """Each kind of page reads a range of an index in its order: the history is never read
    whole, nor sorted whole (a tie of finish times is sorted by id as it is read)."""
    with pg_app.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO sqlqueue_jobs (id, task_name, queue, priority, args, kwargs, status,"
                " scheduled_at, created_at, finished_at)"
                " SELECT 'f-' || n, 't.x', CASE WHEN n % 2 = 0 THEN 'a' ELSE 'b' END, 0, '[]',"
                " '{}', CASE WHEN n % 10 = 0 THEN 'FAILURE' ELSE 'SUCCESS' END, now(), now(),"
                " now() - n * interval '1 ms' FROM generate_series(1, 20000) AS n"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO sqlqueue_jobs (id, task_name, queue, priority, args, kwargs, status,"
                " scheduled_at, created_at)"
                " SELECT 'p-' || n, 't.x', 'a', 0, '[]', '{}', 'PENDING', now(), now()"
                " FROM generate_series(1, 200) AS n"
            )
        )
        conn.execute(sa.text("ANALYZE sqlqueue_jobs"))
    captured: list[Any] = []
    store = pg_app.store
    original = store.read

    def capture(statements: Any) -> Any:
        captured.extend(statements)
        return original(statements)

    store.read = capture  # type: ignore[method-assign]
    for chosen, index in (
        (JobFilter(status="FAILURE", queue="a"), "ix_sqlqueue_jobs_outcomes"),
        (JobFilter(status="FAILURE"), "ix_sqlqueue_jobs_outcomes"),
        (JobFilter(status="FAILURE", task="t.x"), "ix_sqlqueue_jobs_outcomes"),
        (JobFilter(status="PENDING"), "ix_sqlqueue_jobs_ready"),
        (JobFilter(), "pk_sqlqueue_jobs"),
        (JobFilter(task="t.x"), "pk_sqlqueue_jobs"),
    ):
        cursor = None
        for _ in range(2):  # the first page, and the one after its cursor
            captured.clear()
            page = read_page(store, chosen, cursor)
            assert len(page.rows) == PAGE_SIZE and page.next_cursor
            cursor = page.next_cursor
            plans = [
                explain(pg_app, statement)
                for statement in captured
                if not isinstance(statement, sa.TextClause)  # queues_with_history
            ]
            assert any(uses_index(plan, index) for plan in plans), plans
            for plan in plans:
                assert "Seq Scan" not in plan, plan
                if chosen.status == "FAILURE" and not chosen.task:
                    # Newest first from the index, only as far as a page; a tie of finish
                    # times (a batch recorded together) is sorted by id as it is read.
                    assert "Index Scan Backward using ix_sqlqueue_jobs_outcomes" in plan, plan
                    read = re.findall(r"Index Scan Backward.*?actual time=\S+ rows=(\d+)", plan)
                    assert read and all(int(n) <= PAGE_SIZE + 2 for n in read), plan


def test_a_task_filter_reads_a_capped_range_then_offers_to_read_on(
    app: SQLQueue, flaky: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    @app.task(name="t.rare")
    def rare() -> None:
        raise ValueError("rare")

    monkeypatch.setattr(sqlqueue.dashboard.listing, "SEARCH_CAP", 20)
    rare_old = rare.delay()
    work_off(app)
    sent = [flaky.delay(n) for n in range(45)]
    work_off(app)
    rare_new = rare.delay()
    work_off(app)
    age_finished_jobs(app, [rare_old.id, *(job.id for job in sent), rare_new.id])
    web = client(app)

    first = web.get("/jobs?status=FAILURE&task=t.rare").text
    assert rare_new.id in first and rare_old.id not in first
    assert 'id="searched"' in first
    # Read on, page after page, until the old one is found; each page read at most 20.
    assert walk(web, "status=FAILURE&task=t.rare") == [rare_new.id, rare_old.id]
    assert walk(web, "task=t.rare") == sorted([rare_new.id, rare_old.id], reverse=True)


def test_overview_charts_the_jobs_finished_each_minute_of_the_last_hour(
    app: SQLQueue, flaky: Any
) -> None:
    from sqlqueue.dashboard.throughput import MINUTES, read_throughput

    sent = [flaky.delay(n) for n in range(5)]
    work_off(app)
    now = app.store.database_now()
    with app.engine.begin() as conn:
        for job, minutes_ago in zip(sent, (10, 10, 10, 30, 90), strict=True):
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job.id)
                .values(finished_at=now - timedelta(minutes=minutes_ago))
            )

    minutes = read_throughput(app.store)

    assert len(minutes) == MINUTES and minutes[-1].start <= now
    counts = {round((now - m.start).total_seconds() // 60): m.finished for m in minutes}
    assert counts[10] == 3 and counts[30] == 1 and sum(counts.values()) == 4
    html = client(app).get("/").text
    assert "<svg" in html and "4 finished since" in html
    assert ": 3 finished</title>" in html


@pytest.mark.postgresql
def test_the_chart_reads_each_minute_from_the_finished_index(pg_app: SQLQueue) -> None:
    from sqlqueue.dashboard.throughput import PER_MINUTE_CAP, throughput_statement

    with pg_app.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO sqlqueue_jobs (id, task_name, queue, priority, args, kwargs, status,"
                " scheduled_at, created_at, finished_at)"
                " SELECT 'f-' || n, 't.x', 'a', 0, '[]', '{}', 'SUCCESS', now(), now(),"
                " CASE WHEN n <= 20000"
                "  THEN date_trunc('minute', now()) - interval '5 minutes' + n * interval '1 ms'"
                "  ELSE now() - interval '3 days' - n * interval '1 s' END"
                " FROM generate_series(1, 100000) AS n"
            )
        )
    with pg_app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE sqlqueue_jobs"))
    now = pg_app.store.database_now().replace(second=0, microsecond=0)
    starts = [now - timedelta(minutes=5), now - timedelta(minutes=4)]

    plan = explain(pg_app, throughput_statement(starts))

    assert uses_index(plan, "ix_sqlqueue_jobs_finished") and "Seq Scan" not in plan, plan
    # A busy minute is read only as far as the cap.
    read = [int(n) for n in re.findall(r"Index Only Scan.*?rows=(\d+) loops", plan)]
    assert read and max(read) == PER_MINUTE_CAP, plan


def test_mounted_in_a_flask_site_through_a2wsgi(app: SQLQueue) -> None:
    from a2wsgi import ASGIMiddleware
    from flask import Flask
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    site = Flask("site")
    site.add_url_rule("/", "home", lambda: "home")
    site.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        site.wsgi_app, {"/queue": ASGIMiddleware(create_app(app))}
    )
    job = app.send_task("t.x", queue="emails")
    web = site.test_client()

    assert web.get("/").text == "home"
    assert 'href="/queue/jobs?queue=emails"' in web.get("/queue/").text
    page = web.get(f"/queue/jobs/{job.id}").text
    done = web.post(f"/queue/jobs/{job.id}/revoke", data={"csrf_token": csrf_token(page)})
    assert (done.status_code, done.headers["location"]) == (
        303,
        f"/queue/jobs/{job.id}?done=revoked",
    )
    assert status_of(app, job.id) == "REVOKED"


def test_a_chosen_id_with_odd_characters_is_found_and_acted_on(app: SQLQueue) -> None:
    job = app.send_task("t.x", task_id="order 42/a?b#c")
    web = client(app)

    found = web.get("/jobs", params={"id": job.id})
    assert found.headers["location"] == "/jobs/order%2042/a%3Fb%23c"
    page = web.get(found.headers["location"])
    assert page.status_code == 200 and "order 42/a?b#c" in page.text
    assert 'action="/jobs/order%2042/a%3Fb%23c/revoke"' in page.text
    done = web.post("/jobs/order%2042/a%3Fb%23c/revoke", data={"csrf_token": csrf_token(page.text)})
    assert done.headers["location"] == "/jobs/order%2042/a%3Fb%23c?done=revoked"
    assert status_of(app, job.id) == "REVOKED"


def test_metrics_without_prometheus_client_is_a_404_naming_the_extra(
    app: SQLQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails

    missing = client(app).get("/metrics")

    assert missing.status_code == 404 and "sqlqueue[metrics]" in missing.text


def test_an_unreachable_database_is_a_503_saying_so(tmp_path: Any) -> None:
    queue = SQLQueue(f"sqlite:///{tmp_path}/missing/queue.db")

    page = client(queue).get("/")

    assert page.status_code == 503 and "did not answer" in page.text
