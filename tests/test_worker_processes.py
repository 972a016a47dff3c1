"""Real `sqlqueue worker` processes against real databases: exactly once under load,
recovery after kill -9, fencing of a frozen worker, graceful SIGTERM/SIGINT, unknown
tasks, queue selection and a bad -A.

Every worker is a subprocess of the installed console script, run from tests/ with
`-A tasks`; each test sends jobs by name from its own app on the same database. Every
wait has a deadline, and the `workers` fixture kills whatever a test leaves running.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import tasks as test_tasks
from conftest import TESTS_DIR, count_jobs, sqlqueue_command, start_worker, wait_until

from sqlqueue import SQLQueue, Task
from sqlqueue.exceptions import TaskFailedError
from sqlqueue.jobs import Job, JobStatus
from sqlqueue.outcomes import Outcome
from sqlqueue.processes import ProcessPool
from sqlqueue.schema import jobs

LINUX_PROC = pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="watches worker threads through Linux's /proc"
)

FAST = ("--poll-interval", "0.1")
"""Workers in these tests look for work ten times a second."""

START_TIMEOUT = 30.0
"""Seconds a worker process may take to start and take its first job."""

EXIT_TIMEOUT = 30.0
"""Seconds a worker process may take to exit once it has no more work."""


class WorkerProcess:
    """A running `sqlqueue worker`, with its output drained into memory by a thread.

    Draining matters: a worker logs a line per job, and one that fills the pipe would
    block in the middle of its work.
    """

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.name = f"pid {process.pid}"
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self._lines)

    @property
    def id(self) -> str:
        """The worker_id it writes into the rows it takes, from its start-up line."""
        self.wait_for_output("worker started id=", EXIT_TIMEOUT)
        found = re.search(r"worker started id=(\S+)", self.output)
        assert found is not None
        return found.group(1)

    def wait(self, timeout: float = EXIT_TIMEOUT) -> int:
        """The exit code, or a test failure showing the log when it does not exit in time."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {self.name} still running after {timeout:g}s; log:\n{self.output}")
        self._reader.join(timeout=5)
        return code

    def wait_for_output(self, text: str, timeout: float) -> None:
        wait_until(lambda: text in self.output, timeout, f"{text!r} in the log of {self.name}")

    def send_signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def close(self) -> None:
        """Kill the process if it still runs, and release its pipe."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def workers(db_url: str) -> Iterator[StartWorker]:
    """Start `sqlqueue worker -A tasks <args>` processes on the test's database; any still
    running at teardown are killed."""
    started: list[WorkerProcess] = []

    def start(*args: str) -> WorkerProcess:
        worker = WorkerProcess(start_worker(db_url, *args))
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.close()


def get_job(app: SQLQueue, job_id: str) -> Job:
    job = app.store.get_job(job_id)
    assert job is not None, f"job {job_id} vanished"
    return job


def wait_for_status(app: SQLQueue, job_id: str, status: JobStatus, timeout: float) -> None:
    wait_until(
        lambda: get_job(app, job_id).status is status, timeout, f"job {job_id} to be {status}"
    )


def wait_for_lease_to_expire(app: SQLQueue, job_id: str) -> None:
    """Sleep until the job's lease is over, by the clock the database compares it with."""
    lease = get_job(app, job_id).lease_expires_at
    assert lease is not None, "the job should still be leased to its (dead or frozen) worker"
    remaining = (lease - datetime.now(UTC)).total_seconds()
    assert remaining < 10, f"lease ends in {remaining:.1f}s, longer than the short lease asked for"
    time.sleep(max(0.0, remaining) + 0.2)


def database_is_idle(app: SQLQueue, db_url: str) -> bool:
    """Whether no other connection is inside a transaction (holding a lock) right now."""
    if app.dialect.name == "sqlite":
        path = sa.make_url(db_url).database
        assert path is not None
        probe = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            probe.close()
    with app.engine.connect() as conn:
        busy: int = conn.execute(sa.text(OPEN_TRANSACTIONS[app.dialect.name])).scalar_one()
    return busy == 0


OPEN_TRANSACTIONS = {
    "postgresql": "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL",
    # InnoDB lists a transaction from its first statement on a table until its end.
    "mysql": "SELECT count(*) FROM information_schema.INNODB_TRX AS trx "
    "JOIN information_schema.PROCESSLIST AS p ON p.ID = trx.trx_mysql_thread_id "
    "WHERE p.DB = DATABASE() AND p.ID <> CONNECTION_ID()",
}
"""Other connections of the test's database inside a transaction, per server."""


def thread_states(worker: WorkerProcess, field: str) -> list[str]:
    """One /proc field (``stat`` or ``wchan``) of each thread of the worker (Linux only)."""
    values: list[str] = []
    for thread in Path(f"/proc/{worker.process.pid}/task").iterdir():
        try:
            values.append((thread / field).read_text())
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    return values


def is_stopped(worker: WorkerProcess) -> bool:
    """Whether every thread of the worker has taken its SIGSTOP (state T)."""
    return all(stat.rsplit(")", 1)[1].split()[0] == "T" for stat in thread_states(worker, "stat"))


def is_running_a_sleep_job(worker: WorkerProcess) -> bool:
    """Whether a thread of the worker is inside ``time.sleep``: the ``tasks.sleep`` job has
    begun. (STARTED in the row only says it was claimed; the worker's own threads wait on
    events, which is a futex, never a nanosleep.)"""
    return any("nanosleep" in wchan for wchan in thread_states(worker, "wchan"))


def freeze(worker: WorkerProcess, app: SQLQueue, db_url: str) -> None:
    """SIGSTOP the worker at a moment it holds no transaction, so that the freeze blocks
    nobody else: a frozen worker inside a write would stall every other one."""
    for _ in range(100):
        worker.send_signal(signal.SIGSTOP)
        wait_until(lambda: is_stopped(worker), 5, f"worker {worker.name} to stop")
        if database_is_idle(app, db_url):
            return
        worker.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    pytest.fail(f"worker {worker.name} was inside a transaction at every try to freeze it")


@pytest.mark.slow
def test_worker_processes_run_each_of_2000_jobs_exactly_once(
    app: SQLQueue, workers: StartWorker, tmp_path: Path
) -> None:
    # Given several workers, each running jobs in several threads, all started and waiting
    # (SQLite: its single writer makes two processes enough to contend; a worker that came
    # up a second after another would find the queue drained, since it prefetches)
    processes = 4 if app.dialect.name == "postgresql" else 2
    started = [workers("--concurrency", "4", *FAST) for _ in range(processes)]
    for worker in started:
        worker.wait_for_output("worker started id=", START_TIMEOUT)

    # When 2,000 jobs, committed together, each append "job_id pid" to one log after 2 ms
    # (all of them at once take about as long as the others' next look for work)
    total = 2000
    log = tmp_path / "runs.log"
    with app.engine.begin() as conn, app.using(conn):
        sent = {app.send_task("tasks.record", args=[str(log), 0.002]).id for _ in range(total)}
    assert len(sent) == total
    wait_until(
        lambda: count_jobs(app, "status IN ('SUCCESS', 'FAILURE')") == total,
        180,
        "every job to finish",
    )
    for worker in started:
        worker.send_signal(signal.SIGTERM)
    codes = [worker.wait() for worker in started]

    # I expect every worker to exit 0, and every job to have run exactly once
    assert codes == [0] * processes, "\n".join(worker.output for worker in started)
    assert count_jobs(app) == total
    assert count_jobs(app, "status = 'SUCCESS'") == total
    # (a job may count two takes: one that waited in a busy worker's buffer for longer than
    # MAX_BUFFER_WAIT is given back unstarted, and its next take counts again; the log below
    # is what shows each ran once)
    assert count_jobs(app, "expired_leases = 0") == total

    runs = [line.split() for line in log.read_text().splitlines()]
    assert len(runs) == total, "some job ran twice or not at all"
    assert {job_id for job_id, _pid in runs} == sent

    # ... by the worker its row names, and more than one worker took part
    with app.engine.connect() as conn:
        rows = conn.execute(sa.select(jobs.c.id, jobs.c.worker_id, jobs.c.result)).all()
    takers = {job_id: worker_id for job_id, worker_id, _result in rows}
    assert all(result == job_id for job_id, _worker_id, result in rows)
    host = socket.gethostname()
    assert all(takers[job_id].startswith(f"{host}:{pid}:") for job_id, pid in runs)
    worker_ids = {worker.id for worker in started}
    assert set(takers.values()) <= worker_ids
    assert len(set(takers.values())) > 1, "a single worker process ran every job"


@pytest.mark.slow
def test_job_of_a_killed_worker_runs_again_on_another_worker(
    app: SQLQueue, workers: StartWorker, tmp_path: Path
) -> None:
    # Given a worker with a 2 s lease running a job that hangs on its first run
    markers = tmp_path / "markers"
    markers.mkdir()
    job_id = app.send_task("tasks.hang_first_time", args=[str(markers)]).id
    first = workers("--concurrency", "1", "--lease", "2", *FAST)
    marker = markers / job_id
    wait_until(marker.exists, START_TIMEOUT, "the job's first run to start")
    assert marker.read_text() == str(first.process.pid)
    held = get_job(app, job_id)
    assert (held.status, held.attempts, held.worker_id) == (JobStatus.STARTED, 1, first.id)

    # When that worker is killed outright, and a burst worker starts once the lease is over
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    wait_for_lease_to_expire(app, job_id)
    second = workers("--burst", "--lease", "2", "--poll-interval", "0.2")

    # I expect the second worker to re-queue the job, run it (attempt 2) and exit 0
    assert second.wait() == 0, second.output
    job = get_job(app, job_id)
    assert job.status is JobStatus.SUCCESS
    assert job.result == 2
    assert app.AsyncResult(job_id).get(timeout=1) == 2
    assert (job.attempts, job.expired_leases, job.retries) == (2, 1, 0)
    assert job.worker_id == second.id
    assert count_jobs(app) == 1
    assert "re-queued 1 job(s)" in second.output


@pytest.mark.slow
@LINUX_PROC
def test_frozen_worker_that_wakes_up_after_losing_its_job_writes_nothing(
    app: SQLQueue, db_url: str, workers: StartWorker
) -> None:
    # Given a worker with a 1 s lease, frozen (SIGSTOP) while it runs a 3 s job
    job_id = app.send_task("tasks.sleep", args=[3]).id
    frozen = workers("--concurrency", "1", "--lease", "1", *FAST)
    wait_for_status(app, job_id, JobStatus.STARTED, START_TIMEOUT)
    wait_until(lambda: is_running_a_sleep_job(frozen), START_TIMEOUT, "the job to be running")
    freeze(frozen, app, db_url)
    try:
        # When its lease runs out and a second worker takes the job (attempt 2)
        wait_for_lease_to_expire(app, job_id)
        # (with a long lease of its own: under load a short one could lapse too, and the
        # woken worker would rightly take the job back)
        second = workers("--burst", "--lease", "10", *FAST)

        def second_holds_it() -> bool:
            job = get_job(app, job_id)
            return job.status is JobStatus.STARTED and job.worker_id == second.id

        wait_until(second_holds_it, START_TIMEOUT, "the second worker to take the job")
    finally:
        # ... and the first wakes up, its 3 s over, while the second is still running it
        frozen.send_signal(signal.SIGCONT)

    # I expect the first worker's outcome to be fenced off (its take is attempt 1), the
    # row to stay the second worker's, and the second worker's outcome to be the one kept
    frozen.wait_for_output("outcome=SUCCESS discarded", timeout=10)
    held = get_job(app, job_id)
    assert (held.status, held.attempts, held.worker_id) == (JobStatus.STARTED, 2, second.id), (
        f"{held}\n{frozen.output}\n{second.output}"
    )
    assert held.finished_at is None
    assert second.wait() == 0, second.output
    assert "discarded" not in second.output
    done = get_job(app, job_id)
    assert (done.status, done.attempts, done.worker_id) == (JobStatus.SUCCESS, 2, second.id)
    assert (done.result, done.expired_leases) == (3, 1)
    frozen.send_signal(signal.SIGTERM)
    assert frozen.wait() == 0, frozen.output
    assert get_job(app, job_id) == done


@pytest.mark.slow
@LINUX_PROC
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_finishes_the_running_job_and_takes_no_other(
    app: SQLQueue, workers: StartWorker, stop_signal: signal.Signals
) -> None:
    # Given a one-slot worker running a 2 s job, with another job ready behind it
    running = app.send_task("tasks.sleep", args=[2], priority=10).id
    queued = app.send_task("tasks.add", args=[1, 2]).id
    worker = workers("--concurrency", "1", *FAST)
    wait_for_status(app, running, JobStatus.STARTED, START_TIMEOUT)
    # (STARTED means taken; a job taken but not begun would rightly be given back)
    wait_until(lambda: is_running_a_sleep_job(worker), START_TIMEOUT, "the job to be running")

    # When it is asked to stop while the job runs
    worker.send_signal(stop_signal)

    # I expect it to finish that job, leave the other untouched, and exit 0
    assert worker.wait() == 0, worker.output
    assert f"{stop_signal.name} received" in worker.output
    finished = get_job(app, running)
    assert (finished.status, finished.result, finished.attempts) == (JobStatus.SUCCESS, 2, 1)
    untouched = get_job(app, queued)
    assert untouched.status is JobStatus.PENDING
    assert untouched.worker_id is None
    assert untouched.attempts == 0
    assert untouched.started_at is None


@pytest.mark.slow
def test_job_of_an_unknown_task_fails_and_the_worker_keeps_going(
    app: SQLQueue, workers: StartWorker
) -> None:
    # Given a job for a task no worker knows, then an ordinary job
    unknown = app.send_task("tasks.nope", priority=10)
    known = app.send_task("tasks.add", args=[2, 3])

    # When one burst worker, one job at a time, drains the queue
    worker = workers("--burst", "--concurrency", "1", *FAST)

    # I expect the unknown task's job to fail naming it, and the next job to succeed
    assert worker.wait() == 0, worker.output
    failed = get_job(app, unknown.id)
    assert failed.status is JobStatus.FAILURE
    assert failed.error_type == "sqlqueue.exceptions.UnknownTaskError"
    assert failed.error_message is not None and "tasks.nope" in failed.error_message
    error = unknown.get(timeout=1, propagate=False)
    assert isinstance(error, TaskFailedError)
    assert "tasks.nope" in str(error)
    with pytest.raises(TaskFailedError, match=r"tasks\.nope"):
        unknown.get(timeout=1)
    assert known.get(timeout=1) == 5
    succeeded = get_job(app, known.id)
    assert failed.worker_id == succeeded.worker_id == worker.id
    assert failed.started_at is not None and succeeded.started_at is not None
    # (taken after it: its slot frees when the failed task returns, which may be before
    # the failure's write commits, so started_at is compared with started_at)
    assert succeeded.started_at >= failed.started_at
    assert failed.finished_at is not None
    assert "tasks.nope" in worker.output


@pytest.mark.slow
def test_worker_takes_only_jobs_of_its_queues(app: SQLQueue, workers: StartWorker) -> None:
    # Given one job in queue "a" and one in queue "b"
    in_a = app.send_task("tasks.add", args=[1, 1], queue="a")
    in_b = app.send_task("tasks.add", args=[2, 2], queue="b")

    # When a burst worker for queue "a" only runs
    worker = workers("--burst", "--queues", "a", *FAST)

    # I expect it to run the job of "a" and leave the job of "b" untouched
    assert worker.wait() == 0, worker.output
    assert in_a.get(timeout=1) == 2
    assert get_job(app, in_a.id).worker_id == worker.id
    left = get_job(app, in_b.id)
    assert (left.status, left.attempts, left.worker_id) == (JobStatus.PENDING, 0, None)


def test_worker_with_an_unimportable_app_module_exits_2_naming_it(tmp_path: Path) -> None:
    # The module is imported before the database is touched, so no database is needed.
    completed = subprocess.run(
        [*sqlqueue_command(), "worker", "-A", "nonexistent_module"],
        cwd=tmp_path,
        env={**os.environ, "SQLQUEUE_DATABASE_URL": f"sqlite:///{tmp_path / 'queue.db'}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "Cannot import 'nonexistent_module'" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "queue.db").exists()


def test_worker_on_a_database_without_the_schema_exits_1_saying_to_migrate(tmp_path: Path) -> None:
    worker = subprocess.run(
        [*sqlqueue_command(), "worker", "-A", "tasks", "--poll-interval", "0.1"],
        cwd=TESTS_DIR,
        env={**os.environ, "SQLQUEUE_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert worker.returncode == 1
    assert "sqlqueue migrate" in worker.stderr


SLOW_IN_CHILDREN = """
import multiprocessing, os, time
from sqlqueue import SQLQueue

if multiprocessing.parent_process() is not None:
    time.sleep(3)  # a slow import (Django's setup, say), in the children only

app = SQLQueue()

@app.task(time_limit=1)
def quick():
    return os.getpid()
"""

BROKEN_IN_CHILDREN = """
import multiprocessing
from sqlqueue import SQLQueue

if multiprocessing.parent_process() is not None:
    import a_module_only_the_parent_has  # noqa

app = SQLQueue()

@app.task
def quick():
    return 1
"""


BREAKS_AFTER_A_KILL = """
import multiprocessing, pathlib, time
from sqlqueue import SQLQueue

if multiprocessing.parent_process() is not None and pathlib.Path("deployed").exists():
    raise ImportError("the code on disk changed under the worker")

app = SQLQueue()

@app.task(time_limit=1, priority=10)
def hang():
    pathlib.Path("deployed").touch()  # a deploy, while this child runs
    time.sleep(60)

@app.task
def quick():
    return 1
"""


def run_process_worker(
    directory: Path, source: str, db_url: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """A burst `sqlqueue worker --pool process -A child_app` on an app module written to
    ``directory``."""
    (directory / "child_app.py").write_text(source)
    return subprocess.run(
        [
            *sqlqueue_command(),
            "worker",
            "-A",
            "child_app",
            "--pool",
            "process",
            "--burst",
            *FAST,
            *args,
        ],
        cwd=directory,
        env={**os.environ, "SQLQUEUE_DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_process_pool_hard_limit_counts_from_the_start_of_the_job_not_of_the_child(
    app: SQLQueue, db_url: str, tmp_path: Path
) -> None:
    # Given a task with a 1 s hard limit, in an app whose children take 3 s to import it
    result = app.send_task("child_app.quick")

    # When a process-pool worker runs it
    worker = run_process_worker(tmp_path, SLOW_IN_CHILDREN, db_url, "-c", "1")

    # I expect the job to succeed: the child's start-up is not the job's time
    assert worker.returncode == 0, worker.stdout + worker.stderr
    assert result.get(timeout=1) != os.getpid()


def test_process_pool_worker_whose_children_cannot_load_the_app_refuses_to_start(
    app: SQLQueue, db_url: str, tmp_path: Path
) -> None:
    # Given a job, and an app module that imports in the worker but not in its children
    job_id = app.send_task("child_app.quick").id

    # When a process-pool worker starts on it
    worker = run_process_worker(tmp_path, BROKEN_IN_CHILDREN, db_url, "-c", "2")

    # I expect it to exit 1 with the children's import error, and the job untouched
    assert worker.returncode == 1, worker.stdout + worker.stderr
    assert "could not load the app 'child_app'" in worker.stderr
    assert "No module named 'a_module_only_the_parent_has'" in worker.stderr
    # and the child's traceback as Python prints it, one frame a line, down to the import
    lines = worker.stderr.splitlines()
    assert "Traceback (most recent call last):" in lines
    assert "    import a_module_only_the_parent_has  # noqa" in lines
    assert "ModuleNotFoundError: No module named 'a_module_only_the_parent_has'" in lines
    job = get_job(app, job_id)
    assert (job.status, job.attempts, job.worker_id) == (JobStatus.PENDING, 0, None)


@pytest.mark.slow
def test_process_pool_worker_whose_new_child_cannot_load_the_app_stops_and_gives_back_jobs(
    app: SQLQueue, db_url: str, tmp_path: Path
) -> None:
    # Given a job killed at its hard limit, after which a new child cannot load the app
    # (the code changed on disk), and a job behind it
    hang = app.send_task("child_app.hang", priority=10)
    waiting = app.send_task("child_app.quick").id

    # When a process-pool worker runs them
    worker = run_process_worker(tmp_path, BREAKS_AFTER_A_KILL, db_url, "-c", "1")

    # I expect it to stop with the child's import error and give the second job back,
    # rather than fail it (and every job after it) as lost
    assert worker.returncode == 1, worker.stdout + worker.stderr
    assert "the code on disk changed under the worker" in worker.stderr
    assert hang.status == "FAILURE"
    assert (get_job(app, waiting).status, get_job(app, waiting).worker_id) == (
        JobStatus.PENDING,
        None,
    )


def process_is_gone(pid: int) -> bool:
    """Whether ``pid`` has exited (reaped, or a zombie waiting for its new parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.slow
@LINUX_PROC
def test_process_pool_children_die_with_a_killed_worker(
    app: SQLQueue, workers: StartWorker, tmp_path: Path
) -> None:
    # Given a process-pool worker whose child runs a job that hangs
    markers = tmp_path / "markers"
    markers.mkdir()
    job_id = app.send_task("tasks.announce_then_hang", args=[str(markers)]).id
    worker = workers("--pool", "process", "--concurrency", "1", *FAST)
    marker = markers / job_id
    wait_until(
        lambda: marker.exists() and marker.read_text() != "", START_TIMEOUT, "the job to start"
    )
    child = int(marker.read_text())
    assert child != worker.process.pid
    assert not process_is_gone(child)

    # When the worker is killed outright
    worker.send_signal(signal.SIGKILL)
    assert worker.wait() == -signal.SIGKILL

    # I expect its child to die too, instead of running the job on while its lease runs out
    # and another worker runs it again
    try:
        wait_until(lambda: process_is_gone(child), 5, f"child {child} to exit")
    finally:
        if not process_is_gone(child):
            os.kill(child, signal.SIGKILL)


# The process pool's batches: a child is handed several jobs at once and sends each outcome
# back as it has it. The pool is driven directly here, with real children and no database,
# so that each test knows exactly which jobs share a batch.

Reported = list[tuple[str, Outcome]]


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ProcessPool]:
    """A started one-child pool whose child imports tests/tasks.py."""
    monkeypatch.setenv("SQLQUEUE_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.db'}")
    started = ProcessPool("tasks")
    started.start(1)
    yield started
    started.close()


def a_job(name: str, *args: Any) -> tuple[Task[..., Any], Job]:
    """A job of one of tests/tasks.py's tasks, as a claim would return it."""
    job = Job(
        id=str(uuid.uuid4()),
        task_name=f"tasks.{name}",
        queue="default",
        priority=0,
        args=list(args),
        kwargs={},
        status=JobStatus.STARTED,
        result=None,
        error_type=None,
        error_message=None,
        traceback=None,
        progress=None,
        retries=0,
        attempts=1,
        expired_leases=0,
        worker_id="test",
        scheduled_at=datetime.now(UTC),
        created_at=datetime.now(UTC),
        started_at=datetime.now(UTC),
        finished_at=None,
        lease_expires_at=None,
        expires_at=None,
    )
    return test_tasks.app.tasks[job.task_name], job


def run_batch(
    pool: ProcessPool,
    batch: list[tuple[Task[..., Any], Job]],
    stopping: threading.Event | None = None,
) -> Reported:
    reported: Reported = []
    pool.run(
        batch,
        lambda job, outcome, _: reported.append((job.id, outcome)),
        stopping or threading.Event(),
    )
    return reported


def pid_of(outcome: Outcome) -> int:
    assert outcome.status is JobStatus.SUCCESS, outcome
    assert outcome.result_json is not None
    return int(outcome.result_json)


def error_of(outcome: Outcome) -> str:
    assert outcome.status is JobStatus.FAILURE, outcome
    assert outcome.failure is not None
    return f"{outcome.failure.error_type}: {outcome.failure.error_message}"


@pytest.mark.slow
def test_a_hard_limit_kill_in_a_batch_fails_that_job_only_and_the_rest_run_on_a_new_child(
    pool: ProcessPool,
) -> None:
    # Given a batch whose third job passes its 1 s hard limit
    batch = [a_job("whose_pid"), a_job("whose_pid"), a_job("never_returns")]
    batch += [a_job("whose_pid"), a_job("whose_pid")]

    # When one child is handed all five
    reported = run_batch(pool, batch)

    # I expect each job reported once, in order; the third failed at its limit, the two
    # before it run by the first child and the two after it by a new one
    assert [job_id for job_id, _ in reported] == [job.id for _, job in batch]
    outcomes = [outcome for _, outcome in reported]
    assert "TimeLimitExceeded: time limit (1s) exceeded" in error_of(outcomes[2])
    before, after = {pid_of(o) for o in outcomes[:2]}, {pid_of(o) for o in outcomes[3:]}
    assert len(before) == len(after) == 1
    assert before != after


@pytest.mark.slow
def test_a_crash_in_a_batch_fails_that_job_as_lost_and_the_rest_run(pool: ProcessPool) -> None:
    # Given a batch whose second job takes its process down
    batch = [a_job("whose_pid"), a_job("crash", "exit"), a_job("whose_pid"), a_job("add", 1, 2)]

    # When one child is handed all four
    reported = run_batch(pool, batch)

    # I expect the crashed job to fail as lost, and every other job to succeed, once each
    assert [job_id for job_id, _ in reported] == [job.id for _, job in batch]
    outcomes = [outcome for _, outcome in reported]
    assert "WorkerLostError" in error_of(outcomes[1])
    assert "exited with code 3" in error_of(outcomes[1])
    assert pid_of(outcomes[0]) != pid_of(outcomes[2])
    assert outcomes[3] == Outcome.succeeded("3")


@pytest.mark.slow
def test_a_stop_during_a_batch_finishes_the_running_job_and_starts_no_other(
    pool: ProcessPool, tmp_path: Path
) -> None:
    # Given a batch whose first job runs for a while, with two jobs behind it
    running = a_job("announce_then_sleep", str(tmp_path), 1)
    batch = [running, a_job("record", str(tmp_path / "runs.log")), a_job("whose_pid")]
    stopping = threading.Event()

    # When the worker stops while the first job runs
    marker = tmp_path / running[1].id

    def stop_once_running() -> None:
        wait_until(marker.exists, START_TIMEOUT, "the first job to start")
        stopping.set()

    stopper = threading.Thread(target=stop_once_running)
    stopper.start()
    reported = run_batch(pool, batch, stopping)
    stopper.join()

    # I expect the running job to finish and be reported, and the others never to start
    # (unreported, so the worker gives them back)
    assert reported == [(running[1].id, Outcome.succeeded(marker.read_text()))]
    assert not (tmp_path / "runs.log").exists()

    # ... and the child to take the next batch as usual
    ((_, outcome),) = run_batch(pool, [a_job("add", 2, 2)])
    assert outcome == Outcome.succeeded("4")


@pytest.mark.slow
def test_a_soft_limit_raises_in_its_task_within_a_batch(pool: ProcessPool) -> None:
    # Given a batch whose first task catches its 0.5 s soft limit
    batch = [a_job("cleans_up"), a_job("add", 1, 1)]

    # When one child runs both, I expect the limit raised in the task, and the next job run
    reported = run_batch(pool, batch)
    assert [outcome for _, outcome in reported] == [
        Outcome.succeeded('"cleaned up"'),
        Outcome.succeeded("2"),
    ]


@pytest.mark.slow
def test_short_jobs_go_to_children_in_batches_and_long_ones_alone(pool: ProcessPool) -> None:
    # Before any job has run, a child is handed one at a time
    assert pool.batch_size == 1

    # After short jobs, several at a time
    run_batch(pool, [a_job("add", n, n) for n in range(20)])
    assert pool.batch_size > 1

    # After long ones, one at a time again: a job never waits behind another in a child's
    # batch while a child is free
    run_batch(pool, [a_job("sleep", 0.1) for _ in range(4)])
    assert pool.batch_size == 1


@pytest.mark.slow
def test_process_pool_records_every_job_once_around_crashes_and_kills_in_batches(
    app: SQLQueue, workers: StartWorker, tmp_path: Path
) -> None:
    # Given short jobs that log each run, with a crash and a task past its hard limit among them
    log = tmp_path / "runs.log"
    with app.engine.begin() as conn, app.using(conn):
        short = [app.send_task("tasks.record", args=[str(log)]).id for _ in range(40)]
        crash = app.send_task("tasks.crash", args=["exit"]).id
        endless = app.send_task("tasks.never_returns").id
        short += [app.send_task("tasks.record", args=[str(log)]).id for _ in range(40)]

    # When a one-child process-pool worker drains them (the short jobs in batches)
    worker = workers("--burst", "--pool", "process", "--concurrency", "1", *FAST)
    assert worker.wait(timeout=120) == 0, worker.output

    # I expect every short job to have run and been recorded exactly once, and the crash and
    # the endless task to have failed, each alone
    runs = [line.split()[0] for line in log.read_text().splitlines()]
    assert sorted(runs) == sorted(short)
    for job_id in short:
        job = get_job(app, job_id)
        # (attempts counts takes: a prefetched job given back while the endless one held the
        # child is taken again, though it ran once, as the log shows)
        assert (job.status, job.result) == (JobStatus.SUCCESS, job_id)
    assert get_job(app, crash).error_type == "sqlqueue.exceptions.WorkerLostError"
    assert get_job(app, endless).error_type == "sqlqueue.exceptions.TimeLimitExceeded"


@pytest.mark.slow
def test_process_pool_stop_finishes_the_running_job_and_gives_back_the_rest_of_its_batch(
    app: SQLQueue, workers: StartWorker, tmp_path: Path
) -> None:
    # Given short jobs first (so that children take batches), then a 2 s job among short ones
    log = tmp_path / "runs.log"
    first = [app.send_task("tasks.record", args=[str(log)], priority=10).id for _ in range(20)]
    with app.engine.begin() as conn, app.using(conn):
        slow = app.send_task("tasks.announce_then_sleep", args=[str(tmp_path), 2]).id
        behind = [app.send_task("tasks.record", args=[str(log)]).id for _ in range(20)]
    worker = workers("--pool", "process", "--concurrency", "1", *FAST)
    wait_until((tmp_path / slow).exists, START_TIMEOUT, "the 2 s job to start")

    # When the worker is asked to stop while it runs
    worker.send_signal(signal.SIGTERM)

    # I expect it to finish that job and exit 0; every other job ran once and was recorded,
    # or never started and was given back
    assert worker.wait() == 0, worker.output
    assert get_job(app, slow).status is JobStatus.SUCCESS
    runs = [line.split()[0] for line in log.read_text().splitlines()]
    assert len(runs) == len(set(runs))
    for job_id in first + behind:
        job = get_job(app, job_id)
        if job_id in runs:
            assert (job.status, job.attempts) == (JobStatus.SUCCESS, 1)
        else:
            assert (job.status, job.worker_id, job.started_at) == (JobStatus.PENDING, None, None)
    assert set(first) <= set(runs)
    assert not set(behind) <= set(runs), "the worker ran on after its stop"
