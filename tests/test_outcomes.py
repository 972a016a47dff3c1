"""One outcome from execution to the row: the result is encoded to JSON once, by the check in
``run_task``, and that text is what the pipe carries and the store writes; on every database."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from conftest import work_off

from sqlqueue import JobStatus, SQLQueue
from sqlqueue.execution import run_task
from sqlqueue.outcomes import Outcome
from sqlqueue.processes import outcome_from_message, outcome_message
from sqlqueue.request import Request
from sqlqueue.serialization import Failure

BIG = 2**70 + 1
"""An int no float holds: a round trip through a float would change its last digits."""


def request_for(name: str) -> Request:
    return Request(id="r", task=name, args=[], kwargs={}, retries=0, attempts=1, queue="q")


def test_a_success_carries_the_json_text_that_the_row_stores(app: SQLQueue) -> None:
    # Given a task returning a float with no exact binary form, an int beyond any float's
    # precision and a tuple
    @app.task(name="t.figures")
    def figures() -> dict[str, Any]:
        return {"ratio": 0.1, "big": BIG, "pair": (1, 2)}

    # When it runs, its outcome is a success holding the return value's JSON text
    outcome = run_task(figures, request_for(figures.name))
    assert outcome == Outcome.succeeded(f'{{"ratio": 0.1, "big": {BIG}, "pair": [1, 2]}}')

    # ... and when the store writes that outcome for a taken job
    job_id = app.send_task("t.figures").id
    (job,) = app.store.claim_jobs(1, None, "w1", lease=30)
    assert app.store.record_outcomes([((job_id, job.attempts), outcome)]) == {
        (job_id, job.attempts)
    }

    # I expect the row to hold that value exactly: every digit, the tuple as a list
    assert app.AsyncResult(job_id).get(timeout=1) == {"ratio": 0.1, "big": BIG, "pair": [1, 2]}
    if app.dialect.name == "sqlite":  # a text column: the very text encoded (jsonb re-spells it)
        with app.engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT result FROM sqlqueue_jobs")).scalar_one()
        assert stored == outcome.result_json


def test_a_result_that_cannot_be_encoded_is_a_failure_with_no_result(app: SQLQueue) -> None:
    @app.task(name="t.opaque")
    def opaque() -> object:
        return object()

    outcome = run_task(opaque, request_for(opaque.name))

    assert (outcome.status, outcome.result_json) == (JobStatus.FAILURE, None)
    assert outcome.failure is not None
    assert outcome.failure.error_type == "sqlqueue.exceptions.SerializationError"
    assert "The return value of task 't.opaque' must be JSON-serialisable" in (
        outcome.failure.error_message
    )


def test_the_process_pool_pipe_carries_each_outcome_whole() -> None:
    failure = Failure("ValueError", "line one\nline two", "Traceback …\n  ValueError")
    sent = [
        Outcome.succeeded(json.dumps({"text": "two\nlines, é, 😀", "ratio": 0.1, "big": BIG})),
        Outcome.succeeded("null"),
        Outcome.succeeded(None),  # ignore_result
        Outcome.succeeded('""'),
        Outcome.failed(failure),
        Outcome.retrying(2.5, failure),
        Outcome.retrying(0.0, None),
        Outcome.retrying(1.0, None, [1, "a\nb"], {"k": None}),
        Outcome.requeued(failure),
        Outcome.rejected(failure),
        Outcome.ignored(failure),
    ]

    received = [outcome_from_message(outcome_message(outcome)) for outcome in sent]

    assert received == sent


def test_an_eager_result_reads_as_a_workers_result_would(app: SQLQueue) -> None:
    # Given a task returning what JSON spells otherwise: a tuple, and a dict with int keys
    @app.task(name="t.shapes")
    def shapes() -> dict[Any, Any]:
        return {"pair": (1, 2), "by_id": {7: "seven"}}

    sent = shapes.delay()
    work_off(app)
    from_worker = sent.get(timeout=5)

    # When it runs eagerly instead
    app.conf.task_always_eager = True
    eager = shapes.delay()

    # I expect the same value as the worker's row gives back
    assert eager.get() == from_worker == {"pair": [1, 2], "by_id": {"7": "seven"}}
