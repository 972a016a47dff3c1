"""Workflows on MySQL 8 and MariaDB ≥ 10.6: their statements, beside ``mysql``'s dialect.

A workflow is written as ``insert_jobs`` writes a send: one ``INSERT … SELECT`` from
``JSON_TABLE``, every row in one statement, so it is atomic even on a caller's connection in
autocommit. Its waiting steps are stored ``WAITING``, which migration 0013's ``claim_ready``
leaves NULL: no claim's index holds them until they are released.

Releasing a step takes no ``UPDATE … RETURNING``: ``count_down_and_release`` is one UPDATE
per waiting step that both counts it down and, when that brings its count to zero, makes it
``PENDING``, by primary key, under the row lock the UPDATE takes. A second transaction that
counts down the same step (the last header jobs of a chord, finished by two workers at once)
waits for that lock, then reads the committed row afresh, as an UPDATE's read always does in
InnoDB: the counts add up, and exactly one UPDATE sees the step still ``WAITING`` with the
last of its count, so the body is released once. No ``EXISTS`` is asked, nothing polls.

Deadlocks among finishers: each locks its own takes first (no two hold the same take), then
the steps those wait for in id order, so two finishers wait for each other's steps in one
order and never in a cycle. (One statement per step, not one UPDATE joined with the counts:
a multi-table UPDATE locks rows in whatever order its plan reads them.) A revoke or a
failure that stops a workflow's later steps locks in other orders; InnoDB then ends one
transaction, which the store runs again.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy.engine import Connection, CursorResult, RowMapping
from sqlalchemy.sql.dml import Delete

from sqlqueue.dialects.mysql_sql import KEY_TYPE
from sqlqueue.plans import PlannedRow
from sqlqueue.schema import jobs


def workflow_row(row: PlannedRow, eta: str | None, expires_at: str | None) -> dict[str, Any]:
    """One job of ``INSERT_WORKFLOW``'s ``%(jobs)s``: the columns that are set, by name. A
    member left out reads NULL on both servers (``NULL ON EMPTY``, their manuals' default),
    where what a JSON null reads is not stated alike. Lists of ids travel as JSON texts, as
    the arguments do; ``eta`` and ``expires_at`` are UTC texts as DATETIME(6) reads them."""
    values: dict[str, Any] = {
        "id": row.id,
        "args": row.args,
        "kwargs": row.kwargs,
        "task_name": row.task_name,
        "queue": row.queue,
        "priority": row.priority,
        "eta": eta,
        "countdown": round(row.countdown * 1_000_000),
        "expires_at": expires_at,
        "expires_in": None if row.expires_in is None else round(row.expires_in * 1_000_000),
        "parent_id": row.parent_id,
        "group_id": row.group_id,
        "group_index": row.group_index,
        "waiting_for": row.waiting_for,
        "feed": row.feed,
    }
    for name in ("group_members", "prerequisites", "dependents", "errbacks"):
        ids = getattr(row, name)
        values[name] = None if ids is None else json.dumps(ids)
    return {name: value for name, value in values.items() if value is not None}


def count_down_and_release(
    connection: Connection,
    finished: Iterable[RowMapping],
    drop: Callable[[Sequence[str]], Delete],
) -> None:
    """The steps waiting for these jobs, which have just succeeded, counted down and, at
    zero, released; their ``link_error`` callbacks, which no failure will release, deleted
    (``drop``: the shared ``drop_waiting``). In the transaction that recorded the successes,
    after their rows were locked."""
    successes: Counter[str] = Counter()
    unneeded: set[str] = set()
    for row in finished:
        successes.update(row["dependents"] or ())
        unneeded.update(row["errbacks"] or ())
    if successes:
        connection.exec_driver_sql(
            COUNT_DOWN_AND_RELEASE,
            [{"id": job_id, "finished": successes[job_id]} for job_id in sorted(successes)],
        )
    if unneeded:
        connection.execute(drop(sorted(unneeded)))


WORKFLOW_COLUMNS = ", ".join(
    (
        f"id {KEY_TYPE} PATH '$.id'",
        "args LONGTEXT CHARACTER SET utf8mb4 PATH '$.args'",
        "kwargs LONGTEXT CHARACTER SET utf8mb4 PATH '$.kwargs'",
        "task_name VARCHAR(200) CHARACTER SET utf8mb4 PATH '$.task_name'",
        "queue VARCHAR(200) CHARACTER SET utf8mb4 PATH '$.queue'",
        "priority INTEGER PATH '$.priority'",
        "eta DATETIME(6) PATH '$.eta'",
        "countdown BIGINT PATH '$.countdown'",
        "expires_at DATETIME(6) PATH '$.expires_at'",
        "expires_in BIGINT PATH '$.expires_in'",
        f"parent_id {KEY_TYPE} PATH '$.parent_id'",
        f"group_id {KEY_TYPE} PATH '$.group_id'",
        "group_index INTEGER PATH '$.group_index'",
        "group_members LONGTEXT CHARACTER SET utf8mb4 PATH '$.group_members'",
        "waiting_for INTEGER PATH '$.waiting_for'",
        "prerequisites LONGTEXT CHARACTER SET utf8mb4 PATH '$.prerequisites'",
        "feed VARCHAR(16) CHARACTER SET utf8mb4 PATH '$.feed'",
        "dependents LONGTEXT CHARACTER SET utf8mb4 PATH '$.dependents'",
        "errbacks LONGTEXT CHARACTER SET utf8mb4 PATH '$.errbacks'",
    )
)
"""``INSERT_WORKFLOW``'s columns of each job, read from its JSON object by name."""


INSERT_WORKFLOW = f"""
INSERT INTO {jobs.name} (id, args, kwargs, task_name, queue, priority, status, scheduled_at,
                         expires_at, created_at, workflow_id, parent_id, group_id,
                         group_index, group_members, waiting_for, prerequisites, feed,
                         dependents, errbacks)
SELECT new.id, new.args, new.kwargs, new.task_name, new.queue, new.priority,
       CASE WHEN new.waiting_for > 0 THEN 'WAITING' ELSE 'PENDING' END,
       COALESCE(new.eta, UTC_TIMESTAMP(6) + INTERVAL new.countdown MICROSECOND),
       COALESCE(new.expires_at, UTC_TIMESTAMP(6) + INTERVAL new.expires_in MICROSECOND),
       UTC_TIMESTAMP(6), %(workflow_id)s, new.parent_id, new.group_id, new.group_index,
       new.group_members, NULLIF(new.waiting_for, 0), new.prerequisites, new.feed,
       new.dependents, new.errbacks
FROM JSON_TABLE(%(jobs)s, '$[*]' COLUMNS ({WORKFLOW_COLUMNS})) AS new
"""  # noqa: S608 (constants, no input)
"""Each element of ``%(jobs)s`` is one job (``workflow_row``). One reading of the clock for
the whole statement: a waiting step's countdown is kept as ``scheduled_at - created_at``,
and counted again from its release."""

WANTED_COLUMNS = f"position FOR ORDINALITY, id {KEY_TYPE} PATH '$'"

RESULTS_IN_ORDER = f"""
SELECT job.result
FROM JSON_TABLE(%(ids)s, '$[*]' COLUMNS ({WANTED_COLUMNS})) AS wanted
LEFT JOIN {jobs.name} AS job ON job.id = wanted.id
ORDER BY wanted.position
"""  # noqa: S608 (constants, no input)
"""The results of the ``wanted`` jobs, one row each, in their order (``read_results``)."""

CHORD_RESULTS = f"""
SELECT job.result
FROM {jobs.name} AS body
JOIN JSON_TABLE(body.prerequisites, '$[*]' COLUMNS ({WANTED_COLUMNS})) AS wanted
LEFT JOIN {jobs.name} AS job ON job.id = wanted.id
WHERE body.id = %(id)s
ORDER BY wanted.position
"""  # noqa: S608 (constants, no input)
"""The results of a chord's header, one row each, in the order of its body's
``prerequisites`` (``read_results``)."""


def read_results(answer: CursorResult[Any]) -> list[Any]:
    """The results ``RESULTS_IN_ORDER`` or ``CHORD_RESULTS`` answered, one row each. Not
    gathered into one array by the server: MySQL's ``JSON_ARRAYAGG`` takes no ORDER BY, and
    a ``GROUP_CONCAT`` longer than ``max_allowed_packet`` (16 MB by default) is NULL, with
    only a warning. A result alone is never longer: it was written in one packet."""
    return [None if result is None else json.loads(result) for result in answer.scalars()]


COUNT_DOWN_AND_RELEASE = f"""
UPDATE {jobs.name}
SET status = CASE WHEN waiting_for > %(finished)s THEN 'WAITING' ELSE 'PENDING' END,
    scheduled_at = CASE WHEN waiting_for > %(finished)s THEN scheduled_at
                        ELSE UTC_TIMESTAMP(6) + INTERVAL GREATEST(0,
                             TIMESTAMPDIFF(MICROSECOND, created_at, scheduled_at)) MICROSECOND
                   END,
    waiting_for = CASE WHEN waiting_for > %(finished)s THEN waiting_for - %(finished)s END
WHERE id = %(id)s AND coalesce(status, '') = 'WAITING'  -- schema.WAITING_BY_ID
"""  # noqa: S608 (constants, no input)
"""``finished`` more prerequisites of a waiting step have succeeded: count it down, or, when
these were its last, release it (its countdown counting from now). MySQL assigns left to
right, each assignment seeing those before it; ``waiting_for`` is assigned last, so every
CASE reads the count as it was, in either server's assignment mode."""
