"""Async code: adelay()/aapply_async() and aget() with the async drivers, enqueue in the
caller's async transaction, and async def tasks on the worker's event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import aiomysql
import aiosqlite
import psycopg
import pytest
import sqlalchemy as sa
from conftest import count_jobs, work_off
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from sqlqueue import SQLQueue
from sqlqueue.exceptions import ConfigurationError, TaskFailedError

ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+aiomysql",
}


def async_url(db_url: str) -> str:
    url = sa.make_url(db_url)
    driver = ASYNC_DRIVERS[url.get_backend_name()]
    return url.set(drivername=driver).render_as_string(hide_password=False)


def test_adelay_writes_the_job_and_aget_reads_the_result(app: SQLQueue, add: Any) -> None:
    async def send() -> Any:
        return await add.adelay(2, 3)

    result = asyncio.run(send())
    assert count_jobs(app) == 1
    work_off(app)

    async def read() -> Any:
        return await result.aget(timeout=5)

    assert asyncio.run(read()) == 5


def test_aget_times_out_like_get(app: SQLQueue, add: Any) -> None:
    async def wait() -> None:
        result = await add.adelay(1, 1)
        await result.aget(timeout=0.2)

    with pytest.raises(TimeoutError, match="still PENDING"):
        asyncio.run(wait())


@pytest.mark.parametrize("kind", ["AsyncConnection", "AsyncSession"])
def test_a_sqlalchemy_async_transaction_commits_or_rolls_back_the_job(
    app: SQLQueue, add: Any, db_url: str, kind: str
) -> None:
    async def in_transaction(commit: bool) -> None:
        engine = create_async_engine(async_url(db_url))
        try:
            if kind == "AsyncConnection":
                async with engine.connect() as conn:
                    await add.aapply_async((1, 2), connection=conn)
                    assert count_jobs(app) == 0  # invisible to others until the commit
                    await (conn.commit() if commit else conn.rollback())
            else:
                async with AsyncSession(engine) as session:
                    await add.aapply_async((1, 2), connection=session)
                    await (session.commit() if commit else session.rollback())
        finally:
            await engine.dispose()

    asyncio.run(in_transaction(commit=False))
    assert count_jobs(app) == 0
    asyncio.run(in_transaction(commit=True))
    assert count_jobs(app) == 1


def test_a_raw_async_driver_connection_joins_its_transaction(
    app: SQLQueue, add: Any, db_url: str
) -> None:
    async def in_transaction(commit: bool) -> None:
        if app.dialect.name == "postgresql":
            conn: Any = await psycopg.AsyncConnection.connect(db_url)
        elif app.dialect.name == "mysql":
            url = sa.make_url(db_url)
            conn = await aiomysql.connect(
                host=url.host, port=url.port or 3306, user=url.username, db=url.database
            )
        else:
            conn = await aiosqlite.connect(sa.make_url(db_url).database or "")
            await conn.execute("BEGIN")
        try:
            await add.aapply_async((1, 2), connection=conn)
            await (conn.commit() if commit else conn.rollback())
        finally:
            if app.dialect.name == "mysql":
                await conn.ensure_closed()  # aiomysql's close() is its abrupt one
            else:
                await conn.close()

    asyncio.run(in_transaction(commit=False))
    assert count_jobs(app) == 0
    asyncio.run(in_transaction(commit=True))
    assert count_jobs(app) == 1


def test_a_sync_connection_is_refused_in_an_async_send(app: SQLQueue, add: Any) -> None:
    async def send() -> None:
        with app.engine.connect() as conn:
            await add.aapply_async((1, 2), connection=conn)

    with pytest.raises(ConfigurationError, match="async send"):
        asyncio.run(send())
    assert count_jobs(app) == 0


def test_async_def_tasks_run_together_on_the_workers_event_loop(app: SQLQueue) -> None:
    runs: list[tuple[float, float, int]] = []

    @app.task(name="t.fetch")
    async def fetch(n: int) -> int:
        started = time.monotonic()
        await asyncio.sleep(0.3)
        runs.append((started, time.monotonic(), threading.get_ident()))
        return n * 2

    @app.task(name="t.plain")
    def plain() -> str:
        return "sync tasks run beside them"

    results = [fetch.delay(n) for n in range(4)]
    plain_result = plain.delay()
    work_off(app, concurrency=4)

    assert [result.get(timeout=1) for result in results] == [0, 2, 4, 6]
    assert plain_result.get(timeout=1) == "sync tasks run beside them"
    assert len({thread for _, _, thread in runs}) == 1  # one event loop, in one thread
    latest_start = max(start for start, _, _ in runs)
    earliest_end = min(end for _, end, _ in runs)
    assert latest_start < earliest_end  # all four were awaiting at the same moment


def test_an_async_task_runs_eagerly_too(app: SQLQueue) -> None:
    @app.task(name="t.async_add")
    async def async_add(x: int, y: int) -> int:
        await asyncio.sleep(0)
        return x + y

    app.conf.task_always_eager = True

    async def from_async_code() -> Any:
        return await (await async_add.adelay(1, 2)).aget()

    assert async_add.delay(2, 2).get() == 4
    assert asyncio.run(from_async_code()) == 3
    assert count_jobs(app) == 0


def test_a_time_limit_cancels_an_async_task(app: SQLQueue) -> None:
    cancelled: list[bool] = []

    @app.task(name="t.slow_fetch", time_limit=0.3)
    async def slow_fetch() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    result = slow_fetch.delay()
    work_off(app)

    with pytest.raises(TaskFailedError, match="TimeLimitExceeded"):
        result.get(timeout=1)
    assert cancelled == [True]
