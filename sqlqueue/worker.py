"""Worker: take ready jobs, run them in a thread pool, record what they came to.

The loop takes jobs for its free slots and, when jobs are short, a few more (prefetch): as
many as the threads will start while the next claim is in flight, so the threads never wait
for a round trip and the claims grow with the pace of the work. Jobs of unknown or long
duration are never prefetched, and a buffer whose oldest job has waited longer than a claim
should take (every thread busy with jobs longer than expected) is given back, so no job waits
in one worker's memory while another worker could run it. A slot frees as soon as its task
returns. The job's thread then hands the outcome to the recorder (``recorder``), which writes
outcomes in batches. A job stays held, its lease renewed by a side thread, from its claim
until its outcome is written; a thread starts it only while its lease, counted by the worker's
own clock from when the claim or the last renewal was sent, surely holds.

Beside the claim, never in its way, a thread does the queue's chores (``chores``): it
re-queues jobs whose lease ran out, which is how jobs of a killed worker come back. Another
sends the app's periodic tasks at their ticks (``scheduler``), when it has any. The thread
that renews leases also renews the worker's row in ``sqlqueue_workers`` (``heartbeats``),
which ``sqlqueue workers`` reads. Each
write about a taken job names its take (id and attempt number), so a worker that was
presumed dead and comes back late changes nothing; and the worker holds takes, not jobs, so
that a job re-queued and taken again while its first take still runs is held twice.

An idle worker sleeps until a slot frees, a job it knows of becomes due, its chores re-queue
jobs, or a stop. On PostgreSQL, while its LISTEN connection is up, a send wakes it, so it
looks for work on its own only every ``IDLE_FALLBACK_POLL`` seconds; otherwise (SQLite,
MySQL) it polls: quickly while jobs keep coming (``BUSY_POLL_INTERVAL`` after a claim that
found some), then slower with each claim that finds none, up to the poll interval, so a
steady trickle of sends is not left waiting a whole interval and an idle worker costs little.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Sequence
from queue import Empty, SimpleQueue
from typing import Any

from sqlqueue import signals
from sqlqueue.app import SQLQueue
from sqlqueue.batches import BatchRunner
from sqlqueue.chores import Chores
from sqlqueue.conf import HEARTBEAT_INTERVAL, MAX_DATABASE_BACKOFF, default_concurrency
from sqlqueue.dialects import create_engine_for_url
from sqlqueue.dialects.base import Take, take_of
from sqlqueue.exceptions import DatabaseError, InvalidOptionError
from sqlqueue.execution import execute
from sqlqueue.heartbeats import Heartbeat
from sqlqueue.jobs import Job
from sqlqueue.metrics import WorkerMetrics
from sqlqueue.outages import Outage
from sqlqueue.periodic import read_periodic_tasks
from sqlqueue.prefetch import MAX_BUFFER_WAIT, Prefetch
from sqlqueue.processes import ProcessPool
from sqlqueue.recorder import MAX_OUTCOME_BATCH, Finished, Recorder
from sqlqueue.revocations import Revocations
from sqlqueue.scheduler import Scheduler
from sqlqueue.worker_options import WorkerOptions

logger = logging.getLogger(__name__)

COROUTINE_WAIT = 0.05
"""Seconds a job's thread waits for its coroutine before checking for a time limit."""


def _boot_clock() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


lease_clock: Callable[[], float] = (
    _boot_clock if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic
)
"""The clock a worker counts its leases by: seconds since boot, suspended time included
(Linux's ``CLOCK_BOOTTIME``), since the database's clock runs on while a host sleeps, and a
host woken from a suspend longer than the lease must not start its buffered jobs;
``time.monotonic()`` elsewhere. A paused virtual machine's clocks stop with it: no clock
catches that, the fence on every write does (docs/reliability.md)."""

LEASE_MARGIN = 0.1
"""Share of the lease a worker does not count on: it starts a job only until its lease, by the
worker's own clock, has this share of its length left (docs/reliability.md, "A job whose lease
ran out does not start")."""

IDLE_FALLBACK_POLL = 30.0
"""Seconds an idle worker that listens for notifications (PostgreSQL) waits, at most, before
looking for work anyway: a safety net, since a send wakes it at once."""

MAX_UNRECORDED = MAX_OUTCOME_BATCH
"""Jobs whose task has returned but whose outcome is not written yet, at which the worker
stops claiming until the recorder catches up. Where tasks run faster than the database
writes their outcomes (no-op tasks on MySQL), those jobs would pile up held: every renewal
would renew them all, ever slower, until leases lapsed, and a kill would lose every one."""

HAND_OVER_WAIT = 0.005
"""Seconds, at most, the loop waits after a claim that took every ready job it saw for free
threads to take those jobs, before its next statement: the Python of that statement would
hold the GIL that the threads need to start them."""

BUSY_POLL_INTERVAL = 0.05
"""Seconds a polling worker waits after a claim that found jobs, before it looks again; the
wait doubles with each claim that finds none, up to the poll interval."""


class Worker:
    """Runs jobs from an app's queue until stopped (or, in burst mode, until none is ready)."""

    def __init__(self, app: SQLQueue, options: WorkerOptions | None = None) -> None:
        self.app = app
        self.options = options or WorkerOptions()
        app.import_default_modules()
        # The random part keeps ids apart where host names and pids repeat (containers that
        # all run the worker as pid 1, two workers in one process): a worker gives back
        # jobs leased to its id that it does not hold, so two with one id would undo each
        # other's claims.
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = self.options.lease or app.conf.lease
        self.poll_interval = self.options.poll_interval or app.conf.poll_interval
        if self.lease <= 0 or self.poll_interval <= 0:
            raise InvalidOptionError(
                "app.conf.lease and app.conf.poll_interval must be more than 0 seconds."
            )
        self._poll_wait = self.poll_interval
        """How long a polling worker waits after its next claim that finds nothing."""
        self._stopping = threading.Event()
        self._wakeup = threading.Event()
        self._recorder_behind = threading.Event()
        """Set while the loop claims nothing because ``MAX_UNRECORDED`` outcomes wait."""
        self._fatal: BaseException | None = None
        """What stopped the worker from a side thread (a chore, a job thread), raised by
        ``run()`` once every running job is recorded and the unstarted ones are given back."""
        self._held: dict[Take, float] = {}
        """The takes of the jobs this worker has taken and not yet recorded, each with until
        when (``lease_clock()``) its lease is surely still this worker's: when the claim or
        the last renewal that kept it was sent, plus the lease, less ``LEASE_MARGIN`` of it.
        After an outage longer than the lease, the job of a task still running may be
        re-queued and taken again by this same worker, which then holds two takes of it, each
        renewed and recorded alone."""
        self._unfinished = 0
        """Jobs taken whose task has not returned yet: running, or waiting in ``_to_run``."""
        self.concurrency = (
            self.options.concurrency
            or app.conf.worker_concurrency
            or default_concurrency(self.options.pool)
        )
        """Jobs run at once: the option, else the app's ``worker_concurrency``, else the
        default for the pool."""
        self._rate_limited = any(task.rate_interval for task in app.tasks.values())
        """Whether a task of this worker has a rate limit: then, idle, it also wakes when a
        bucket refills (docs/limits.md)."""
        self._prefetch = Prefetch(self.concurrency)
        self._metrics = (
            None
            if self.options.metrics_port is None
            else WorkerMetrics(app.store, self.options.metrics_port)
        )
        self._heartbeat = Heartbeat(
            app.store, self.id, self.options.queues, self.concurrency, self.options.pool
        )
        self._held_lock = threading.Lock()
        self._to_run: SimpleQueue[Job | None] = SimpleQueue()
        """Jobs taken, for the job threads to run (the buffer); None tells one thread to stop."""
        self._taken = threading.Event()
        """Set by a job thread that takes the last job in the buffer (``HAND_OVER_WAIT``)."""
        self._recorder = Recorder(app.store, self.lease, self._recorded)
        self._chores = Chores(
            app, self.lease, self.poll_interval, self._stopping, self._wakeup.set, self._fail
        )
        periodic = read_periodic_tasks(app) if self.options.beat else []
        self._scheduler = Scheduler(app, periodic, self._stopping, self._fail) if periodic else None
        self._listening = threading.Event()
        """Set while the LISTEN connection is up: a send will wake this worker."""
        listen_url = self.options.listen_url or app.conf.listen_url
        if listen_url is not None and not app.dialect.supports_listen_notify:
            raise InvalidOptionError(
                f"listen_url is for PostgreSQL's LISTEN; workers on {app.dialect.name} poll."
            )
        self._listen_engine = None if listen_url is None else create_engine_for_url(listen_url)[0]
        """With ``listen_url``: the engine of the direct connection the worker listens on."""
        self._processes = (
            ProcessPool(
                self.options.app_spec,
                self.options.max_tasks_per_child or app.conf.worker_max_tasks_per_child,
            )
            if self.options.pool == "process" and self.options.app_spec
            else None
        )
        self._revocations = Revocations(
            app.store,
            self._held_takes,
            self._processes,
            quiet_wait=self.lease / 3,
            listening=self._listening,
        )
        self._batches = (
            None
            if self._processes is None
            else BatchRunner(
                pool=self._processes,
                buffer=self._to_run,
                concurrency=self.concurrency,
                tasks=app.tasks,
                prefetch=self._prefetch,
                recorder=self._recorder,
                stopping=self._stopping,
                free_slots=self._free_slots,
                forget=self._forget,
                may_start=self._may_start,
                fail=self._fail,
            )
        )
        """With a process pool: what the job threads run, handing their children batches."""

    def stop(self) -> None:
        """Stop taking jobs; running ones finish, and ``run()`` returns after them."""
        self._stopping.set()
        self._wakeup.set()

    def run(self) -> None:
        """Work until ``stop()`` (or, with ``burst``, until no ready job is left).

        Raises:
            DatabaseError: a non-transient one (no table, a schema older than this code, a
                statement refused), from the claim or the chores: waiting cannot help.
            ChildStartError: a process-pool child could not load the app.
            ConfigurationError: the metrics port is taken, or the metrics extra missing.
        """
        if self._metrics is not None:
            self._metrics.start()  # first: a port taken stops the worker before anything starts
        if self._processes is not None:
            # Before any claim: children that cannot load the app stop the worker here.
            self._processes.start(self.concurrency)
        logger.info(
            "worker started id=%s queues=%s concurrency=%d pool=%s lease=%gs",
            self.id,
            ",".join(self.options.queues or ["*"]),
            self.concurrency,
            self.options.pool,
            self.lease,
        )
        self._heartbeat.beat(0)
        # Threads of our own, each taking jobs from one queue: a ThreadPoolExecutor's futures
        # cost a busy worker a noticeable share of its time per job (docs/benchmarks.md,
        # "Drains"), and nothing here waits on them.
        job_threads = [
            threading.Thread(target=self._run_jobs, name=f"sqlqueue-job-{n}")
            for n in range(self.concurrency)
        ]
        for thread in job_threads:
            thread.start()
        finished = threading.Event()
        renewer = threading.Thread(
            target=self._renew_leases, args=(finished,), name="sqlqueue-lease", daemon=True
        )
        renewer.start()
        revocations = threading.Thread(
            target=self._revocations.watch, args=(finished,), name="sqlqueue-revocations"
        )
        revocations.start()
        self._recorder.start()
        self._chores.start()
        if self._scheduler is not None:
            self._scheduler.start()
        if self.app.dialect.supports_listen_notify:
            threading.Thread(
                target=self.app.dialect.listen,
                args=(
                    self.app.engine,
                    self._wakeup.set,
                    finished,
                    self._listening,
                    self._revocations.poke,
                    self._listen_engine,
                    self.poll_interval,
                ),
                name="sqlqueue-listen",
                daemon=True,
            ).start()
        else:
            logger.info(
                "new jobs: polling every %gs, sooner while jobs keep coming (%s has no "
                "LISTEN/NOTIFY)",
                self.poll_interval,
                self.app.dialect.name,
            )
        loop = asyncio.new_event_loop()
        loop_thread = threading.Thread(target=loop.run_forever, name="sqlqueue-loop", daemon=True)
        loop_thread.start()
        self._event_loop = loop
        try:
            self._loop()
        finally:
            self._stopping.set()
            self._chores.join()
            if self._scheduler is not None:
                self._scheduler.join()
            self._stop_job_threads(job_threads)
            # Every task that started has returned and handed its outcome over; the
            # recorder writes them all before it stops.
            self._recorder.stop()
            if self._processes is not None:
                self._processes.close()
            # Every job that ran has been recorded and dropped from _held by now; what is
            # left was taken but never started: give it back.
            with self._held_lock:
                unstarted = list(self._held)
            self._release(unstarted)
            finished.set()
            self._revocations.poke()
            renewer.join()
            self._heartbeat.stop()
            if self._metrics is not None:
                self._metrics.stop()
            revocations.join()
            loop.call_soon_threadsafe(loop.stop)
            loop_thread.join()
            loop.close()
        signals.worker_shutdown.send(sender=self)
        if self._fatal is not None:
            raise self._fatal
        logger.info("worker stopped id=%s", self.id)

    def _fail(self, exc: BaseException) -> None:
        # From a side thread: stop as gracefully as a SIGTERM would, then let run() raise.
        if self._fatal is None:
            self._fatal = exc
        self.stop()

    def _loop(self) -> None:
        backoff = self.poll_interval
        outage = Outage(logger, "claims")
        unsure = False
        ready = False
        while not self._stopping.is_set():
            self._wakeup.clear()
            # Read before claiming: a job whose outcome is written during the claim may have
            # re-queued itself (a retry), and so may the first chores (expired leases), so
            # burst mode may only stop when nothing was held and the chores had run.
            with self._held_lock:
                held = len(self._held)
                unfinished = self._unfinished
            may_leave = self.options.burst and not held and self._chores.done.is_set()
            limit = self._prefetch.claim_size(unfinished)
            if held - unfinished >= MAX_UNRECORDED and self._still_behind():
                limit = 0  # until the recorder wakes the loop
            # A job that has waited in the buffer for longer than a claim should take (every
            # thread busy with jobs longer than the prefetch allowed for) may start sooner
            # on another worker.
            overdue = self._prefetch.oldest_wait(self._to_run.qsize()) > MAX_BUFFER_WAIT
            due_in = None
            try:
                if unsure:
                    self._release_unknown_takes()
                    unsure = False
                if overdue:
                    self._give_back_buffer()
                claim_sent = time.monotonic()
                jobs = self._claim(limit) if limit else []
                if jobs:
                    self._hand_over(jobs, self.concurrency - unfinished)
                if len(jobs) < limit and (jobs or not may_leave):
                    # The claim took every ready job it could see (limits aside), so the loop
                    # waits rather than claim again at once: sends wake it, or, polling, its
                    # next look finds them. Nothing announces that a countdown or a retry's
                    # delay has run out, nor that a rate limit's bucket holds a job again:
                    # the next such time is read, counting those passed since the claim.
                    if jobs and self._batches is None:
                        self._taken.wait(HAND_OVER_WAIT)
                    if not self._wakeup.is_set():  # (else the loop does not wait anyway)
                        due_in = self.app.store.next_due_in(
                            self.options.queues,
                            refills=self._rate_limited,
                            since=time.monotonic() - claim_sent,
                        )
            except DatabaseError as exc:
                if not exc.transient:
                    raise  # no table, or a schema older than this code: waiting cannot help
                outage.failed(exc)
                # A claim cut off at its commit may have taken jobs we never heard of.
                unsure = True
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_DATABASE_BACKOFF)
                continue
            outage.answered()
            backoff = self.poll_interval
            if not ready:  # its first claim answered: the database is there, and its schema
                signals.worker_ready.send(sender=self)
                ready = True
            if jobs:
                self._poll_wait = min(BUSY_POLL_INTERVAL, self.poll_interval)
                if len(jobs) == limit:  # more may be ready
                    continue
            elif may_leave:
                logger.info("burst: no ready job left")
                return
            self._wakeup.wait(self._idle_wait(due_in))

    def _hand_over(self, jobs: Sequence[Job], free: int) -> None:
        """Put claimed jobs in the buffer, for the job threads. With ``free`` threads for all
        of them, ``_taken`` is cleared, to be set once they are taken; otherwise it is left
        as it is (set, unless the jobs of a claim before are still being taken)."""
        if free >= len(jobs):
            self._taken.clear()
        self._prefetch.filled(len(jobs))
        for job in jobs:
            self._to_run.put(job)

    def _still_behind(self) -> bool:
        # Said before the second look, so that a batch written between the two looks is
        # seen by the second, and one written after it wakes the loop.
        self._recorder_behind.set()
        with self._held_lock:
            return len(self._held) - self._unfinished >= MAX_UNRECORDED

    def _give_back_buffer(self) -> None:
        """Give back the jobs waiting in the buffer; a thread that frees meanwhile takes
        one first."""
        waiting: list[Job] = []
        while True:
            try:
                job = self._to_run.get_nowait()
            except Empty:
                break
            if job is not None:  # (only a stop puts None, after this loop has ended)
                waiting.append(job)
        if not waiting:
            return
        self._prefetch.gave_back()
        takes = [take_of(job) for job in waiting]
        with self._held_lock:
            for take in takes:
                self._held.pop(take, None)
            self._unfinished -= len(takes)
        self._release(takes)

    def _idle_wait(self, due_in: float | None) -> float:
        # Listening, a poll is only a safety net; without it (SQLite, or the connection
        # lost) polling is how new jobs are found. Either way a due job comes first.
        if self._listening.is_set():
            wait = IDLE_FALLBACK_POLL
        else:
            wait, self._poll_wait = self._poll_wait, min(2 * self._poll_wait, self.poll_interval)
        waiting = self._to_run.qsize()
        if waiting:  # until the oldest job in the buffer is overdue (again, if it is)
            oldest = self._prefetch.oldest_wait(waiting)
            wait = MAX_BUFFER_WAIT - oldest if oldest < MAX_BUFFER_WAIT else MAX_BUFFER_WAIT
        return wait if due_in is None else min(wait, due_in)

    def _claim(self, limit: int) -> list[Job]:
        sent, clock_sent = time.monotonic(), lease_clock()
        jobs = self.app.store.claim_jobs(limit, self.options.queues, self.id, self.lease)
        self._prefetch.claimed(time.monotonic() - sent)
        leased_until = self._leased_until(clock_sent)
        with self._held_lock:
            self._held.update((take_of(job), leased_until) for job in jobs)
            self._unfinished += len(jobs)
        return jobs

    def _leased_until(self, sent: float) -> float:
        # The database counts a lease from its own clock when the statement runs, which is
        # after it was sent however late the answer comes: counted from the sending, by this
        # host's monotonic clock, the lease ends no later than the database's. (Wall clocks
        # of different hosts are never compared.)
        return sent + self.lease * (1 - LEASE_MARGIN)

    def _release_unknown_takes(self) -> None:
        # Only this loop claims, so every take leased to this worker's id is held by now,
        # unless a claim committed but its answer was lost with the connection (it may be a
        # second take of a job whose first this worker still holds). Those would
        # otherwise wait for their lease to run out (forever, if every worker is a burst
        # worker that has exited).
        with self._held_lock:
            known = list(self._held)
        released = self.app.store.release_unknown_takes(self.id, known)
        if released:
            logger.warning("gave back %d job(s) taken by a claim whose answer was lost", released)

    def _run_jobs(self) -> None:
        if self._batches is not None:
            self._batches.run()
            return
        while (job := self._to_run.get()) is not None:
            if self._to_run.empty():
                self._taken.set()
            if self._may_start(job):
                self._run_job(job)

    def _stop_job_threads(self, threads: Sequence[threading.Thread]) -> None:
        # Jobs still in the queue have not started: they stay held, to be given back. The
        # running ones finish, and hand their outcomes to the recorder.
        while True:
            try:
                self._to_run.get_nowait()
            except Empty:
                break
        for _ in threads:
            self._to_run.put(None)
        for thread in threads:
            thread.join()

    def _may_start(self, job: Job) -> bool:
        """Whether a job from the buffer is still this worker's to start; if not, it is given
        back, a write fenced by its take: it changes nothing if another worker has the job."""
        # A claim whose answer came back late (after a network cut), or a job that waited in
        # the buffer while its renewals failed, may have been taken and run by another worker
        # meanwhile: its outcome would be fenced off, but not what the task did.
        take = take_of(job)
        with self._held_lock:
            leased_until = self._held.get(take, 0.0)
        if lease_clock() < leased_until:
            return True
        logger.warning(
            "job not started task=%s id=%s attempt=%d: its lease may have run out (its claim "
            "or renewal answered late, or not at all), or it was revoked; given back, unless "
            "another worker has it",
            job.task_name,
            job.id,
            job.attempts,
        )
        self._forget([take])
        self._free_slots(1)
        # Back to the queue now, not after its lease: a lease run out is not a worker lost.
        self._release([take])
        return False

    def _run_job(self, job: Job) -> None:
        self._prefetch.started()
        started = time.monotonic()
        try:
            task = self.app.tasks.get(job.task_name)
            with self.app.around_job():
                outcome = execute(
                    task,
                    job,
                    limits=self._revocations.limits_for(take_of(job)),
                    run_coroutine=self._run_coroutine,
                )
            now = time.monotonic()
            self._recorder.put(Finished(job, outcome, now - started, now))
            self._prefetch.ran(now - started)
        except BaseException:
            # Nothing may die silently in a pool thread; the job comes back through its lease.
            logger.exception(
                "job crashed the worker's bookkeeping id=%s; it will run again", job.id
            )
            self._forget([take_of(job)])
        finally:
            self._free_slots(1)

    def _free_slots(self, count: int) -> None:
        # Jobs whose task has returned (or that will never start): their threads are free.
        # They stay held until the recorder has written them, or until they are given back.
        with self._held_lock:
            self._unfinished -= count
        self._wakeup.set()

    def _forget(self, takes: Iterable[Take]) -> None:
        # Takes this worker gives up on without a write: they come back through their lease.
        with self._held_lock:
            for take in takes:
                self._held.pop(take, None)

    def _recorded(self, batch: Sequence[Finished]) -> None:
        # Called by the recorder once a batch is written (or given up): the jobs are no
        # longer this worker's to renew or give back.
        if self._metrics is not None:
            self._metrics.recorded(batch)
        retried = False
        with self._held_lock:
            for finished in batch:
                self._held.pop(take_of(finished.job), None)
                retried = retried or finished.outcome.again
        behind = self._recorder_behind.is_set()
        self._recorder_behind.clear()
        if retried or self.options.burst or behind:
            # A retry or requeue may be due at once; burst mode counts held jobs; a loop that
            # stopped claiming for the recorder may go on.
            self._wakeup.set()

    def _run_coroutine(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        # async def tasks share one event loop, so up to --concurrency of them run at once
        # there; the job's thread waits for its own, and cancels it if it is interrupted
        # (by a time limit).
        future = asyncio.run_coroutine_threadsafe(coroutine, self._event_loop)
        try:
            while True:
                try:
                    # Short waits: a time limit, raised into this thread, lands between them.
                    return future.result(timeout=COROUTINE_WAIT)
                except TimeoutError:
                    continue
        except BaseException:
            future.cancel()
            raise

    def _held_takes(self) -> list[Take]:
        with self._held_lock:
            return list(self._held)

    def _renew_leases(self, finished: threading.Event) -> None:
        # The worker's heartbeat rides along: it too must go on while the claim loop waits.
        lost: set[Take] = set()
        unrenewed: set[Take] = set()
        outage = Outage(logger, "lease renewals")
        while not finished.wait(min(self.lease / 3, HEARTBEAT_INTERVAL)):
            with self._held_lock:
                takes = list(self._held)
                running = self._unfinished - self._to_run.qsize()
            self._heartbeat.beat(max(0, running))
            sent = lease_clock()
            try:
                renewed = self.app.store.extend_leases(takes, self.lease)
            except DatabaseError as exc:
                outage.failed(exc)
                continue
            if takes:  # (no takes, no statement)
                outage.answered()
            leased_until = self._leased_until(sent)
            with self._held_lock:
                # A job recorded meanwhile is not renewed either; only a held one is lost,
                # and if it waits in the buffer, it must not start. One whose outcome
                # committed just before this renewal is not yet dropped by the recorder: it
                # is said lost only if it is still held, and not renewed, one pass later.
                not_renewed = {take for take in takes if take not in renewed and take in self._held}
                newly_lost = (not_renewed & unrenewed) - lost
                unrenewed = not_renewed
                for take in takes:
                    if take in self._held:
                        self._held[take] = leased_until if take in renewed else 0.0
            for job_id, attempt in newly_lost:
                logger.warning(
                    "job id=%s attempt=%d lost its lease; another worker may run it, or it was revoked",
                    job_id,
                    attempt,
                )
            lost |= newly_lost

    def _release(self, takes: Sequence[Take]) -> None:
        if not takes:
            return
        try:
            released = self.app.store.release_jobs(takes)
        except DatabaseError as exc:
            logger.warning(
                "could not give back %d job(s); they run after their lease: %s", len(takes), exc
            )
            return
        logger.info("gave back %d job(s) taken but not started", released)
