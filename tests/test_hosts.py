"""Workers on two hosts share one queue, and one host is cut off from the network and back.

The hosts are network namespaces (``ip netns``), each joined to this one by a veth pair on a
subnet of its own (10.77.N.0/24); PostgreSQL listens on 127.0.0.1 only, so each host reaches it
through a TCP forwarder (``proxy.CuttableProxy``) bound to its link's address here. The cut is
``ip link set … down``: packets are dropped, not refused, so the cut-off host's connections
hang as they would on a lost network, and carry on when the link returns.

It needs root and iproute2: outside CI it skips without them, under CI=true it fails.
``make test-hosts`` runs it alone; the whole suite runs it too.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from conftest import IN_CI, TESTS_DIR, sqlqueue_command, wait_until
from proxy import CuttableProxy

from sqlqueue import SQLQueue
from sqlqueue.schema import jobs

pytestmark = [pytest.mark.postgresql, pytest.mark.slow, pytest.mark.hosts]

LEASE = 4.0
"""Seconds of the workers' leases: the cut lasts longer."""


@dataclass
class Host:
    """A network namespace with a worker in it, joined to this one by a veth pair."""

    name: str
    """Its name in the runs' log, and the queue only its worker serves."""
    namespace: str
    link: str
    """This side's end of the veth pair: down is the cut."""
    proxy: CuttableProxy
    """The forwarder to PostgreSQL, bound to this side's address on the link."""
    url: str
    """The database, as the host reaches it."""
    worker: subprocess.Popen[str] | None = None
    output: Path | None = None
    """The worker's stdout and stderr (a file: a pipe nobody reads could fill and stop it)."""

    def start_worker(self, directory: Path) -> None:
        self.output = directory / f"worker-{self.name}.log"
        with self.output.open("w") as output:
            self.worker = subprocess.Popen(
                [
                    *("ip", "netns", "exec", self.namespace),
                    *sqlqueue_command(),
                    *("worker", "-A", "tasks", "--queues", f"default,{self.name}", "-c", "2"),
                    *("--lease", str(LEASE), "--poll-interval", "0.2"),
                ],
                cwd=TESTS_DIR,
                env={
                    **os.environ,
                    "SQLQUEUE_DATABASE_URL": self.url,
                    "SQLQUEUE_TEST_HOST": self.name,
                },
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
            )

    def stop_worker(self) -> str:
        """SIGTERM the worker, wait for it, and return what it logged."""
        assert self.worker is not None and self.output is not None
        self.worker.send_signal(signal.SIGTERM)
        self.worker.wait(timeout=120)
        return self.output.read_text()

    def set_link(self, state: str) -> None:
        ip("link", "set", self.link, state)


def ip(*args: str) -> None:
    completed = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {completed.stderr.strip()}")


def free_subnets(count: int) -> list[int]:
    """Third octets N of 10.77.N.0/24 that no address of this machine is on (a run that
    crashed may have left its links behind)."""
    shown = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    free = [n for n in range(1, 255) if f" 10.77.{n}." not in shown]
    return random.sample(free, count)


def unavailable(reason: str) -> None:
    message = f"the hosts test needs {reason}: run it as root with iproute2 (make test-hosts)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def hosts(postgres_url: str) -> Iterator[list[Host]]:
    """Two hosts, ``a`` and ``b``, on the session's database (jobs table emptied); every
    namespace, link, forwarder and worker is removed afterwards, whatever happened."""
    if os.geteuid() != 0:
        unavailable("root (it creates network namespaces)")
    if shutil.which("ip") is None:
        unavailable("the `ip` command (iproute2)")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("TRUNCATE sqlqueue_jobs, sqlqueue_workers")
    database = sa.make_url(postgres_url)
    run = uuid.uuid4().hex[:6]
    made: list[Host] = []
    cleanups: list[list[str]] = []
    try:
        for name, subnet in zip("ab", free_subnets(2), strict=True):
            namespace, link, peer = f"sqlqueue-{run}-{name}", f"sq{run}{name}0", f"sq{run}{name}1"
            gateway, address = f"10.77.{subnet}.1", f"10.77.{subnet}.2"
            try:
                ip("netns", "add", namespace)
            except RuntimeError as exc:
                unavailable(f"`ip netns` ({exc})")
            cleanups.append(["netns", "del", namespace])
            ip("link", "add", link, "type", "veth", "peer", "name", peer)
            cleanups.append(["link", "del", link])
            ip("link", "set", peer, "netns", namespace)
            ip("addr", "add", f"{gateway}/24", "dev", link)
            ip("link", "set", link, "up")
            for args in (
                ("addr", "add", f"{address}/24", "dev", peer),
                ("link", "set", peer, "up"),
                ("link", "set", "lo", "up"),
            ):
                ip("netns", "exec", namespace, "ip", *args)
            proxy = CuttableProxy(database.host or "127.0.0.1", database.port or 5432, gateway)
            url = database.set(host=gateway, port=proxy.port)
            made.append(
                Host(name, namespace, link, proxy, url.render_as_string(hide_password=False))
            )
        yield made
    finally:
        for host in made:
            if host.worker is not None and host.worker.poll() is None:
                host.worker.kill()
                host.worker.wait()
            host.proxy.close()
        for args in reversed(cleanups):
            subprocess.run(["ip", *args], capture_output=True, check=False)


def test_a_host_cut_off_and_back_loses_no_job_runs_none_late_and_works_again(
    hosts: list[Host], postgres_url: str, tmp_path: Path
) -> None:
    a, b = hosts
    app = SQLQueue(postgres_url)
    log = tmp_path / "runs.log"
    for host in hosts:
        host.start_worker(tmp_path)
    assert a.worker is not None and b.worker is not None

    def send(count: int, queue: str) -> list[str]:
        with app.engine.begin() as conn, app.using(conn):
            return [
                app.send_task("tasks.run_on_host", args=[str(log), 0.3], queue=queue).id
                for _ in range(count)
            ]

    def statuses(ids: list[str]) -> set[str]:
        with app.engine.connect() as conn:
            found = conn.execute(sa.select(jobs.c.status).where(jobs.c.id.in_(ids))).scalars()
            return set(found)

    def running_on(host: Host) -> bool:
        assert host.worker is not None
        with app.engine.connect() as conn:
            return bool(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(jobs)
                    .where(jobs.c.status == "STARTED")
                    .where(jobs.c.worker_id.like(f"%:{host.worker.pid}:%"))
                ).scalar_one()
            )

    try:
        # Given workers on two hosts sharing the queue,
        first = send(40, "default")
        # when one host is cut off while it runs jobs,
        wait_until(lambda: running_on(a), 60, "host a to run a job")
        cut_at = time.monotonic()
        a.set_link("down")
        # for longer than the lease, until the other host has finished every job,
        wait_until(lambda: statuses(first) == {"SUCCESS"}, 120, "host b to finish the jobs")
        wait_until(lambda: time.monotonic() > cut_at + 2 * LEASE, 10, "two leases")
        # and its link comes back,
        a.set_link("up")
        back_at = time.monotonic()
        # I expect it to run jobs again (these only it serves);
        again = send(4, a.name)
        wait_until(lambda: statuses(again) == {"SUCCESS"}, 120, "host a to run jobs again")
    finally:
        a.set_link("up")
        outputs = {host.name: host.stop_worker() for host in hosts}
    assert [a.worker.returncode, b.worker.returncode] == [0, 0], outputs

    runs: dict[str, list[tuple[int, str, float]]] = defaultdict(list)
    for line in log.read_text().splitlines():
        job_id, attempt, host_name, started = line.split()
        runs[job_id].append((int(attempt), host_name, float(started)))
    with app.engine.connect() as conn:
        rows = conn.execute(
            sa.select(jobs.c.id, jobs.c.status, jobs.c.attempts, jobs.c.result)
        ).all()
    app.engine.dispose()
    # none lost: every job succeeded, and ran;
    assert len(rows) == len(first) + len(again)
    assert {row.status for row in rows} == {"SUCCESS"}, rows
    assert set(runs) == {str(row.id) for row in rows}
    for row in rows:
        job_runs = sorted(runs[str(row.id)])
        # the outcome kept is the last take's: a late write of the cut-off host was fenced;
        host_name, attempt = row.result.split(":")
        assert int(attempt) == row.attempts and (row.attempts, host_name) in {
            (run_attempt, run_host) for run_attempt, run_host, _ in job_runs
        }, (row, job_runs)
        # no take started once a later take of its job had (its lease had run out);
        for (_, _, started), (_, _, later_started) in pairwise(job_runs):
            assert started < later_started, (row, job_runs)
        # and a job sent before the cut ran more than once only where a take of the cut-off
        # host, started while its lease could still hold, was cut off mid-run. (Not asserted
        # of the jobs sent after: a connection the cut left in TCP's backoff may answer a
        # run's renewals late enough for its lease to run out, and the job to run again.)
        for run_attempt, run_host, started in job_runs if str(row.id) in first else []:
            if run_attempt != row.attempts:
                assert run_host == a.name and started < cut_at + LEASE, (row, job_runs, cut_at)
    # The jobs sent after the link came back ran there, after it came back.
    assert all(
        run_host == a.name and started > back_at
        for job_id in again
        for _, run_host, started in runs[job_id]
    ), {job_id: runs[job_id] for job_id in again}
