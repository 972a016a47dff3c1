"""An app with periodic tasks, for the tests' worker and beat processes
(`sqlqueue worker -A periodic_tasks`, `sqlqueue beat -A periodic_tasks`, from tests/).

Apart from tests/tasks.py, whose workers must send no ticks. The app reads
$SQLQUEUE_DATABASE_URL; $PERIODIC_EVERY sets the interval of "every-second" (seconds).
"""

from __future__ import annotations

import os

from sqlqueue import SQLQueue
from sqlqueue.schedules import crontab

app = SQLQueue()


@app.task
def tick(label: str) -> str:
    return label


@app.on_after_configure.connect
def setup_periodic_tasks(sender: SQLQueue, **kwargs: object) -> None:
    # Celery's way of declaring them, which a worker must read too.
    sender.add_periodic_task(
        crontab(minute=0, hour=7, day_of_week="mon"), tick.s("weekly"), name="weekly-report"
    )


app.conf.beat_schedule = {
    "every-second": {
        "task": "periodic_tasks.tick",
        "schedule": float(os.environ.get("PERIODIC_EVERY", "1")),
        "args": ("second",),
    },
}
