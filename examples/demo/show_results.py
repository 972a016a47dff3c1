"""Read the results back from the database by id, as any other process could."""

from __future__ import annotations

import json

from celery_app import app

with open("sent.json") as file:
    sent = json.load(file)

print("Results:")
for call, job_id in sent.items():
    result = app.AsyncResult(job_id)
    # The countdown job may not have been due when the burst worker ran; it waits for the next worker.
    value = result.get(timeout=1) if result.ready() else "(not run yet: still scheduled)"
    print(f"  {call:28} {result.status:8} -> {value!r}")
