"""JobStore on every database: claims, leases, fencing, rescue, release."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from conftest import claim_buffers, explain, explain_claim, plan_buffers, uses_index

from sqlqueue import JobStatus, SQLQueue
from sqlqueue.outcomes import Outcome
from sqlqueue.schema import jobs
from sqlqueue.send_options import SendOptions
from sqlqueue.serialization import Failure


def send(app: SQLQueue, count: int, **options: object) -> list[str]:
    return [app.send_task("t.job", args=[n], **options).id for n in range(count)]  # type: ignore[arg-type]


def test_claim_jobs_takes_no_more_than_the_limit_and_marks_them_started(app: SQLQueue) -> None:
    send(app, 5)

    claimed = app.store.claim_jobs(3, None, "w1", lease=30)

    assert len(claimed) == 3
    assert {job.status for job in claimed} == {JobStatus.STARTED}
    assert {job.attempts for job in claimed} == {1}
    assert all(job.worker_id == "w1" and job.lease_expires_at is not None for job in claimed)
    assert len(app.store.claim_jobs(10, None, "w2", lease=30)) == 2
    assert app.store.claim_jobs(10, None, "w3", lease=30) == []


def test_a_late_worker_cannot_overwrite_the_retry_that_replaced_it(app: SQLQueue) -> None:
    # Given a job taken by worker 1 whose lease ran out (worker 1 looked dead) ...
    (job_id,) = send(app, 1)
    (first,) = app.store.claim_jobs(1, None, "w1", lease=0.05)
    time.sleep(0.1)
    assert app.store.rescue_expired_jobs(max_lease_expiries=3) == 1
    # ... and taken again by worker 2,
    (second,) = app.store.claim_jobs(1, None, "w2", lease=30)
    assert (second.id, second.attempts) == (job_id, 2)

    # when worker 1 comes back and writes, nothing changes;
    assert app.store.extend_leases([(job_id, first.attempts)], lease=300) == set()
    late = (job_id, first.attempts)
    assert (
        app.store.record_outcomes([(late, Outcome.succeeded(json.dumps("from the late worker")))])
        == set()
    )
    assert app.store.record_outcomes([(late, Outcome.failed(Failure("E", "late", "tb")))]) == set()
    assert app.store.record_outcomes([(late, Outcome.retrying(0, None))]) == set()
    # only worker 2's outcome is stored.
    assert app.store.extend_leases([(job_id, second.attempts)], lease=30) == {
        (job_id, second.attempts)
    }
    current = (job_id, second.attempts)
    # Both takes in one batch: only the current one is reported kept.
    assert app.store.record_outcomes(
        [
            (late, Outcome.failed(Failure("E", "late", "tb"))),
            (current, Outcome.succeeded(json.dumps("from the retry"))),
        ]
    ) == {current}
    job = app.store.get_job(job_id)
    assert job is not None
    assert (job.status, job.result, job.worker_id, job.expired_leases) == (
        JobStatus.SUCCESS,
        "from the retry",
        "w2",
        1,
    )


def test_a_finished_job_cannot_be_finished_again_by_the_same_take(app: SQLQueue) -> None:
    (job_id,) = send(app, 1)
    (job,) = app.store.claim_jobs(1, None, "w1", lease=30)
    take = (job_id, job.attempts)
    assert app.store.record_outcomes([(take, Outcome.succeeded(json.dumps(1)))]) == {take}
    assert app.store.record_outcomes([(take, Outcome.failed(Failure("E", "again", "")))]) == set()
    assert app.AsyncResult(job_id).get(timeout=1) == 1


def test_rescue_leaves_live_leases_alone(app: SQLQueue) -> None:
    send(app, 1)
    (job,) = app.store.claim_jobs(1, None, "w1", lease=30)
    assert app.store.rescue_expired_jobs(max_lease_expiries=3) == 0
    current = app.store.get_job(job.id)
    assert current is not None and current.status is JobStatus.STARTED


def test_rescue_fails_a_job_that_keeps_losing_its_worker(app: SQLQueue) -> None:
    (job_id,) = send(app, 1)
    for _ in range(2):
        app.store.claim_jobs(1, None, "w", lease=0.01)
        time.sleep(0.05)
        assert app.store.rescue_expired_jobs(max_lease_expiries=2) == 1

    job = app.store.get_job(job_id)
    assert job is not None
    assert (job.status, job.error_type, job.expired_leases) == (JobStatus.FAILURE, "WorkerLost", 2)
    assert "stopped renewing its lease 2 times" in (job.error_message or "")
    assert app.store.claim_jobs(1, None, "w", lease=30) == []


def test_release_jobs_gives_a_taken_job_back_to_the_queue(app: SQLQueue) -> None:
    (job_id,) = send(app, 1)
    (job,) = app.store.claim_jobs(1, None, "w1", lease=30)

    assert app.store.release_jobs([(job.id, job.attempts)]) == 1

    released = app.store.get_job(job_id)
    assert released is not None
    assert (released.status, released.worker_id, released.started_at) == (
        JobStatus.PENDING,
        None,
        None,
    )
    (again,) = app.store.claim_jobs(1, None, "w2", lease=30)
    assert again.id == job_id


def test_claim_filters_by_queue(app: SQLQueue) -> None:
    send(app, 2, queue="a")
    send(app, 1, queue="b")
    claimed = app.store.claim_jobs(10, ["b"], "w", lease=30)
    assert [job.queue for job in claimed] == ["b"]


@pytest.mark.postgresql
def test_claim_skips_rows_locked_by_another_transaction(
    pg_app: SQLQueue, postgres_url: str
) -> None:
    first, second = send(pg_app, 2)
    with psycopg.connect(postgres_url) as other:
        # Another worker's claim, caught mid-transaction, holds the first row.
        other.execute("SELECT id FROM sqlqueue_jobs WHERE id = %s FOR UPDATE", (first,))

        claimed = pg_app.store.claim_jobs(10, None, "w", lease=30)

        assert [job.id for job in claimed] == [second]
        other.rollback()
    assert [job.id for job in pg_app.store.claim_jobs(10, None, "w", lease=30)] == [first]


@pytest.mark.postgresql
def test_the_claim_walks_the_ready_index_whatever_the_statistics_say(
    pg_app: SQLQueue, postgres_url: str
) -> None:
    # Statistics taken with no job ready make the planner expect a handful of rows; a plain
    # query would then sort the whole backlog at every claim. The claim must not care.
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("ANALYZE sqlqueue_jobs")
    pg_app.send_task("t.job")
    small = claim_buffers(explain_claim(postgres_url))

    pg_app.send_jobs(None, "t.job", [([n], {}) for n in range(20_000)], SendOptions())
    plan = explain_claim(postgres_url)

    assert "Index Scan using ix_sqlqueue_jobs_ready" in plan, plan
    assert "Sort" not in plan, plan
    assert claim_buffers(plan) <= small + 20, f"{small} buffers with one job ready:\n{plan}"


@pytest.mark.postgresql
def test_the_claim_updates_its_jobs_by_primary_key_with_a_backlog(
    pg_app: SQLQueue, postgres_url: str
) -> None:
    # With thousands of jobs ready the planner guesses that a claim takes a tenth of them,
    # and without migration 0005 it hashes the whole table to update 10 rows.
    pg_app.send_jobs(None, "t.job", [([n], {}) for n in range(2_000)], SendOptions())
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("ANALYZE sqlqueue_jobs")
    pg_app.send_jobs(None, "t.job", [([n], {}) for n in range(20_000)], SendOptions())

    plan = explain_claim(postgres_url)

    assert "Index Scan using pk_sqlqueue_jobs" in plan, plan
    assert "Seq Scan" not in plan, plan
    assert "Hash" not in plan, plan


BIG_QUEUE = 50_000
"""Ready jobs in the queue that busy workers drain, beside a rare queue with a few."""

FEW_BUFFERS = 50
"""Most shared buffers a statement that stays in its index may touch here: the table is about
a thousand pages, and a statement that scans it touches every one."""


@pytest.fixture
def big_queue(pg_app: SQLQueue, postgres_url: str) -> dict[str, list[str]]:
    """A backlog in queue ``big``, some of it not due for an hour and some expiring, then a few
    jobs in queue ``rare`` sent behind it; fresh statistics. Returns the ids of each kind."""
    calls = [([n], {}) for n in range(BIG_QUEUE // 10)]
    for _ in range(8):
        pg_app.send_jobs(None, "t.job", calls, SendOptions(queue="big"))
    pg_app.send_jobs(None, "t.job", calls, SendOptions(queue="big", countdown=3600))
    pg_app.send_jobs(None, "t.job", calls, SendOptions(queue="big", expires=3600))
    expired = [
        r.id
        for r in pg_app.send_jobs(None, "t.job", calls[:3], SendOptions(queue="big", expires=0.01))
    ]
    rare = [r.id for r in pg_app.send_jobs(None, "t.job", calls[:2], SendOptions(queue="rare"))]
    later = [
        r.id
        for r in pg_app.send_jobs(
            None, "t.job", calls[:1], SendOptions(queue="rare", countdown=7200)
        )
    ]
    time.sleep(0.05)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE sqlqueue_jobs")
    return {"expired": expired, "rare": rare, "rare_later": later}


@pytest.mark.postgresql
def test_a_worker_on_a_rare_queue_does_not_walk_the_big_one(
    pg_app: SQLQueue, postgres_url: str, big_queue: dict[str, list[str]]
) -> None:
    plan = explain_claim(postgres_url, queues=["rare"])

    assert claim_buffers(plan) <= FEW_BUFFERS, plan
    claimed = pg_app.store.claim_jobs(10, ["rare"], "w", lease=30)
    assert sorted(job.id for job in claimed) == sorted(big_queue["rare"])


@pytest.mark.postgresql
def test_a_claim_from_several_queues_takes_them_in_priority_order(
    pg_app: SQLQueue, postgres_url: str, big_queue: dict[str, list[str]]
) -> None:
    urgent = pg_app.send_task("t.job", queue="rare", priority=5).id

    plan = explain_claim(postgres_url, limit=3, queues=["rare", "big", "rare"])
    claimed = pg_app.store.claim_jobs(3, ["rare", "big", "rare"], "w", lease=30)

    assert claim_buffers(plan) <= FEW_BUFFERS, plan
    # The urgent job first, then the oldest of both queues: the big queue's backlog.
    assert claimed[0].id == urgent
    assert [job.queue for job in claimed[1:]] == ["big", "big"]


def claim_in_open_transaction(
    conn: psycopg.Connection[Any], limit: int, queues: list[str]
) -> list[str]:
    """The ids a claim takes in ``conn``'s transaction, left open: a worker's claim caught
    before it commits."""
    rows = conn.execute(
        "SELECT id FROM sqlqueue_claim(%s, 30, 'w1', %s::text[])", (limit, queues)
    ).fetchall()
    return [str(job_id) for (job_id,) in rows]


@pytest.mark.postgresql
def test_a_claim_from_several_queues_leaves_the_jobs_it_did_not_take_to_other_claims(
    pg_app: SQLQueue, postgres_url: str
) -> None:
    # Two workers on `-Q a,b -c 1`, woken by one notification: the second must not find the
    # job the first did not take locked, or it sleeps while that job waits.
    first = pg_app.send_task("t.job", queue="a").id
    second = pg_app.send_task("t.job", queue="b").id
    with psycopg.connect(postgres_url) as open_claim:
        taken = claim_in_open_transaction(open_claim, 1, ["a", "b"])

        claimed = pg_app.store.claim_jobs(1, ["a", "b"], "w2", lease=30)

        assert taken == [first]
        assert [job.id for job in claimed] == [second]
        open_claim.rollback()


@pytest.mark.postgresql
def test_a_claim_given_queues_passes_over_a_locked_job_for_the_next_of_its_queue(
    pg_app: SQLQueue, postgres_url: str
) -> None:
    first, second = send(pg_app, 2, queue="a")
    send(pg_app, 1, queue="b")
    with psycopg.connect(postgres_url) as other:
        other.execute("SELECT id FROM sqlqueue_jobs WHERE id = %s FOR UPDATE", (first,))

        claimed = pg_app.store.claim_jobs(1, ["a"], "w", lease=30)

        assert [job.id for job in claimed] == [second]
        other.rollback()


@pytest.mark.postgresql
@pytest.mark.parametrize("limit", [1, 3, 8])
def test_a_claim_given_queues_locks_no_more_rows_than_it_takes(
    pg_app: SQLQueue, postgres_url: str, limit: int
) -> None:
    for queue in ("a", "b", "c"):
        send(pg_app, 4, queue=queue)
    with psycopg.connect(postgres_url) as open_claim, psycopg.connect(postgres_url) as other:
        taken = claim_in_open_transaction(open_claim, limit, ["a", "b", "c"])

        unlocked = other.execute(
            "SELECT count(*) FROM (SELECT id FROM sqlqueue_jobs FOR UPDATE SKIP LOCKED) AS free"
        ).fetchone()
        other.rollback()

        assert len(taken) == limit
        assert unlocked == (12 - limit,)
        open_claim.rollback()


@pytest.mark.postgresql
@pytest.mark.parametrize(
    ("queues", "index", "due_in"),
    [
        (None, "ix_sqlqueue_jobs_deferred", 3600),
        (["rare"], "ix_sqlqueue_jobs_deferred_in_queue", 7200),
        (["rare", "big"], "ix_sqlqueue_jobs_deferred_in_queue", 3600),
    ],
    ids=["all-queues", "rare", "two-queues"],
)
def test_the_next_due_time_is_read_from_an_index(
    pg_app: SQLQueue,
    big_queue: dict[str, list[str]],
    queues: list[str] | None,
    index: str,
    due_in: float,
) -> None:
    plan = explain(pg_app, pg_app.dialect.next_due_time(queues))

    assert uses_index(plan, index), plan
    assert plan_buffers(plan) <= FEW_BUFFERS, plan
    assert pg_app.store.next_due_in(queues) == pytest.approx(due_in, abs=60)


@pytest.mark.postgresql
def test_the_expiry_pass_reads_only_expired_jobs(
    pg_app: SQLQueue, big_queue: dict[str, list[str]]
) -> None:
    plan = explain(pg_app, pg_app.dialect.expire_jobs())

    assert uses_index(plan, "ix_sqlqueue_jobs_expiring"), plan
    assert plan_buffers(plan) <= FEW_BUFFERS, plan
    assert pg_app.store.expire_jobs() == len(big_queue["expired"])


def test_job_rows_hold_json_text(app: SQLQueue) -> None:
    job_id = app.send_task("t.job", args=[{"nested": [1, 2.5, None, True]}], kwargs={"k": "v"}).id
    with app.engine.connect() as conn:
        args, kwargs = conn.execute(
            sa.select(sa.cast(jobs.c.args, sa.Text), sa.cast(jobs.c.kwargs, sa.Text)).where(
                jobs.c.id == job_id
            )
        ).one()
    assert json.loads(args) == [{"nested": [1, 2.5, None, True]}]
    assert json.loads(kwargs) == {"k": "v"}


PRIMARY_KEY = "sqlite_autoindex_sqlqueue_jobs_1"
"""SQLite's index of the primary key of a table whose key is not its rowid."""


@pytest.mark.parametrize(
    ("statement", "index"),
    [
        (lambda d: d.claim_jobs(10, None, "w", 30), "ix_sqlqueue_jobs_ready"),
        (lambda d: d.claim_jobs(10, ["a", "b"], "w", 30), "ix_sqlqueue_jobs_ready_in_queue"),
        (lambda d: d.next_due_time(None), "ix_sqlqueue_jobs_deferred"),
        (lambda d: d.next_due_time(["a", "b"]), "ix_sqlqueue_jobs_deferred_in_queue"),
        (lambda d: d.expire_jobs(), "ix_sqlqueue_jobs_expiring"),
        (lambda d: d.rescue_expired_jobs(3), "ix_sqlqueue_jobs_leased"),
        (lambda d: d.delete_finished_jobs(60, 100), "ix_sqlqueue_jobs_finished"),
        (lambda d: d.delete_finished_jobs(60, 100), "ix_sqlqueue_jobs_workflow"),
        (lambda d: d.revoke_jobs(["w"], False), "ix_sqlqueue_jobs_workflow"),
        (lambda d: d.group_member_ids("g"), "ix_sqlqueue_jobs_group"),
        # Jobs found by id, their status checked in words no partial index matches
        # (schema.STARTED_BY_ID): through the primary key, never a scan.
        (lambda d: d.extend_leases([("a", 1), ("b", 1)], 30), PRIMARY_KEY),
        (lambda d: d.update_progress(("a", 1), {"state": "X"}), PRIMARY_KEY),
        (lambda d: d.revoked_takes([("a", 1), ("b", 1)]), PRIMARY_KEY),
        (lambda d: d.lock_waiting(["a", "b"]), PRIMARY_KEY),
        (lambda d: d.release_waiting("a", 0), PRIMARY_KEY),
        (lambda d: d.drop_waiting(["a", "b"]), PRIMARY_KEY),
    ],
    ids=[
        "claim",
        "claim-queues",
        "next-due",
        "next-due-queues",
        "expire",
        "rescue",
        "prune",
        "prune-keeps-workflows",
        "revoke-workflow",
        "group",
        "extend-leases",
        "progress",
        "revoked-takes",
        "lock-waiting",
        "release-waiting",
        "drop-waiting",
    ],
)
def test_sqlite_reads_the_partial_indexes(
    sqlite_template: Path, tmp_path: Path, statement: Any, index: str
) -> None:
    # SQLite uses a partial index only when the query repeats its WHERE word for word; with
    # the statuses as bound parameters it would scan the whole table, finished jobs and all.
    path = tmp_path / "queue.db"
    path.write_bytes(sqlite_template.read_bytes())
    app = SQLQueue(f"sqlite:///{path}")
    compiled = statement(app.dialect).compile(
        dialect=app.engine.dialect, compile_kwargs={"render_postcompile": True}
    )
    # Only the plan is wanted: a value SQLite cannot bind (a time, a JSON dict) as text.
    params = tuple(
        value if value is None or isinstance(value, int | float | str) else str(value)
        for value in (compiled.params[name] for name in compiled.positiontup or ())
    )
    with app.engine.connect() as conn:
        plan = " ".join(
            str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)
        )
        conn.rollback()
    app.engine.dispose()
    assert uses_index(plan, index), plan
