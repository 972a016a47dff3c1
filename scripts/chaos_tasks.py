"""The task the chaos run's workers execute (`sqlqueue worker -A chaos_tasks`, from scripts/)."""

from __future__ import annotations

import os
import time
from typing import Any

from sqlqueue import SQLQueue

app = SQLQueue()


@app.task(bind=True)
def record(self: Any, log_path: str) -> int:
    """Append "job_id pid" for every run, so the run can be audited afterwards."""
    with open(log_path, "a") as log:
        log.write(f"{self.request.id} {os.getpid()}\n")
    time.sleep(0.002)  # a little work, so that kills land while jobs run
    return os.getpid()
