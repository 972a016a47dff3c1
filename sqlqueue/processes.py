"""Child processes that run jobs for a worker started with ``--pool process``.

Each of the worker's threads owns one child and hands it one job at a time through a pipe,
as JSON, then waits for the outcome. So CPU-bound tasks run in parallel, and a task can be
stopped for real: a child that passes its task's hard time limit is killed, and a child that
dies (a segfault, ``os._exit()``, the OOM killer) is noticed at once. Either way the job
fails (``TimeLimitExceeded`` or ``WorkerLostError``) and the next job gets a new child.
Children ignore SIGINT and SIGTERM: the worker decides when they stop, after their job.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import threading
from multiprocessing.connection import Connection
from typing import Any

from sqlqueue.exceptions import TimeLimitExceeded, WorkerLostError
from sqlqueue.execution import Failed, Outcome, Retrying, Succeeded, run_task, unknown_task
from sqlqueue.jobs import Job
from sqlqueue.serialization import Failure
from sqlqueue.tasks import Request, Task
from sqlqueue.timelimits import alarm_soft_limit

STOP_TIMEOUT = 10.0
"""Seconds a child gets to exit after its pipe is closed, before it is killed."""

_REAPING = threading.Lock()
"""Held while a child is started, checked or waited for. Each of these reaps finished
children (starting one reaps every finished child: ``multiprocessing``'s cleanup), and two
threads reaping one child at once leave one of them without its exit code: a crash would be
reported as "exited with code None"."""


class ProcessPool:
    """One child process per worker thread, started when that thread first needs it."""

    def __init__(self, app_spec: str) -> None:
        self.app_spec = app_spec
        # spawn, not fork: the worker has threads and open database connections.
        self._context = multiprocessing.get_context("spawn")
        self._local = threading.local()
        self._children: list[Child] = []
        self._lock = threading.Lock()

    def run(self, task: Task[..., Any] | None, job: Job) -> Outcome:
        """Run the job in this thread's child and return its outcome."""
        if task is None:
            return unknown_task(job.task_name)
        child: Child | None = getattr(self._local, "child", None)
        if child is None or not child.alive():
            child = self._local.child = self._start_child()
        try:
            outcome = child.run(job, task.time_limit)
        except BrokenPipeError:  # the idle child died since; the job never reached it
            child = self._local.child = self._start_child()
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

    def _start_child(self) -> Child:
        child = Child(self._context, self.app_spec)
        with self._lock:
            self._children = [other for other in self._children if other.alive()] + [child]
        return child


class Child:
    """A child process and the parent's end of its pipe."""

    def __init__(self, context: Any, app_spec: str) -> None:
        self.connection, child_end = context.Pipe()
        self.process = context.Process(
            target=child_main, args=(app_spec, child_end), name="sqlqueue-child", daemon=True
        )
        with _REAPING:
            self.process.start()
        child_end.close()

    def alive(self) -> bool:
        # is_alive() reaps the child when it has exited, like start() and join() do.
        with _REAPING:
            return bool(self.process.is_alive())

    def run(self, job: Job, time_limit: float | None) -> Outcome:
        self.connection.send_bytes(json.dumps(job_message(job)).encode())
        if not self.connection.poll(time_limit):
            self.process.kill()
            self.process.join()
            return Failed(
                Failure.from_exception(
                    TimeLimitExceeded(
                        f"time limit ({time_limit:g}s) exceeded; the process was killed"
                    )
                )
            )
        try:
            return outcome_from_message(json.loads(self.connection.recv_bytes()))
        except EOFError:
            with _REAPING:
                self.process.join()
            return Failed(
                Failure.from_exception(
                    WorkerLostError(
                        f"The process running the job exited with {exit_description(self.process.exitcode)} "
                        "before it finished."
                    )
                )
            )

    def close(self) -> None:
        self.connection.close()
        self.process.join(STOP_TIMEOUT)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def child_main(app_spec: str, connection: Connection) -> None:
    """The loop of a child: receive a job, run it, send its outcome, until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from sqlqueue.loading import load_app  # the child imports the user's app, as the worker did

    app = load_app(app_spec)
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
        connection.send_bytes(json.dumps(outcome_message(outcome)).encode())


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


def outcome_message(outcome: Outcome) -> dict[str, Any]:
    if isinstance(outcome, Succeeded):
        return {"outcome": "success", "result": outcome.result}
    if isinstance(outcome, Retrying):
        failure = outcome.failure.as_values() if outcome.failure is not None else None
        return {"outcome": "retry", "countdown": outcome.countdown, "failure": failure}
    return {"outcome": "failure", "failure": outcome.failure.as_values()}


def outcome_from_message(message: dict[str, Any]) -> Outcome:
    if message["outcome"] == "success":
        return Succeeded(message["result"])
    if message["outcome"] == "retry":
        failure = Failure(**message["failure"]) if message["failure"] is not None else None
        return Retrying(message["countdown"], failure)
    return Failed(Failure(**message["failure"]))


def exit_description(code: int | None) -> str:
    """``signal SIGSEGV`` for a child killed by a signal, ``code 3`` for an exit."""
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"code {code}"
