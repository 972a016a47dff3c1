"""The recorder: one thread that writes the outcomes of finished jobs, all waiting ones at once.

A job's thread hands its outcome over and goes back to the pool; under load, outcomes pile up
while the previous batch commits, so batches grow with the load and a busy worker pays one
statement for many jobs, while a lone job is written at once. Every write is fenced by the
job's take, and the answer says which takes still held their job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from queue import Empty, SimpleQueue

from sqlqueue.exceptions import DatabaseError, Terminated
from sqlqueue.jobs import Job, JobStatus
from sqlqueue.outages import Outage
from sqlqueue.outcomes import Outcome
from sqlqueue.serialization import Failure, exception_path
from sqlqueue.store import JobStore

logger = logging.getLogger("sqlqueue.worker")  # the job lines are the worker's log

TERMINATED = exception_path(Terminated)
"""The error type of a run stopped by ``revoke(terminate=True)``."""

MAX_OUTCOME_BATCH = 1000
"""Most outcomes the recorder writes in one transaction."""


@dataclass(frozen=True, slots=True)
class Finished:
    """A job whose task has returned, waiting for its outcome to be written."""

    job: Job
    outcome: Outcome
    duration: float
    """Seconds the task ran."""
    at: float
    """When it returned (``time.monotonic()``); the lease runs from about then."""


class Recorder:
    """Writes the outcomes handed to it, in batches, on a thread of its own."""

    def __init__(
        self, store: JobStore, lease: float, written: Callable[[Sequence[Finished]], None]
    ) -> None:
        self._store = store
        self._lease = lease
        self._written = written
        """Told about every batch once it is written, or given up (the jobs run again)."""
        self._waiting: SimpleQueue[Finished | None] = SimpleQueue()
        """Outcomes to write; None says to stop."""
        self._outage = Outage(logger, "recorder")
        self._thread = threading.Thread(target=self._run, name="sqlqueue-recorder")

    def start(self) -> None:
        self._thread.start()

    def put(self, finished: Finished) -> None:
        """Hand over a job whose task has returned."""
        self._waiting.put(finished)

    def stop(self) -> None:
        """Write everything handed over so far, then stop."""
        self._waiting.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._waiting.get()
            batch = [] if first is None else [first]
            stop = first is None
            while not stop and len(batch) < MAX_OUTCOME_BATCH:
                try:
                    item = self._waiting.get_nowait()
                except Empty:
                    break
                if item is None:
                    stop = True
                else:
                    batch.append(item)
            if batch:
                self._record(batch)
            if stop:
                return

    def _record(self, batch: Sequence[Finished]) -> None:
        try:
            written = self._write(batch)
            for finished, outcome, kept in written:
                if kept is not None:
                    self._log_outcome(finished, outcome, kept)
        except BaseException:
            logger.exception(
                "recording %d job(s) crashed the worker's bookkeeping; they will run again",
                len(batch),
            )
        finally:
            self._written(batch)

    def _write(self, batch: Sequence[Finished]) -> list[tuple[Finished, Outcome, bool | None]]:
        """Write a batch of outcomes; for each, whether its take still held the job (None:
        not written, it will run again)."""
        outcomes = [finished.outcome for finished in batch]
        # Until the lease runs out the outcome is still ours to write; after that the job is
        # another worker's, and it will run again.
        deadline = min(finished.at for finished in batch) + self._lease
        pause = 0.5
        refused = False
        while True:
            try:
                kept = self._store.record_outcomes(
                    [
                        ((finished.job.id, finished.job.attempts), outcome)
                        for finished, outcome in zip(batch, outcomes, strict=True)
                    ],
                    releasing=[finished.job.id for finished in batch if finished.job.releases],
                    frees_slots=any(finished.job.concurrency_limit for finished in batch),
                )
                self._outage.answered()
                return [
                    (finished, outcome, (finished.job.id, finished.job.attempts) in kept)
                    for finished, outcome in zip(batch, outcomes, strict=True)
                ]
            except DatabaseError as exc:
                if not exc.transient and len(batch) > 1:
                    # One outcome the database refuses fails the whole transaction: write
                    # each on its own to find it, and keep the others.
                    return [written for finished in batch for written in self._write([finished])]
                if not exc.transient and not refused:
                    # The database refuses this outcome itself and always will: store why,
                    # rather than let the job run again and again until it is given up.
                    outcomes, refused = [Outcome.failed(Failure.from_exception(exc))], True
                    continue
                if not exc.transient or time.monotonic() + pause >= deadline:
                    for finished in batch:
                        logger.error(
                            "could not record job id=%s: %s; it will run again",
                            finished.job.id,
                            exc,
                        )
                    return [(finished, finished.outcome, None) for finished in batch]
                self._outage.failed(exc)  # trying again until the lease runs out
                time.sleep(pause)
                pause = min(pause * 2, 5.0)

    def _log_outcome(self, finished: Finished, outcome: Outcome, kept: bool) -> None:
        job = finished.job
        status = outcome.status.value
        if not kept and outcome.failure and outcome.failure.error_type == TERMINATED:
            logger.info(
                "job revoked task=%s id=%s: stopped while it ran (revoke(terminate=True))",
                job.task_name,
                job.id,
            )
        elif not kept:
            logger.warning(
                "job lost its lease task=%s id=%s outcome=%s discarded: another worker has taken it, "
                "or it was revoked",
                job.task_name,
                job.id,
                status,
            )
        elif outcome.status is JobStatus.FAILURE and outcome.failure is not None:
            logger.error(
                "job finished task=%s id=%s outcome=FAILURE duration=%.3fs\n%s",
                job.task_name,
                job.id,
                finished.duration,
                outcome.failure.traceback,
            )
        else:
            logger.info(
                "job finished task=%s id=%s outcome=%s duration=%.3fs",
                job.task_name,
                job.id,
                status,
                finished.duration,
            )
