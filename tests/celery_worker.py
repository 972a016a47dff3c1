"""The app of the worker processes of test_celery_tasks.py (`sqlqueue worker -A celery_worker`).

Its tasks are shared tasks, imported before the app exists: the app registers them when made.
"""

from __future__ import annotations

import celery_shared  # noqa: F401 - the tasks this worker runs

from sqlqueue import SQLQueue

app = SQLQueue()
