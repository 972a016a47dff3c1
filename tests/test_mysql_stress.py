"""Issue 17's stress test, through the stress script anyone can run
(``benchmarks/mysql_stress.py``, which runs 100,000 jobs by default; docs/benchmarks.md has
its figures): 16 claimers in 4 worker processes and 4 sender processes share a MariaDB
database while a worker is killed with SIGKILL and another frozen past its lease."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import mysql_stress

pytestmark = [pytest.mark.mysql, pytest.mark.slow]


def test_each_job_runs_once_under_claimers_senders_and_rescues(mysql_url: str) -> None:
    report = mysql_stress.run(
        mysql_url, jobs_count=20_000, kills=2, freezes=1, timeout=600, seed=20261206
    )
    report.print()

    assert report.kills == 2 and report.freezes == 1
    assert report.lost == []
    assert report.unexplained == []
    assert report.rescued > 0  # the rescue chore re-queued the disturbed workers' jobs
    assert report.deadlock_share < mysql_stress.MAX_DEADLOCK_SHARE, report.conflicts
