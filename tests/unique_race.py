"""One of the senders racing one unique key (tests/test_unique_jobs.py): each send in a
transaction of its own connection, committed or rolled back as its plan says; prints the id
and whether it was a duplicate of each committed send (and, on stderr, each send MySQL chose
as a deadlock's victim).

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

from sqlqueue import DatabaseError, SQLQueue

ROUNDS = 20


def main(url: str, start: float, seed: int) -> None:
    app = SQLQueue(url)

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    chance = random.Random(seed)  # noqa: S311 (timing, not secrets)
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    conn: Any
    if backend == "sqlite":
        conn = sqlite3.connect(parsed.database or "", timeout=60)
    elif backend == "postgresql":
        conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    else:  # MySQL takes a SQLAlchemy connection; the application's engine: REPEATABLE READ
        conn = sa.create_engine(url).connect()
    time.sleep(max(0.0, start - time.time()))
    for _ in range(ROUNDS):
        try:
            result = add.apply_async((1, 2), unique_key="race", connection=conn)
        except DatabaseError as exc:
            # MySQL ends a deadlock by rolling back one of the transactions in it, whole:
            # senders waiting at the index for one that rolls back may deadlock, and the
            # caller's transaction is then gone, as for any deadlock there.
            if not app.store.dialect.lost_lock_conflict(getattr(exc.__cause__, "orig", None)):
                raise
            conn.rollback()
            print("deadlock", file=sys.stderr, flush=True)
            continue
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
