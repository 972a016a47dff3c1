"""Prefetch: how many jobs a worker holds beyond its threads, sized to the pace of its work.

A worker that claims only for its free threads pays one claim round trip for every job or two
of short work, while its threads wait. Holding a few more (what the threads will start while
the next claim is in flight) keeps them busy, and the claims grow with the pace of the work.
Held jobs that wait are leased and renewed like running ones, and given back at a stop; but a
job waiting in one worker while another could run it is a job late, so the prefetch follows
moving averages of job and claim times: none while job times are unknown, none once jobs
outlast a claim. The averages can be wrong for a while (jobs that grow longer than those that
filled the buffer), so the worker also watches the buffer's age: once its oldest job has waited
longer than ``MAX_BUFFER_WAIT``, it gives the buffer back and prefetches nothing until a job
starts again.
"""

from __future__ import annotations

import time
from collections import deque

MAX_PREFETCH = 500
"""Most jobs a worker holds beyond its threads, however short its jobs are."""

MAX_BUFFER_WAIT = 0.1
"""Seconds a job may wait in a worker's buffer. Sized by the averages, a prefetched job waits
about one claim; once the oldest has waited longer than this (every thread busy with jobs
longer than the prefetch allowed for), the worker gives the buffer back for any worker to
take, and prefetches nothing until a job starts again."""

SMOOTHING = 0.2
"""Weight of the newest figure in the moving averages of run and claim times."""


class Prefetch:
    """One worker's moving averages of its job and claim times, and the claims they allow."""

    def __init__(self, concurrency: int) -> None:
        self._concurrency = concurrency
        self._run_time: float | None = None
        """Moving average of the seconds a job keeps its thread; None until one has returned."""
        self._claim_time = 0.0
        """Moving average of the seconds a claim takes, round trip included."""
        self._paused = False
        """Set when the buffer was given back; cleared when a job starts."""
        self._entered = 0
        """Jobs ever put in the buffer (the loop's count; only the loop fills the buffer)."""
        self._claims: deque[tuple[int, float]] = deque()
        """The claims whose jobs may still be in the buffer, oldest first: ``_entered`` once
        each claim's jobs were in, and when (``time.monotonic()``)."""

    def claim_size(self, unfinished: int) -> int:
        """How many jobs to ask for now, with ``unfinished`` taken and not yet returned: the
        free threads, plus the prefetch once the buffer has run down by half (or a thread has
        nothing to do)."""
        prefetch = self._prefetch()
        room = self._concurrency + prefetch - unfinished
        if unfinished < self._concurrency or 2 * room >= prefetch > 0:
            return max(room, 0)
        return 0

    def filled(self, count: int) -> None:
        """A claim put ``count`` jobs in the buffer (called by the loop only)."""
        self._entered += count
        self._claims.append((self._entered, time.monotonic()))

    def oldest_wait(self, waiting: int) -> float:
        """Seconds that the oldest of the ``waiting`` jobs in the buffer has waited there;
        0 when none waits (called by the loop only).

        The buffer is first in, first out: the jobs in it are the last ``waiting`` to enter,
        so the oldest of them came with the first claim that put in more than the others
        have taken out. Counting this way costs the job threads nothing per job.
        """
        if waiting <= 0:
            self._claims.clear()
            return 0.0
        gone = self._entered - waiting
        while self._claims and self._claims[0][0] <= gone:
            self._claims.popleft()
        return time.monotonic() - self._claims[0][1] if self._claims else 0.0

    def gave_back(self) -> None:
        """The buffer was given back: no prefetch until a job starts."""
        self._paused = True

    def started(self) -> None:
        """A job left the buffer to run (called by the job threads)."""
        self._paused = False

    def claimed(self, seconds: float) -> None:
        """A claim took this long."""
        self._claim_time += SMOOTHING * (seconds - self._claim_time)

    def ran(self, seconds: float) -> None:
        """A job kept its thread this long."""
        # Unlocked: a lost update among job threads only slows the average down.
        average = self._run_time
        self._run_time = seconds if average is None else average + SMOOTHING * (seconds - average)

    def _prefetch(self) -> int:
        # What the threads will start during one claim; none while no job has returned or
        # since the buffer was given back, at most MAX_PREFETCH.
        if self._run_time is None or self._paused:
            return 0
        per_claim = self._concurrency * self._claim_time / max(self._run_time, 1e-6)
        return min(MAX_PREFETCH, int(per_claim))
