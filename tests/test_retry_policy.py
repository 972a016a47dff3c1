"""The arithmetic of retry delays (no database)."""

from __future__ import annotations

from typing import Any

import pytest

from sqlqueue import InvalidOptionError
from sqlqueue.retry import RetryPolicy, backoff_delay


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


def test_autoretry_follows_celerys_rules() -> None:
    # Given Celery's options: retry OSError except FileNotFoundError, at most once, after 7 s
    policy = RetryPolicy(
        autoretry_for=[OSError],  # type: ignore[arg-type]  # a list, as Celery's tuple() takes
        dont_autoretry_for=(FileNotFoundError,),
        retry_kwargs={"max_retries": 1, "countdown": 7},
        max_retries=10,
    )
    assert policy.autoretries(ConnectionError("refused"), retries=0)  # an OSError
    assert not policy.autoretries(FileNotFoundError("gone"), retries=0)
    assert not policy.autoretries(ValueError("bad"), retries=0)
    assert not policy.autoretries(ConnectionError("refused"), retries=1)  # retry_kwargs' limit
    assert policy.delay(0) == 7


def test_backoff_wins_over_retry_kwargs_countdown_and_jitter_can_be_off() -> None:
    policy = RetryPolicy(retry_backoff=3, retry_jitter=False, retry_kwargs={"countdown": 7})
    assert [policy.delay(n) for n in range(3)] == [3, 6, 12]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"autoretry_for": OSError}, "tuple of exception classes"),
        ({"dont_autoretry_for": ("OSError",)}, "tuple of exception classes"),
        ({"retry_kwargs": {"eta": 1}}, "retry_kwargs takes max_retries and countdown"),
        ({"max_retries": -1}, "max_retries must be"),
        ({"retry_backoff": -2}, "retry_backoff"),
    ],
)
def test_a_malformed_retry_option_is_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        RetryPolicy(**options)
