"""One of the senders racing one unique key (tests/test_unique_jobs.py): each send in a
transaction of its own connection, committed or rolled back as its plan says; prints the id
and whether it was a duplicate of each committed send.

    python unique_race.py URL START SEED    # START: the wall-clock time to begin at
"""

from __future__ import annotations

import random
import sqlite3
import sys
import time
from typing import Any

import psycopg
import sqlalchemy as sa

from sqlqueue import SQLQueue

ROUNDS = 20


def main(url: str, start: float, seed: int) -> None:
    app = SQLQueue(url)

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    chance = random.Random(seed)  # noqa: S311 (timing, not secrets)
    parsed = sa.make_url(url)
    conn: Any = (
        sqlite3.connect(parsed.database or "", timeout=60)
        if parsed.get_backend_name() == "sqlite"
        else psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    )
    time.sleep(max(0.0, start - time.time()))
    for _ in range(ROUNDS):
        result = add.apply_async((1, 2), unique_key="race", connection=conn)
        time.sleep(chance.random() / 200)
        if chance.random() < 0.5:
            conn.commit()
            print(result.id, result.duplicate, flush=True)
        else:
            conn.rollback()
    conn.close()
    app.engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))
