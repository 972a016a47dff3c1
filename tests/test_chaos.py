"""Issue 3's kill test, through the chaos script anyone can run: 8 workers drain 10,000 jobs
while workers are killed with SIGKILL at random moments; on PostgreSQL and on MariaDB
(issue 17)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import chaos

pytestmark = pytest.mark.slow


@pytest.fixture(
    params=[
        pytest.param("postgres_server", marks=pytest.mark.postgresql, id="postgresql"),
        pytest.param("mysql_url", marks=pytest.mark.mysql, id="mysql"),
    ]
)
def server(request: pytest.FixtureRequest) -> str:
    """A URL on the server the run makes its own database on."""
    url: str = request.getfixturevalue(request.param)
    return url


def test_random_kills_lose_no_job_and_only_killed_runs_repeat(server: str) -> None:
    report = chaos.run(
        server,
        workers=8,
        jobs_count=10_000,
        kills=8,
        cuts=0,
        concurrency=4,
        # Long enough that a database slowed by the suite before (2 cores, 8 workers) answers
        # renewals within it: the kills are what is tested, not a server's stalls.
        lease=10.0,
        timeout=300,
        seed=20261124,
    )

    assert report.kills == 8
    assert report.lost == []
    # Not even a lease the worker lost and said so: with 10 s leases, that would be a
    # defect (a renewal that did not extend, a rescue of a live lease), not the server.
    assert set(report.reruns.values()) <= {"its worker was killed while running it"}, report.said[
        :20
    ]
