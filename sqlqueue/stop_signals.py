"""SIGTERM/SIGINT for the worker: the first asks for a graceful stop, the second stops now."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def graceful_stop_signals(
    stop: Callable[[], None], stopping: str = "finishing running jobs, then exiting"
) -> Iterator[None]:
    """Call ``stop`` on the first SIGTERM/SIGINT, logging ``stopping`` (what happens next);
    exit at once on the second.

    The previous handlers come back on exit. Outside the main thread (a worker embedded in
    a test or an application) nothing is installed: Python only delivers signals there.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = 0

    def handle(signum: int, _frame: FrameType | None) -> None:
        nonlocal received
        received += 1
        name = signal.Signals(signum).name
        if received == 1:
            logger.info("%s received: %s (again to exit now)", name, stopping)
            stop()
        else:
            # A forced exit loses nothing: the jobs still running come back through their lease.
            logger.warning("%s received again: exiting now; running jobs will run again", name)
            os._exit(1)

    previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
