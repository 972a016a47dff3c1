"""The sqlqueue_ tables, declared once for every database.

The migrations in ``migrations/`` create exactly this; a test compares the two.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

from sqlqueue.jobs import JobStatus

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
"""JSONB on PostgreSQL (indexable, compact), JSON text elsewhere."""

Timestamp = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
"""Every time is stored in UTC; SQLite keeps it as naive text and MySQL as DATETIME(6), which
``jobs.as_utc`` fixes on read."""

# The partial indexes' predicates. Queries that want an index say the same words: SQLite
# uses a partial index only for a query whose WHERE repeats the index's (a bound parameter
# in their place would not do), and PostgreSQL can then prove it without the values.
READY_WHERE = sa.text("status IN ('PENDING', 'RETRY')")
# The claim's two indexes hold the ready jobs without limits; the limited ones have their
# own (docs/limits.md), so that jobs held back by a limit are never walked past.
UNLIMITED_READY_WHERE = sa.text("status IN ('PENDING', 'RETRY') AND limit_key IS NULL")
LIMITED_READY_WHERE = sa.text("status IN ('PENDING', 'RETRY') AND limit_key IS NOT NULL")
LIMITED_RUNNING_WHERE = sa.text("status = 'STARTED' AND limit_key IS NOT NULL")
# READY_WHERE as those two indexes split it: a query over every ready job (``sqlqueue
# status``, ``purge``) asks each part in a SELECT of its own, each read from its index.
READY_PARTS = (UNLIMITED_READY_WHERE, LIMITED_READY_WHERE)
FINISHED_WHERE = sa.text("status IN ('SUCCESS', 'FAILURE', 'REVOKED', 'REJECTED', 'IGNORED')")
LEASED_WHERE = sa.text("status = 'STARTED'")
# A take's fence (its job still STARTED) where the jobs are found by id, in words no
# planner reads as the leased index's: those statements must reach their rows through the
# primary key. ANALYZE, run while nearly every job in the table is finished, tells
# PostgreSQL that almost none is STARTED, and a plan that walks every running job and joins
# it with every id given cost a drain beside ten million finished jobs three quarters of its
# speed (docs/storage.md).
STARTED_BY_ID = sa.text("coalesce(status, '') = 'STARTED'")
# The same for the steps of a workflow found by id while they wait: in the words of the
# unique index (every unfinished job), a plan walked the whole backlog for each release.
WAITING_BY_ID = sa.text("coalesce(status, '') = 'WAITING'")
# A job sent to run at once is due from its first moment (scheduled_at = created_at): only
# jobs sent with a countdown or an eta, and retries, can be ready and not yet due. A worker
# with nothing to do asks when the next of those is due, and reads only them.
DEFERRED_WHERE = sa.text("status IN ('PENDING', 'RETRY') AND scheduled_at > created_at")
EXPIRING_WHERE = sa.text("status IN ('PENDING', 'RETRY') AND expires_at IS NOT NULL")

JobId = (
    sa.String(255)
    .with_variant(sa.String(255, collation="C"), "postgresql")
    .with_variant(
        mysql.VARCHAR(255, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )
)
"""Text: a caller may choose a job's id (Celery's task_id=); sqlqueue's own ids are UUIDs.
Compared byte by byte on PostgreSQL and MySQL, whatever the database's locale."""

UniqueKey = sa.String(255).with_variant(
    mysql.VARCHAR(255, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)
"""A unique job's key: compared byte by byte on MySQL too (migration 0014), as elsewhere."""

jobs = sa.Table(
    "sqlqueue_jobs",
    metadata,
    sa.Column("id", JobId, primary_key=True),
    sa.Column("task_name", sa.String(200), nullable=False),
    sa.Column("queue", sa.String(200), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("args", Json, nullable=False),
    sa.Column("kwargs", Json, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("expired_leases", sa.Integer, nullable=False, server_default="0"),
    sa.Column("scheduled_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("started_at", Timestamp),
    sa.Column("finished_at", Timestamp),
    sa.Column("lease_expires_at", Timestamp),
    sa.Column("worker_id", sa.String(255)),
    sa.Column("result", Json),
    sa.Column("error_type", sa.String(255)),
    sa.Column("error_message", sa.Text),
    sa.Column("traceback", sa.Text),
    # What a running task last said of itself with update_state: {"state": ..., "meta": ...}.
    sa.Column("progress", Json),
    # Workflows (``plans``): the workflow a job belongs to (the id of the handle its sender
    # holds), the job or group it follows, and the group whose results it is one of.
    sa.Column("workflow_id", JobId),
    sa.Column("parent_id", JobId),
    sa.Column("group_id", JobId),
    sa.Column("group_index", sa.Integer),
    # On a group's first job only: the ids of all its jobs, in order (GroupResult.restore).
    sa.Column("group_members", Json),
    # A WAITING job: how many prerequisites have yet to succeed, which they are (in the
    # order their results are fed), and what it receives from them (``plans.Feed``).
    sa.Column("waiting_for", sa.Integer),
    sa.Column("prerequisites", Json),
    sa.Column("feed", sa.String(16)),
    # The jobs this one releases: those waiting for its success, and its link_error
    # callbacks, waiting for its failure. Null for a job nothing waits for.
    sa.Column("dependents", Json),
    sa.Column("errbacks", Json),
    # The key of a unique job (``unique_key=``, ``@app.task(unique=True)``): at most one
    # unfinished job holds it (``ix_sqlqueue_jobs_unique``).
    sa.Column("unique_key", UniqueKey),
    # Limits (``sqlqueue.limits``), written when the job is sent: the group it counts in
    # (its task's name and concurrency key), how many of the group may run at once, and
    # the seconds between two starts of its task. Null for a job without limits.
    sa.Column("limit_key", JobId),
    sa.Column("concurrency_limit", sa.Integer),
    sa.Column("rate_interval", sa.Float),
    sa.CheckConstraint(
        sa.column("status").in_([status.value for status in JobStatus]), name="status"
    ),
)

# Serves the claim exactly: ready rows only, in the order they are taken. Finished jobs
# leave the index, so taking a job costs the same with a million of them in the table.
sa.Index(
    "ix_sqlqueue_jobs_ready",
    jobs.c.priority.desc(),
    jobs.c.scheduled_at,
    jobs.c.id,
    postgresql_where=UNLIMITED_READY_WHERE,
    sqlite_where=UNLIMITED_READY_WHERE,
)

# Serves the claim of a worker given queues (``--queues``): one ordered probe per queue, so a
# rare queue's worker never walks the ready jobs of a busy one.
sa.Index(
    "ix_sqlqueue_jobs_ready_in_queue",
    jobs.c.queue,
    jobs.c.priority.desc(),
    jobs.c.scheduled_at,
    jobs.c.id,
    postgresql_where=UNLIMITED_READY_WHERE,
    sqlite_where=UNLIMITED_READY_WHERE,
)

# Serve the claim of limited jobs: the ready ones by group, in claim order within each, so
# a claim looks at the first job of each group and skips a held group whole; and the running
# ones by group, which the claim counts.
sa.Index(
    "ix_sqlqueue_jobs_limited",
    jobs.c.limit_key,
    jobs.c.priority.desc(),
    jobs.c.scheduled_at,
    jobs.c.id,
    postgresql_where=LIMITED_READY_WHERE,
    sqlite_where=LIMITED_READY_WHERE,
)
sa.Index(
    "ix_sqlqueue_jobs_limited_running",
    jobs.c.limit_key,
    postgresql_where=LIMITED_RUNNING_WHERE,
    sqlite_where=LIMITED_RUNNING_WHERE,
)

# Serve an idle worker's question, when is the next job due: one probe for every queue, or
# one per queue it was given.
sa.Index(
    "ix_sqlqueue_jobs_deferred",
    jobs.c.scheduled_at,
    postgresql_where=DEFERRED_WHERE,
    sqlite_where=DEFERRED_WHERE,
)
sa.Index(
    "ix_sqlqueue_jobs_deferred_in_queue",
    jobs.c.queue,
    jobs.c.scheduled_at,
    postgresql_where=DEFERRED_WHERE,
    sqlite_where=DEFERRED_WHERE,
)

# Serves the expiry pass: ready jobs sent with ``expires``, soonest first, so a pass reads
# the expired ones and stops.
sa.Index(
    "ix_sqlqueue_jobs_expiring",
    jobs.c.expires_at,
    postgresql_where=EXPIRING_WHERE,
    sqlite_where=EXPIRING_WHERE,
)

# Serves the rescue of jobs whose worker stopped renewing their lease.
sa.Index(
    "ix_sqlqueue_jobs_leased",
    jobs.c.lease_expires_at,
    postgresql_where=LEASED_WHERE,
    sqlite_where=LEASED_WHERE,
)

# Serves pruning: finished jobs, oldest first, so deleting them never scans live ones.
sa.Index(
    "ix_sqlqueue_jobs_finished",
    jobs.c.finished_at,
    postgresql_where=FINISHED_WHERE,
    sqlite_where=FINISHED_WHERE,
)

# Serves the revoke of a whole workflow, and pruning's question whether a finished job's
# workflow has a job left to start (which will read the results before it): both ask for the
# jobs of a workflow not yet started, so a job leaves the index when it is taken, and
# taking and finishing the jobs of a workflow cost what they cost any job. (The running
# jobs of a workflow are found among the running jobs, ``ix_sqlqueue_jobs_leased``.)
UNSTARTED_WORKFLOW_WHERE = sa.text(
    "workflow_id IS NOT NULL AND status IN ('WAITING', 'PENDING', 'RETRY')"
)
sa.Index(
    "ix_sqlqueue_jobs_workflow",
    jobs.c.workflow_id,
    postgresql_where=UNSTARTED_WORKFLOW_WHERE,
    sqlite_where=UNSTARTED_WORKFLOW_WHERE,
)

# Serves GroupResult.restore: a group's first job, which lists them all. Only first jobs
# enter it, so the other jobs of a group are taken and finished at no cost to it.
GROUP_WHERE = sa.text("group_index = 0")
sa.Index(
    "ix_sqlqueue_jobs_group",
    jobs.c.group_id,
    postgresql_where=GROUP_WHERE,
    sqlite_where=GROUP_WHERE,
)

# Unique jobs: at most one unfinished job per key. The index holds exactly the unfinished
# statuses, so a job moving among them (PENDING -> STARTED -> RETRY -> PENDING) keeps its
# one entry and never conflicts with itself; it leaves the index when it finishes, which
# frees the key. Two senders of one key in two open transactions: the second waits for the
# first's commit (then its insert does nothing) or rollback (then it inserts).
UNFINISHED_WHERE = sa.text("status IN ('WAITING', 'PENDING', 'RETRY', 'STARTED')")
sa.Index(
    "ix_sqlqueue_jobs_unique",
    jobs.c.unique_key,
    unique=True,
    postgresql_where=UNFINISHED_WHERE,
    sqlite_where=UNFINISHED_WHERE,
)


rate_limits = sa.Table(
    "sqlqueue_rate_limits",
    metadata,
    sa.Column(
        "task_name",
        sa.String(200).with_variant(
            mysql.VARCHAR(200, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
        ),
        primary_key=True,
    ),
    # A token bucket kept as two times (GCRA): when it is full again, and when it next holds
    # a job. Written by claims, under this row's lock, from the database's clock.
    sa.Column("full_at", Timestamp, nullable=False),
    sa.Column("next_at", Timestamp, nullable=False),
)
"""One row per rate-limited task that has started a job (docs/limits.md)."""


def job_columns(table: sa.Table | sa.TableClause = jobs) -> list[sa.ColumnElement[Any]]:
    """What a ``Job`` is read from: the columns, but for the lists of ids a workflow's job
    keeps (which a claim would decode for every job it takes, a chord's body's list of
    thousands), of which only whether it releases others matters (``releases``)."""
    return [
        *(column for column in table.c if column.name not in ID_LISTS),
        sa.or_(table.c.dependents.is_not(None), table.c.errbacks.is_not(None)).label("releases"),
    ]


ID_LISTS = ("group_members", "prerequisites", "dependents", "errbacks")


# Periodic tasks (``sqlqueue.scheduler``): one row per name, the latest tick taken. A
# scheduler sends a tick's job only if it moves ``last_tick`` forward, in the transaction
# that writes the job, so however many schedulers run, each tick is sent once.
schedules = sa.Table(
    "sqlqueue_schedules",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("task_name", sa.String(200), nullable=False),
    sa.Column("last_tick", Timestamp, nullable=False),
    # The job sent for last_tick; null when that tick was skipped (a name seen first).
    sa.Column("job_id", JobId),
    sa.Column("sent_at", Timestamp),
)
# Serves ``sqlqueue status`` (``status``): how many jobs of a queue finished with an outcome
# lately, each count one range of this index, read only as far as its cap; and which queues
# have any history, one probe per queue (a skip scan). Only finished jobs enter it.
sa.Index(
    "ix_sqlqueue_jobs_outcomes",
    jobs.c.queue,
    jobs.c.status,
    jobs.c.finished_at,
    postgresql_where=FINISHED_WHERE,
    sqlite_where=FINISHED_WHERE,
)

workers = sa.Table(
    "sqlqueue_workers",
    metadata,
    # The worker's own id, the one its jobs' ``worker_id`` names.
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    # The queues it takes jobs from; null for every queue.
    sa.Column("queues", Json),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("pool", sa.String(16), nullable=False),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("started_at", Timestamp, nullable=False),
    # The database's clock at its last heartbeat (``heartbeats``).
    sa.Column("last_seen_at", Timestamp, nullable=False),
    sa.Column("jobs_running", sa.Integer, nullable=False, server_default="0"),
)

# Serves the question which workers are live, and the chore that forgets gone ones.
sa.Index("ix_sqlqueue_workers_last_seen_at", workers.c.last_seen_at)
