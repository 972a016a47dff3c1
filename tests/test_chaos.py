"""Issue 3's kill test, through the chaos script anyone can run: 8 workers drain 10,000 jobs
while workers are killed with SIGKILL at random moments."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import chaos

pytestmark = [pytest.mark.postgresql, pytest.mark.slow]


def test_random_kills_lose_no_job_and_only_killed_runs_repeat(postgres_server: str) -> None:
    report = chaos.run(
        postgres_server,
        workers=8,
        jobs_count=10_000,
        kills=8,
        cuts=0,
        concurrency=4,
        lease=3.0,
        timeout=300,
        seed=20261124,
    )

    assert report.kills == 8
    assert report.lost == []
    assert report.unexplained == []
    assert set(report.reruns.values()) <= {"its worker was killed while running it"}
