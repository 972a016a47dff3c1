"""Prefetch: how many jobs a worker holds beyond its threads, sized to the pace of its work.

A worker that claims only for its free threads pays one claim round trip for every job or two
of short work, while its threads wait. Holding a few more (what the threads will start while
the next claim is in flight) keeps them busy, and the claims grow with the pace of the work.
Held jobs that wait are leased and renewed like running ones, and given back at a stop; but a
job waiting in one worker while another could run it is a job late, so the prefetch follows
moving averages of job and claim times: none while job times are unknown, none once jobs
outlast a claim, and none while the buffer has stopped moving (the worker gives it back).
"""

from __future__ import annotations

import time

MAX_PREFETCH = 500
"""Most jobs a worker holds beyond its threads, however short its jobs are."""

STALLED_BUFFER = 0.1
"""Seconds without a job starting, while jobs wait in the buffer, after which the worker
gives them back: every thread is busy with a job far longer than the prefetch allowed
for, and another worker may be idle. Prefetch stays off until jobs start again."""

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
        self._moved = 0.0
        """When a job was last taken from the buffer, or a claim put jobs in it
        (``time.monotonic()``): long ago, with jobs still in it, the buffer has stalled."""

    def claim_size(self, unfinished: int) -> int:
        """How many jobs to ask for now, with ``unfinished`` taken and not yet returned: the
        free threads, plus the prefetch once the buffer has run down by half (or a thread has
        nothing to do)."""
        prefetch = self._prefetch()
        room = self._concurrency + prefetch - unfinished
        if unfinished < self._concurrency or 2 * room >= prefetch > 0:
            return max(room, 0)
        return 0

    def stalled(self) -> bool:
        """Whether no job has left the buffer, nor a claim filled it, for ``STALLED_BUFFER``."""
        return time.monotonic() - self._moved > STALLED_BUFFER

    def moved(self) -> None:
        """A job was taken from the buffer, or a claim put jobs in it."""
        self._moved = time.monotonic()

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
        # the buffer has stalled, at most MAX_PREFETCH.
        if self._run_time is None or self.stalled():
            return 0
        per_claim = self._concurrency * self._claim_time / max(self._run_time, 1e-6)
        return min(MAX_PREFETCH, int(per_claim))
