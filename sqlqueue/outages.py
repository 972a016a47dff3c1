"""Outage: one line when the database goes away, one when it is back, not one per attempt.

Each of a worker's threads that talks to the database (the claim loop, the chores, the lease
renewals and heartbeat, the revocations' watch, the scheduler) tries again, with backoff,
while the database does not answer. A line per attempt would repeat itself for as long as the
outage lasts; an ``Outage`` per thread and purpose says, instead, when the first attempt
failed (a warning, with the error) and when one answered again (with how long it was gone).
"""

from __future__ import annotations

import logging
import time


class Outage:
    """Logs the first failure of a run of failed attempts, and the first success after it."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._logger = logger
        self._what = what
        """What failed, at the start of each line: ``claims``, ``chores``, …"""
        self._since: float | None = None
        """When (``time.monotonic()``) the first attempt of this outage failed; None: no outage."""

    def failed(self, exc: Exception) -> None:
        """An attempt failed; said only if it is the first since the database last answered."""
        if self._since is None:
            self._since = time.monotonic()
            self._logger.warning(
                "%s: database unavailable, trying again until it answers: %s", self._what, exc
            )

    def answered(self) -> None:
        """An attempt succeeded; said only if it ends an outage."""
        if self._since is not None:
            gone = time.monotonic() - self._since
            self._since = None
            self._logger.info("%s: database back after %.1fs", self._what, gone)
