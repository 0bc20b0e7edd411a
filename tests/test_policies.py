"""Poll schedule, retry backoff and configuration values (pure, no network)."""

from __future__ import annotations

import random

import pytest

from fastrouter_async import InvalidRequestError, PollPolicy, RetryPolicy, Timeouts
from fastrouter_async._config import DEFAULT_POLL_POLICY, DEFAULT_RETRY_POLICY
from fastrouter_async._polling import poll_delay, retry_delay


def test_default_poll_schedule() -> None:
    """Defaults: first poll after 1 s, then 2 s growing by 1.5x, capped at 15 s."""
    delays = [DEFAULT_POLL_POLICY.base_delay(n) for n in range(9)]
    assert delays == [1.0, 2.0, 3.0, 4.5, 6.75, 10.125, 15.0, 15.0, 15.0]


def test_poll_jitter_stays_in_bounds() -> None:
    """Jittered poll delays stay within +-jitter of the base delay."""
    rng = random.Random(7)
    for n in range(1, 12):
        base = DEFAULT_POLL_POLICY.base_delay(n)
        for _ in range(50):
            assert base * 0.8 <= poll_delay(DEFAULT_POLL_POLICY, n, rng) <= base * 1.2


def test_ten_minute_job_costs_few_polls() -> None:
    """With the defaults, a 10-minute job is polled about 45 times, never more than 15 s apart."""
    elapsed, polls = 0.0, 0
    while elapsed < 600:
        elapsed += DEFAULT_POLL_POLICY.base_delay(polls)
        polls += 1
    assert 40 <= polls <= 50


def test_retry_backoff_is_full_jitter_with_a_ceiling() -> None:
    """Retry delays are uniform in [0, min(max_delay, base * 2**attempt)]."""
    rng = random.Random(1)
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    assert [policy.backoff_ceiling(a) for a in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    samples = [retry_delay(policy, 3, rng, None) for _ in range(200)]
    assert all(0 <= s <= 4.0 for s in samples)
    assert max(samples) > 3.0
    assert min(samples) < 1.0


@pytest.mark.parametrize(("retry_after", "expected"), [(0.0, 0.0), (5.0, 5.0), (500.0, 120.0), (-3.0, 0.0)])
def test_retry_after_wins_but_is_capped(retry_after: float, expected: float) -> None:
    """A server's Retry-After replaces the backoff, capped at max_retry_after."""
    assert retry_delay(DEFAULT_RETRY_POLICY, 0, random.Random(0), retry_after) == expected


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (lambda: PollPolicy(first_delay=-1), "first_delay"),
        (lambda: PollPolicy(multiplier=0.5), "multiplier"),
        (lambda: PollPolicy(jitter=1.0), "jitter"),
        (lambda: PollPolicy(interval=float("nan")), "interval"),
        (lambda: RetryPolicy(max_attempts=0), "max_attempts"),
        (lambda: RetryPolicy(base_delay=-0.1), "base_delay"),
        (lambda: Timeouts(request=0), "request"),
        (lambda: Timeouts(connect=-5), "connect"),
    ],
)
def test_bad_configuration_is_named(factory: object, field: str) -> None:
    """Invalid policy values raise InvalidRequestError naming the field."""
    with pytest.raises(InvalidRequestError) as caught:
        factory()  # type: ignore[operator]
    assert caught.value.field == field
