"""The process pool's side of a worker: its job threads hand their children batches.

Each of the worker's job threads owns one child of the ``ProcessPool`` and hands it, from the
worker's buffer, the first job waiting and, when more wait, a share of them (never more than
the others' shares, so that every child has work). The child sends each outcome back as soon
as it has it, and the job is recorded, and its slot freed, then: a batch costs the child one
pipe round trip, not one per job, and every guarantee still holds per job
(docs/worker.md, "The process pool and time limits").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Any

from sqlqueue.dialects.base import Take, take_of
from sqlqueue.jobs import Job
from sqlqueue.outcomes import Outcome
from sqlqueue.prefetch import Prefetch
from sqlqueue.processes import ChildStartError, ProcessPool
from sqlqueue.recorder import Finished, Recorder

if TYPE_CHECKING:
    from sqlqueue.tasks import Task

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchRunner:
    """What a worker's job threads need to run its jobs in child processes, in batches."""

    pool: ProcessPool
    buffer: SimpleQueue[Job | None]
    """The worker's jobs taken and not started, in claim order; None stops one thread."""
    concurrency: int
    tasks: Mapping[str, Task[..., Any]]
    """The app's registry, by task name."""
    prefetch: Prefetch
    recorder: Recorder
    stopping: threading.Event
    free_slots: Callable[[int], None]
    """Tell the worker that this many of its jobs have returned (or will never start)."""
    forget: Callable[[Iterable[Take]], None]
    """Tell the worker that it no longer holds these takes: they come back by their lease."""
    may_start: Callable[[Job], bool]
    """Whether a job from the buffer is still the worker's to start (its lease has not run
    out); a job refused is dropped, its slot freed."""
    fail: Callable[[BaseException], None]
    """Stop the worker, as gracefully as a SIGTERM, with this error."""

    def run(self) -> None:
        """Hand this thread's child batches from the buffer until a stop."""
        last = False
        while not last and (job := self.buffer.get()) is not None:
            batch = [job]
            share = min(self.pool.batch_size, 1 + self.buffer.qsize() // self.concurrency)
            while len(batch) < share:
                try:
                    more = self.buffer.get_nowait()
                except Empty:
                    break
                if more is None:  # this thread's stop: after this batch
                    last = True
                    break
                batch.append(more)
            batch = [job for job in batch if self.may_start(job)]
            if batch:
                self.prefetch.started()
                self._run_batch(batch)

    def _run_batch(self, batch: Sequence[Job]) -> None:
        # Each outcome is recorded, and its slot freed, as soon as the child sends it.
        unreported = {take_of(job) for job in batch}

        def report(job: Job, outcome: Outcome, duration: float) -> None:  # in this thread
            self.recorder.put(Finished(job, outcome, duration, time.monotonic()))
            self.prefetch.ran(duration)
            unreported.discard(take_of(job))
            self.free_slots(1)

        try:
            tasks = [(self.tasks.get(job.task_name), job) for job in batch]
            self.pool.run(tasks, report, self.stopping)
        except ChildStartError as exc:
            # The jobs not reported never started: they stay held, and are given back when
            # the worker stops.
            logger.error("stopping: %s", exc)
            self.fail(exc)
        except BaseException:
            # Nothing may die silently in a pool thread; the jobs come back through their leases.
            logger.exception(
                "a batch of %d job(s) crashed the worker's bookkeeping; its unfinished jobs "
                "will run again",
                len(unreported),
            )
            self.forget(unreported)
        finally:
            # Jobs not reported did not start (a stop, a child that cannot start): their slots
            # are free; they stay held until given back.
            self.free_slots(len(unreported))
