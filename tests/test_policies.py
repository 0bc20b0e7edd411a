"""Poll schedule, retry backoff and configuration values (pure, no network)."""

from __future__ import annotations

import random

import pytest

from fastrouter_async import InvalidRequestError, PollPolicy, RetryPolicy, Timeouts
from fastrouter_async._config import DEFAULT_RETRY_POLICY
from fastrouter_async._retry import retry_delay
from fastrouter_async._schedule import jittered, learned_delay, poll_delay


def test_fixed_schedule_without_learning() -> None:
    """Without learning: first poll after 1 s, then 4.5 s growing by 1.5x, capped at 30 s."""
    policy = PollPolicy(learn=False)
    delays = [policy.base_delay(n) for n in range(8)]
    assert delays == pytest.approx([1.0, 4.5, 6.75, 10.125, 15.1875, 22.78125, 30.0, 30.0])


def test_poll_jitter_only_shortens() -> None:
    """Jitter shortens a gap by at most its fraction and never lengthens it, so max_interval holds."""
    rng = random.Random(7)
    policy = PollPolicy(learn=False, jitter=0.2)
    seen = []
    for n in range(1, 12):
        base = policy.base_delay(n)
        for _ in range(50):
            delay = poll_delay(policy, n, rng)
            assert base * 0.8 <= delay <= base <= policy.max_interval
            seen.append(delay / base)
    assert min(seen) < 0.85
    assert max(seen) > 0.95


def test_one_jitter_rule_for_both_schedules() -> None:
    """Fixed and learned gaps are jittered by the same rule: even within (1 +- jitter), cut at the ceiling."""
    fixed = PollPolicy(learn=False, jitter=0.2)
    learned = PollPolicy(jitter=0.2)
    for seed in range(20):
        planned = fixed.base_delay(3)
        assert poll_delay(fixed, 3, random.Random(seed)) == jittered(planned, 0.2, planned, random.Random(seed))
        dense = learned_delay(learned, 4.6, 0.2, 100.0, random.Random(seed))  # median 100 s: dense at 100 s
        assert dense == jittered(learned.interval, 0.2, learned.max_interval, random.Random(seed))
    rng = random.Random(1)
    draws = [jittered(10.0, 0.2, 11.0, rng) for _ in range(5000)]
    assert 8.0 <= min(draws) < 8.1
    assert 10.9 < max(draws) <= 11.0  # the part above the ceiling is cut off, not piled on it
    assert jittered(10.0, 0.0, 11.0, rng) == 10.0
    assert jittered(10.0, 0.0, 9.0, rng) == 9.0


def test_fixed_policy_constructor() -> None:
    """PollPolicy.fixed(5) polls every 5 s from the first poll on, without learning or jitter."""
    policy = PollPolicy.fixed(5.0)
    assert [policy.base_delay(n) for n in range(4)] == [5.0, 5.0, 5.0, 5.0]
    assert policy.learn is False
    assert policy.jitter == 0
    assert PollPolicy.fixed(6.0, first_delay=0.0, jitter=0.25).first_delay == 0.0


def test_scaled_policy_multiplies_every_duration() -> None:
    """scaled(0.01) shrinks every delay and the duration priors by 100, and keeps the shape."""
    policy = PollPolicy().scaled(0.01)
    assert policy.first_delay == pytest.approx(0.01)
    assert policy.interval == pytest.approx(0.045)
    assert policy.max_interval == pytest.approx(0.3)
    assert policy.not_found_grace == pytest.approx(0.6)
    assert policy.duration_scale == pytest.approx(0.01)
    assert policy.multiplier == 1.5
    assert policy.learn


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
        (lambda: PollPolicy(learn=1), "learn"),  # type: ignore[arg-type]
        (lambda: PollPolicy(sparse_share=0.5), "sparse_share"),
        (lambda: PollPolicy(dense_hazard=1.0), "dense_hazard"),
        (lambda: PollPolicy(dense_hazard=-0.1), "dense_hazard"),
        (lambda: PollPolicy(duration_scale=0), "duration_scale"),
        (lambda: PollPolicy(max_interval=2.0), "interval"),
        (lambda: PollPolicy().scaled(0), "factor"),
        (lambda: PollPolicy.fixed(-1), "interval"),
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
