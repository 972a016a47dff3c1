"""The arithmetic of retry delays (no database)."""

from __future__ import annotations

from sqlqueue.retry import backoff_delay
from sqlqueue.tasks import RetryPolicy


def test_backoff_doubles_per_retry_up_to_its_cap() -> None:
    delays = [backoff_delay(n, factor=2, maximum=30, jitter=False) for n in range(6)]
    assert delays == [2, 4, 8, 16, 30, 30]


def test_jitter_spreads_delays_below_the_computed_one() -> None:
    delays = {backoff_delay(3, factor=1, maximum=600) for _ in range(200)}
    assert all(0 <= delay <= 8 for delay in delays)
    assert len(delays) > 100  # not one value for every job that failed together


def test_a_policy_without_backoff_uses_the_default_delay_and_counts_retries() -> None:
    policy = RetryPolicy(max_retries=2, default_retry_delay=7)
    assert policy.delay(5) == 7
    assert (policy.exhausted(1), policy.exhausted(2)) == (False, True)
    assert RetryPolicy(max_retries=None).exhausted(10**6) is False


def test_retry_backoff_true_means_a_factor_of_one_second() -> None:
    policy = RetryPolicy(retry_backoff=True, retry_backoff_max=600)
    assert all(0 <= policy.delay(4) <= 16 for _ in range(50))


def test_backoff_never_overflows_however_many_retries() -> None:
    # 2.0**1024 is past the largest float: the doubling must stop at the cap first.
    assert backoff_delay(1024, factor=1, maximum=600, jitter=False) == 600
    assert backoff_delay(10**9, factor=0.5, maximum=30, jitter=False) == 30
    assert 0 <= RetryPolicy(retry_backoff=True, retry_backoff_max=600).delay(5000) <= 600
