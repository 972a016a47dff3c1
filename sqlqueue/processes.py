"""Child processes that run jobs for a worker started with ``--pool process``.

Each of the worker's threads owns one child and hands it one job at a time through a pipe,
as JSON, then waits for the outcome (the result as the JSON text the row will store). So CPU-bound tasks run in parallel, and a task can be
stopped for real: a child that passes its task's hard time limit is killed, and a child that
dies (a segfault, ``os._exit()``, the OOM killer) is noticed at once. Either way the job
fails (``TimeLimitExceeded`` or ``WorkerLostError``) and the next job gets a new child.
Children ignore SIGINT and SIGTERM: the worker decides when they stop, after their job.

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
import signal
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from typing import Any

from sqlqueue.exceptions import ConfigurationError, TimeLimitExceeded, WorkerLostError
from sqlqueue.execution import run_task, unknown_task
from sqlqueue.jobs import Job, JobStatus
from sqlqueue.outcomes import Outcome
from sqlqueue.serialization import Failure
from sqlqueue.tasks import Request, Task
from sqlqueue.timelimits import alarm_soft_limit

STOP_TIMEOUT = 10.0
"""Seconds a child gets to exit after its pipe is closed, before it is killed."""

PR_SET_PDEATHSIG = 1
"""Linux's ``prctl`` option: the signal a process gets when the thread that started it ends."""

_REAPING = threading.Lock()
"""Held while a child is started, checked or waited for. Each of these reaps finished
children (starting one reaps every finished child: ``multiprocessing``'s cleanup), and two
threads reaping one child at once leave one of them without its exit code: a crash would be
reported as "exited with code None"."""


class ChildStartError(ConfigurationError):
    """A child process could not load the app."""


class ProcessPool:
    """One child process per worker thread: started with the worker, replaced when it dies."""

    def __init__(self, app_spec: str) -> None:
        self.app_spec = app_spec
        # spawn, not fork: the worker has threads and open database connections.
        self._context = multiprocessing.get_context("spawn")
        self._local = threading.local()
        self._children: list[Child] = []
        self._idle: list[Child] = []
        """Children started by ``start()`` that no thread has taken yet."""
        self._lock = threading.Lock()

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

    def run(self, task: Task[..., Any] | None, job: Job) -> Outcome:
        """Run the job in this thread's child and return its outcome.

        Raises:
            ChildStartError: a new child (replacing one that died or was killed at its time
                limit) could not load the app, which loaded at start: the code changed under
                the worker. The job never started; the worker must stop and give it back.
        """
        if task is None:
            return unknown_task(job.task_name)
        child: Child | None = getattr(self._local, "child", None)
        if child is None or not child.alive():
            child = self._local.child = self._ready_child()
        try:
            outcome = child.run(job, task.time_limit)
        except BrokenPipeError:  # the idle child died since; the job never reached it
            child = self._local.child = self._ready_child()
            outcome = child.run(job, task.time_limit)
        if not child.alive():
            self._local.child = None
        return outcome

    def close(self) -> None:
        """Stop every child: each finishes the job it has, if any, then exits."""
        with self._lock:
            children, self._children = self._children, []
        for child in children:
            child.close()

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

    def alive(self) -> bool:
        # is_alive() reaps the child when it has exited, like start() and join() do.
        with _REAPING:
            return bool(self.process.is_alive())

    def run(self, job: Job, time_limit: float | None) -> Outcome:
        self.connection.send_bytes(json.dumps(job_message(job)).encode())
        if not self.connection.poll(time_limit):
            self.process.kill()
            with _REAPING:
                self.process.join()
            self._lifeline.close()
            return Outcome.failed(
                Failure.from_exception(
                    TimeLimitExceeded(
                        f"time limit ({time_limit:g}s) exceeded; the process was killed"
                    )
                )
            )
        try:
            return outcome_from_message(self.connection.recv_bytes())
        except EOFError:
            with _REAPING:
                self.process.join()
            self._lifeline.close()
            return Outcome.failed(
                Failure.from_exception(
                    WorkerLostError(
                        f"The process running the job exited with {exit_description(self.process.exitcode)} "
                        "before it finished."
                    )
                )
            )

    def close(self) -> None:
        """Let the child finish its job, if any, and exit; kill it after ``STOP_TIMEOUT``."""
        self.connection.close()
        self.process.join(STOP_TIMEOUT)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._lifeline.close()


def child_main(app_spec: str, connection: Connection, lifeline: Connection, parent: int) -> None:
    """The loop of a child: load the app, say so, then receive a job, run it, send its
    outcome, until the pipe closes."""
    die_with_parent(lifeline, parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from sqlqueue.loading import load_app  # the child imports the user's app, as the worker did

    try:
        app = load_app(app_spec)
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
            message = json.loads(connection.recv_bytes())
        except EOFError:
            return
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
            outcome: Outcome = unknown_task(request.task)
        else:
            with app.around_job():
                outcome = run_task(task, request, alarm_soft_limit)
        connection.send_bytes(outcome_message(outcome))


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
    text as it is (a JSON line never holds a raw newline, so the first one ends it)."""
    failure = outcome.failure.as_values() if outcome.failure is not None else None
    header = {"status": outcome.status.value, "failure": failure, "countdown": outcome.countdown}
    return f"{json.dumps(header)}\n{outcome.result_json or ''}".encode()


def outcome_from_message(message: bytes) -> Outcome:
    header_line, _, result = message.decode().partition("\n")
    header = json.loads(header_line)
    status = JobStatus(header["status"])
    failure = Failure(**header["failure"]) if header["failure"] is not None else None
    return Outcome(
        status,
        result_json=result if status is JobStatus.SUCCESS else None,
        failure=failure,
        countdown=header["countdown"],
    )


def exit_description(code: int | None) -> str:
    """``signal SIGSEGV`` for a child killed by a signal, ``code 3`` for an exit."""
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"code {code}"
