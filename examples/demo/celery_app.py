"""The app, as the seed's `celery_app.py`: with no URL it uses $SQLQUEUE_DATABASE_URL,
else the embedded default, a SQLite file `sqlqueue.db` in the current directory."""

from __future__ import annotations

from sqlqueue import SQLQueue

app = SQLQueue()
