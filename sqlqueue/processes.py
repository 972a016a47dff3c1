"""Child processes that run jobs for a worker started with ``--pool process``.

Each of the worker's threads owns one child and hands it jobs through a pipe, as JSON, a batch
at a time: the child runs them in order and sends each outcome back as soon as it has it (the
result as the JSON text the row will store), so each outcome is recorded as soon as it is
known. Short jobs go in batches, so a child is not idle while the worker waits for its
outcome and sends the next job; a long job goes alone (``ProcessPool.batch_size``), so no job
waits in one child's batch while another child has nothing to do. CPU-bound tasks run in
parallel, and a task can be stopped for real: a child that passes its task's hard time limit
is killed, and a child that dies (a segfault, ``os._exit()``, the OOM killer) is noticed at
once. Either way that job fails (``TimeLimitExceeded`` or ``WorkerLostError``) and the rest of
its batch runs on a new child. The worker knows which job of a batch runs: the one after the
last outcome. With ``max_tasks_per_child`` (Celery's ``worker_max_tasks_per_child``) a child
is handed no more jobs than it may still run, and once it has run them it exits and a new
one takes its place, so memory a task leaks goes with it. Children ignore SIGINT and SIGTERM: the worker decides when they stop. At a
graceful stop a child finishes the job it runs and gives back the rest of its batch.

A child says when it has loaded the app, and only then gets a job: the hard limit counts from
the job's start, not from the child's imports, and the worker starts its children before it
takes any job, so an app they cannot load stops it at once with their error. A child dies
with its worker, even one killed with SIGKILL: it watches a pipe only the worker holds open
(and on Linux asks the kernel for SIGKILL when its parent thread ends), so it cannot run its
job on while the lease hands that job to another worker.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import selectors
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from sqlqueue.exceptions import (
    ConfigurationError,
    Terminated,
    TimeLimitExceeded,
    WorkerLostError,
)
from sqlqueue.execution import run_task, unknown_task
from sqlqueue.jobs import Job, JobStatus
from sqlqueue.outcomes import Outcome
from sqlqueue.request import Request
from sqlqueue.serialization import Failure
from sqlqueue.tasks import Task
from sqlqueue.timelimits import alarm_soft_limit, limits_of

if TYPE_CHECKING:
    from sqlqueue.app import SQLQueue

STOP_TIMEOUT = 10.0
"""Seconds a child gets to exit after its pipe is closed, before it is killed."""

MAX_BATCH = 32
"""Most jobs a child is handed at once."""

BATCH_TIME = 0.01
"""Seconds of work a child is handed at once, judged by how long recent jobs took: a batch
holds one job of a task that takes this long or more."""

STOP_CHECK = 0.1
"""Seconds between a job thread's looks at the worker's stop while its child runs a job with
others of its batch behind it."""

STOP = b""
"""The empty message: to a child, "give back the rest of your batch"; from it, "I did"."""

STOP_LOOK = 0.001
"""Seconds between a child's looks for a stop message while it runs a batch. A look is a
system call, a third of what a no-op job costs a child; looking before every job that starts
this long after the last look keeps a stop as prompt for any job that takes this long."""

PR_SET_PDEATHSIG = 1
"""Linux's ``prctl`` option: the signal a process gets when the thread that started it ends."""

_REAPING = threading.Lock()
"""Held while a child is started, checked or waited for. Each of these reaps finished
children (starting one reaps every finished child: ``multiprocessing``'s cleanup), and two
threads reaping one child at once leave one of them without its exit code: a crash would be
reported as "exited with code None"."""

Report = Callable[[Job, Outcome, float], None]
"""Told each job's outcome as soon as it is known, with the seconds the job ran."""


class ChildStartError(ConfigurationError):
    """A child process could not load the app."""


class ProcessPool:
    """One child process per worker thread: started with the worker, replaced when it dies."""

    def __init__(self, app_spec: str, max_tasks_per_child: int | None = None) -> None:
        self.app_spec = app_spec
        self.max_tasks_per_child = max_tasks_per_child
        """Jobs a child runs before it is replaced (Celery's ``worker_max_tasks_per_child``);
        None: never."""
        # spawn, not fork: the worker has threads and open database connections.
        self._context = multiprocessing.get_context("spawn")
        self._local = threading.local()
        self._children: list[Child] = []
        self._idle: list[Child] = []
        """Children started by ``start()`` that no thread has taken yet."""
        self._lock = threading.Lock()
        self._typical = 0.0
        """Seconds a recent job took, averaged (0 until one has run); threads update it
        without a lock, and a lost update only delays the batch size's change."""

    @property
    def batch_size(self) -> int:
        """How many jobs a child is handed at once now: one until a job has run, then as
        many as recent jobs show fit in ``BATCH_TIME`` (at most ``MAX_BATCH``)."""
        if self._typical <= 0:
            return 1
        return max(1, min(MAX_BATCH, int(BATCH_TIME / self._typical)))

    def start(self, count: int) -> None:
        """Start ``count`` children at once and wait until each has loaded the app.

        Raises:
            ChildStartError: a child could not load it; every child is stopped.
        """
        children = [self._start_child() for _ in range(count)]
        try:
            for child in children:
                child.wait_until_ready()
        except ChildStartError:
            self.close()
            raise
        with self._lock:
            self._idle = children

    def run(
        self,
        batch: Sequence[tuple[Task[..., Any] | None, Job]],
        report: Report,
        stopping: threading.Event,
    ) -> None:
        """Run the jobs, in order, in this thread's child, reporting each outcome as soon as
        it is known. A job the child was killed or died in fails; the rest run on a new child.
        Once ``stopping`` is set, the job running finishes and the rest are not started: they
        are never reported, and the worker gives them back.

        Raises:
            ChildStartError: a new child (replacing one that died or was killed at its time
                limit) could not load the app, which loaded at start: the code changed under
                the worker. The jobs not reported never started; the worker must stop and
                give them back.
        """
        left: list[tuple[Job, float | None]] = []
        for task, job in batch:
            if task is None:
                report(job, unknown_task(job.task_name), 0.0)
            else:
                left.append((job, limits_of(task)[1]))
        while left and not stopping.is_set():
            child: Child | None = getattr(self._local, "child", None)
            if child is None or not child.alive():
                child = self._local.child = self._ready_child()
            given, after = left, []
            if self.max_tasks_per_child is not None:
                # A child near its max_tasks_per_child gets no more than it may still run.
                room = self.max_tasks_per_child - child.jobs_run
                given, after = left[:room], left[room:]
            try:
                left = child.run(given, self._report_to(report), stopping) + after
            except BrokenPipeError:  # the idle child died since; the batch never reached it
                self._local.child = None
                continue
            if not child.alive():
                self._local.child = None
            elif child.jobs_run == self.max_tasks_per_child:
                self._retire(child)

    def terminate(self, take: tuple[str, int]) -> bool:
        """Kill the child running this take's job (revoked while it runs); whether one was.
        The job's thread reports it ``Terminated`` and starts a new child for the rest."""
        with self._lock:
            children = list(self._children)
        return any(child.terminate(take) for child in children)

    def close(self) -> None:
        """Stop every child: each finishes the job it has, if any, then exits."""
        with self._lock:
            children, self._children = self._children, []
        for child in children:
            child.close()

    def _retire(self, child: Child) -> None:
        """Replace a child that has run its ``max_tasks_per_child``: it exits (it is idle),
        and this thread's next batch starts a new one."""
        self._local.child = None
        with self._lock:
            self._children = [other for other in self._children if other is not child]
        child.close()

    def _report_to(self, report: Report) -> Report:
        def learn_and_report(job: Job, outcome: Outcome, duration: float) -> None:
            self._typical = duration if self._typical <= 0 else (self._typical * 7 + duration) / 8
            report(job, outcome, duration)

        return learn_and_report

    def _ready_child(self) -> Child:
        with self._lock:
            child = self._idle.pop() if self._idle else None
        if child is None or not child.alive():
            child = self._start_child()
            child.wait_until_ready()
        return child

    def _start_child(self) -> Child:
        child = Child(self._context, self.app_spec)
        with self._lock:
            self._children = [other for other in self._children if other.alive()] + [child]
        return child


class Child:
    """A child process and the parent's end of its pipe."""

    def __init__(self, context: Any, app_spec: str) -> None:
        self.app_spec = app_spec
        self.connection, child_end = context.Pipe()
        # Only this process holds the writing end: the child reads EOF once it is gone.
        lifeline, self._lifeline = context.Pipe(duplex=False)
        self.process = context.Process(
            target=child_main,
            args=(app_spec, child_end, lifeline, os.getpid()),
            name="sqlqueue-child",
            daemon=True,
        )
        with _REAPING:
            self.process.start()
        child_end.close()
        lifeline.close()
        # One selector for the child's life: Connection.poll() builds one per call.
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.connection, selectors.EVENT_READ)
        self.jobs_run = 0
        """Jobs this child has run and sent the outcome of."""
        self._running: tuple[str, int] | None = None
        """The take of the job whose outcome the parent waits for: the one running, unless
        its outcome is already in the pipe."""
        self._killed_for: tuple[str, int] | None = None
        """The take whose revoke killed this child."""
        self._terminating = threading.Lock()

    def wait_until_ready(self) -> None:
        """Wait until the child has loaded the app.

        Raises:
            ChildStartError: it could not, with its error; or it died meanwhile.
        """
        try:
            message = json.loads(self.connection.recv_bytes())
        except EOFError:
            with _REAPING:
                self.process.join()
            raise ChildStartError(
                f"A process-pool child exited with {exit_description(self.process.exitcode)} "
                f"while it loaded the app {self.app_spec!r}."
            ) from None
        if "error" in message:
            self.close()
            raise ChildStartError(
                f"A process-pool child could not load the app {self.app_spec!r}: "
                f"{message['error']}\nChildren import it afresh; the child's traceback:\n"
                f"{message['traceback']}"
            )

    def terminate(self, take: tuple[str, int]) -> bool:
        """Kill this child if it runs this take's job; whether it did."""
        with self._terminating:
            if self._running != take or self._killed_for is not None:
                return False
            self._killed_for = take
            self.process.kill()  # the thread waiting for its outcome reaps it
            return True

    def alive(self) -> bool:
        # is_alive() reaps the child when it has exited, like start() and join() do.
        with _REAPING:
            return bool(self.process.is_alive())

    def run(
        self, batch: Sequence[tuple[Job, float | None]], report: Report, stopping: threading.Event
    ) -> list[tuple[Job, float | None]]:
        """Hand the child a batch (each job with its hard time limit) and report each
        outcome as it comes. Returns the jobs still to run: those after the one this child
        was killed or died in (which is reported as failed), else none.

        Raises:
            BrokenPipeError: the child had died before the batch reached it.
        """
        self.connection.send_bytes(json.dumps([job_message(job) for job, _ in batch]).encode())
        started = time.monotonic()
        stop_sent = False
        for n, (job, limit) in enumerate(batch):
            with self._terminating:
                self._running = (job.id, job.attempts)
            deadline = started + limit if limit else None
            # Only a job with others behind it needs an eye on the worker's stop.
            watch_stop = n + 1 < len(batch) and not stop_sent
            while not self._readable(deadline, STOP_CHECK if watch_stop else None):
                if deadline is not None and time.monotonic() >= deadline:
                    self._kill()
                    killed = TimeLimitExceeded(
                        f"time limit ({limit:g}s) exceeded; the process was killed"
                    )
                    report(job, Outcome.failed(Failure.from_exception(killed)), limit or 0.0)
                    return list(batch[n + 1 :])
                if watch_stop and stopping.is_set():
                    self._ask_to_stop()
                    stop_sent, watch_stop = True, False
            try:
                message = self.connection.recv_bytes()
            except EOFError:
                with _REAPING:
                    self.process.join()
                self._lifeline.close()
                if self._killed_for == (job.id, job.attempts):
                    stopped = Outcome.failed(Failure.from_exception(Terminated()))
                    report(job, stopped, time.monotonic() - started)
                    return list(batch[n + 1 :])
                if self._killed_for is not None:
                    # Killed for a job that finished just before: this one had only begun,
                    # and runs again on a new child.
                    return list(batch[n:])
                lost = WorkerLostError(
                    "The process running the job exited with "
                    f"{exit_description(self.process.exitcode)} before it finished."
                )
                report(job, Outcome.failed(Failure.from_exception(lost)), 0.0)
                return list(batch[n + 1 :])
            with self._terminating:
                self._running = None
            if message == STOP:  # the rest of the batch never started
                return []
            now = time.monotonic()
            self.jobs_run += 1
            report(job, outcome_from_message(message), now - started)
            started = now
        return []

    def _readable(self, deadline: float | None, check_every: float | None) -> bool:
        """Wait for a message until the deadline or for ``check_every`` seconds, whichever is
        first (no timeout: until one comes); whether one came."""
        timeout = check_every
        if deadline is not None:
            left = max(0.0, deadline - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        if timeout is None:
            return True  # recv_bytes() waits
        return bool(self._selector.select(timeout))

    def _ask_to_stop(self) -> None:
        try:
            self.connection.send_bytes(STOP)
        except BrokenPipeError:  # it died: the read after this says so
            pass

    def _kill(self) -> None:
        self.process.kill()
        with _REAPING:
            self.process.join()
        self._lifeline.close()

    def close(self) -> None:
        """Let the child finish its job, if any, and exit; kill it after ``STOP_TIMEOUT``."""
        self._selector.close()
        self.connection.close()
        self.process.join(STOP_TIMEOUT)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._lifeline.close()


def child_main(app_spec: str, connection: Connection, lifeline: Connection, parent: int) -> None:
    """The loop of a child: load the app, say so, then receive a batch of jobs, run them in
    order and send each outcome as it has it, until the pipe closes. Between two jobs of a
    batch, a stop message from the worker ends the batch: the child says so and waits."""
    die_with_parent(lifeline, parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from sqlqueue.loading import load_app  # the child imports the user's app, as the worker did

    try:
        app = load_app(app_spec)
        app.import_default_modules()
        ready: dict[str, Any] = {"ready": True}
    except BaseException as exc:  # whatever the app's import raises, the worker shows it
        cause = exc.__cause__ or exc
        ready = {"error": str(exc), "traceback": "".join(traceback.format_exception(cause))}
    try:
        connection.send_bytes(json.dumps(ready).encode())
    except BrokenPipeError:  # the worker gave up on its children: another one failed
        return
    if "error" in ready:
        return
    while True:
        try:
            message = connection.recv_bytes()
        except EOFError:
            return
        if message == STOP:  # it came after the batch it was for had finished
            continue
        looked = time.monotonic()
        for n, job in enumerate(json.loads(message)):
            if n and (now := time.monotonic()) - looked >= STOP_LOOK:
                looked = now
                if connection.poll():  # only a stop comes during a batch
                    connection.recv_bytes()
                    connection.send_bytes(STOP)
                    break
            connection.send_bytes(outcome_message(run_job(app, job)))


def run_job(app: SQLQueue, message: dict[str, Any]) -> Outcome:
    """Run one job of a batch in this child."""
    request = Request(
        id=message["id"],
        task=message["task"],
        args=message["args"],
        kwargs=message["kwargs"],
        retries=message["retries"],
        attempts=message["attempts"],
        queue=message["queue"],
    )
    task = app.tasks.get(request.task)
    if task is None:
        return unknown_task(request.task)
    with app.around_job():
        return run_task(task, request, alarm_soft_limit)


def die_with_parent(lifeline: Connection, parent: int) -> None:
    """Exit as soon as the worker is gone, whatever the job is doing."""
    if sys.platform == "linux":
        # SIGKILL from the kernel, even to a child stuck in C code holding the GIL. It fires
        # when the worker's thread that started this child ends, too: at the worker's stop,
        # once the job is done, or after a crash of that thread, when no one is left to
        # collect the outcome anyway.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the worker died before the request above
        os._exit(1)
    threading.Thread(target=exit_when_closed, args=(lifeline,), daemon=True).start()


def exit_when_closed(lifeline: Connection) -> None:
    """Wait for the end of the pipe that only the worker writes to, then exit at once."""
    try:
        lifeline.recv_bytes()
    except EOFError:
        pass
    os._exit(1)


def job_message(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "task": job.task_name,
        "args": job.args,
        "kwargs": job.kwargs,
        "retries": job.retries,
        "attempts": job.attempts,
        "queue": job.queue,
    }


def outcome_message(outcome: Outcome) -> bytes:
    """An outcome as one message: its other fields as a line of JSON, then the result's JSON
    text as it is (a JSON line never holds a raw newline, so the first one ends it). A plain
    success, the common case, has an empty line: the JSON would cost a no-op job a tenth of
    its time in the child and in the worker."""
    result = (outcome.result_json or "").encode()
    if outcome == Outcome.succeeded(outcome.result_json):
        return b"\n" + result
    failure = outcome.failure.as_values() if outcome.failure is not None else None
    header = {
        "status": outcome.status.value,
        "failure": failure,
        "countdown": outcome.countdown,
        "new_args": outcome.new_args,
        "new_kwargs": outcome.new_kwargs,
    }
    return json.dumps(header).encode() + b"\n" + result


def outcome_from_message(message: bytes) -> Outcome:
    header_line, _, result = message.decode().partition("\n")
    if not header_line:
        return Outcome.succeeded(result or None)
    header = json.loads(header_line)
    status = JobStatus(header["status"])
    failure = Failure(**header["failure"]) if header["failure"] is not None else None
    return Outcome(
        status,
        result_json=result or None,  # none for a success whose result the task ignores
        failure=failure,
        countdown=header["countdown"],
        new_args=header["new_args"],
        new_kwargs=header["new_kwargs"],
    )


def exit_description(code: int | None) -> str:
    """``signal SIGSEGV`` for a child killed by a signal, ``code 3`` for an exit."""
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"code {code}"
