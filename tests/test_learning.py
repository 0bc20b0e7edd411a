"""Learning how long jobs take, and the poll schedule built on it (pure, no network)."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from statistics import NormalDist
from typing import Any

import pytest

from fastrouter_async import InvalidRequestError, PollPolicy, VideoRequest
from fastrouter_async._estimates import DURATION_PRIORS, DurationEstimates, learned_delay
from fastrouter_async._schedule import dense_start

VEO = VideoRequest(model="google/veo3", prompt="p", length=8)


def _schedule(policy: PollPolicy, estimates: DurationEstimates, request: VideoRequest, duration: float) -> list[float]:
    """The poll times (seconds after submit) of a job that finishes after ``duration`` seconds."""
    rng = random.Random(0)
    times = [policy.first_delay]
    while times[-1] < duration:
        mean, sigma = estimates.log_normal(request.model, request)
        times.append(times[-1] + learned_delay(policy, mean, sigma, times[-1], rng))
    return times


def test_priors_by_longest_prefix() -> None:
    """Models take the prior of their longest matching prefix; unknown models the catch-all."""
    estimates = DurationEstimates()
    mean, sigma = estimates.log_normal("google/veo3-fast", None)
    assert math.exp(mean) == pytest.approx(DURATION_PRIORS["google/veo3-fast"].median)
    mean, _ = estimates.log_normal("google/veo3", VEO)
    assert math.exp(mean) == pytest.approx(DURATION_PRIORS["google/veo"].median)
    mean, sigma = estimates.log_normal("someone/new-model", None)
    assert math.exp(mean) == pytest.approx(DURATION_PRIORS[""].median)
    assert sigma == DURATION_PRIORS[""].sigma


def test_scale_applies_to_priors() -> None:
    """A duration scale of 0.01 makes every prior 100 times shorter."""
    mean, _ = DurationEstimates(scale=0.01).log_normal("kling-ai/kling-v2", None)
    assert math.exp(mean) == pytest.approx(DURATION_PRIORS["kling-ai/"].median * 0.01)


def test_observations_converge_on_the_truth() -> None:
    """After 300 jobs the estimate matches the true median within 3 % and the spread within 20 %."""
    rng = random.Random(3)
    estimates = DurationEstimates()
    for _ in range(300):
        estimates.observe("google/veo3", VEO, rng.lognormvariate(math.log(140.0), 0.2))
    mean, sigma = estimates.log_normal("google/veo3", VEO)
    assert math.exp(mean) == pytest.approx(140.0, rel=0.03)
    assert sigma == pytest.approx(0.2, rel=0.2)


def test_unseen_length_uses_the_model_estimate() -> None:
    """Jobs of a length never seen use what was learned for the model; other models keep their prior."""
    estimates = DurationEstimates()
    for _ in range(50):
        estimates.observe("google/veo3", VEO, 30.0)
    other_length = VideoRequest(model="google/veo3", prompt="p", length=4)
    assert math.exp(estimates.log_normal("google/veo3", other_length)[0]) == pytest.approx(30.0, rel=0.05)
    assert math.exp(estimates.log_normal("google/veo2", None)[0]) == pytest.approx(90.0)


def test_old_observations_fade() -> None:
    """When a provider slows down, the estimate follows within a few hundred jobs."""
    estimates = DurationEstimates()
    for _ in range(1000):
        estimates.observe("runway/runway-gen-4-turbo", None, 40.0)
    for _ in range(400):
        estimates.observe("runway/runway-gen-4-turbo", None, 80.0)
    assert math.exp(estimates.log_normal("runway/runway-gen-4-turbo", None)[0]) > 70.0


def test_nonsense_durations_are_ignored() -> None:
    """Zero, negative and non-finite durations teach nothing."""
    estimates = DurationEstimates()
    for bad in (0.0, -5.0, math.inf, math.nan):
        estimates.observe("google/veo3", VEO, bad)
    assert estimates.export()["durations"] == {}


def test_export_import_round_trip() -> None:
    """What one session exports, another imports: same estimates, JSON-ready keys and numbers."""
    source = DurationEstimates()
    for seconds in (100.0, 120.0, 140.0, 110.0):
        source.observe("google/veo3", VEO, seconds)
    data = source.export()
    assert set(data["durations"]) == {"google/veo3", "google/veo3 length=8"}
    assert data["durations"]["google/veo3 length=8"]["jobs"] == 4
    target = DurationEstimates()
    assert target.load(data) == 2
    assert target.log_normal("google/veo3", VEO) == pytest.approx(source.log_normal("google/veo3", VEO), rel=1e-5)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "durations"),
        ({"version": 2, "durations": {}}, "durations.version"),
        ({"version": 1, "durations": []}, "durations.durations"),
        ({"version": 1, "durations": {"m": 3}}, "durations['m']"),
        ({"version": 1, "durations": {"m": {"jobs": -1, "median_seconds": 5, "sigma": 0.2}}}, "durations['m'].jobs"),
        (
            {"version": 1, "durations": {"m": {"jobs": 1, "median_seconds": 0, "sigma": 0.2}}},
            "durations['m'].median_seconds",
        ),
        ({"version": 1, "durations": {"m": {"jobs": 1, "median_seconds": 5, "sigma": "x"}}}, "durations['m'].sigma"),
    ],
)
def test_bad_import_names_the_field_and_loads_nothing(data: Any, field: str) -> None:
    """Malformed exported data raises InvalidRequestError naming the field; nothing is loaded."""
    estimates = DurationEstimates()
    good = {"ok": {"jobs": 3, "median_seconds": 10, "sigma": 0.1}}
    if isinstance(data, dict) and isinstance(data.get("durations"), dict):
        data = {**data, "durations": {**good, **data["durations"]}}
    with pytest.raises(InvalidRequestError) as caught:
        estimates.load(data)
    assert caught.value.field == field
    assert estimates.export()["durations"] == {}


def test_learned_schedule_is_sparse_then_dense() -> None:
    """Before the dense start polls are sparse (capped) and land on it; from it every `interval`."""
    policy = PollPolicy(jitter=0.0)
    mean, sigma = math.log(300.0), 0.2
    rng = random.Random(0)
    opens = dense_start(policy, mean, sigma)
    assert 300.0 * math.exp(sigma * NormalDist().inv_cdf(0.01)) < opens < 300.0  # after the 1st percentile
    assert learned_delay(policy, mean, sigma, 1.0, rng) == policy.max_interval  # far away: the cap
    assert learned_delay(policy, mean, sigma, opens - 10.0, rng) == pytest.approx(10.0)  # lands on the start
    assert learned_delay(policy, mean, sigma, opens, rng) == policy.interval
    assert learned_delay(policy, mean, sigma, 300.0, rng) == policy.interval
    late = learned_delay(policy, mean, sigma, 2000.0, rng)
    assert late == policy.max_interval  # far past the 99.8th percentile: spaced out again, capped


def _ends_within(mean: float, sigma: float, elapsed: float, gap: float) -> float:
    """The lognormal chance that a job still running after ``elapsed`` seconds ends within ``gap``."""
    normal = NormalDist(mean, sigma)
    alive = 1.0 - normal.cdf(math.log(elapsed))
    return 1.0 - (1.0 - normal.cdf(math.log(elapsed + gap))) / alive


@pytest.mark.parametrize(("median", "sigma"), [(52.0, 0.2), (150.0, 0.22), (320.0, 0.22), (300.0, 0.5)])
def test_dense_polling_starts_where_the_hazard_crosses_the_threshold(median: float, sigma: float) -> None:
    """Dense polling starts when the chance of ending within one gap reaches dense_hazard, or one gap
    after the sparse_share quantile if that comes first."""
    policy = PollPolicy()
    mean = math.log(median)
    opens = dense_start(policy, mean, sigma)
    cap = median * math.exp(sigma * NormalDist().inv_cdf(policy.sparse_share)) + policy.interval
    assert opens <= cap + 1e-6
    if opens < cap - 1e-6:  # the hazard decided: it crosses the threshold right there
        assert _ends_within(mean, sigma, opens, policy.interval) == pytest.approx(policy.dense_hazard, abs=1e-4)
    assert _ends_within(mean, sigma, opens * 0.97, policy.interval) < policy.dense_hazard


def test_one_hazard_threshold_keeps_long_jobs_sparse_longer() -> None:
    """At the same spread, a 5-minute job starts dense polling at a later quantile than a 1-minute one."""
    policy = PollPolicy(sparse_share=0.3)  # the quantile cap out of the way
    short = dense_start(policy, math.log(60.0), 0.2) / 60.0
    long = dense_start(policy, math.log(300.0), 0.2) / 300.0
    assert long > short


def test_no_poll_before_the_dense_start_but_the_first_and_the_sparse_ones() -> None:
    """Before the dense start a job gets the 1 s poll and one poll per max_interval, no more."""
    policy = PollPolicy()
    mean, sigma = math.log(200.0), 0.2
    opens = dense_start(policy, mean, sigma)
    for seed in range(50):
        rng = random.Random(seed)
        times = [policy.first_delay]
        while times[-1] < opens + 60:
            times.append(times[-1] + learned_delay(policy, mean, sigma, times[-1], rng))
        before = [t for t in times if t < opens - policy.interval]
        # the first poll, then gaps of at least (1 - jitter) * max_interval
        allowed = 1 + math.floor((opens - policy.interval - policy.first_delay) / ((1 - policy.jitter) * 30.0))
        assert len(before) <= allowed
        dense = [b - a for a, b in itertools.pairwise(t for t in times if t >= opens - 1e-9)]
        assert dense
        assert all(abs(gap - policy.interval) <= policy.interval * policy.jitter + 1e-9 for gap in dense)


def test_mean_dense_gap_is_the_interval() -> None:
    """The jitter of a dense gap is symmetric: over many draws the mean gap is `interval` within 0.5 %."""
    policy = PollPolicy()
    mean, sigma = math.log(100.0), 0.2
    rng = random.Random(7)
    gaps = [learned_delay(policy, mean, sigma, 100.0, rng) for _ in range(20_000)]
    assert sum(gaps) / len(gaps) == pytest.approx(policy.interval, rel=0.005)
    assert min(gaps) < policy.interval < max(gaps)  # spread out, so jobs submitted together drift apart
    assert max(gaps) <= policy.interval * (1 + policy.jitter)


def test_sparse_and_capped_gaps_are_only_shortened() -> None:
    """Jitter never lengthens a sparse gap or a capped one: the cap holds and no sparse poll passes the dense start."""
    policy = PollPolicy(jitter=0.2)
    mean, sigma = math.log(300.0), 0.2
    opens = dense_start(policy, mean, sigma)
    rng = random.Random(3)
    for _ in range(2000):
        sparse = learned_delay(policy, mean, sigma, opens - 20.0, rng)
        assert 0.8 * 20.0 - 1e-9 <= sparse <= 20.0
        assert 0.8 * policy.max_interval <= learned_delay(policy, mean, sigma, 5000.0, rng) <= policy.max_interval


def test_late_gaps_under_the_cap_keep_their_mean() -> None:
    """A late gap under max_interval is jittered like a dense one, by the same rule: its mean is the gap."""
    policy = PollPolicy(jitter=0.2)
    mean, sigma = math.log(100.0), 0.2
    closes = 100.0 * math.exp(sigma * NormalDist().inv_cdf(0.998))
    elapsed = closes + 20.0  # 20 s late: a gap of 20 * (multiplier - 1) = 10 s, under the cap
    rng = random.Random(4)
    gaps = [learned_delay(policy, mean, sigma, elapsed, rng) for _ in range(20_000)]
    assert sum(gaps) / len(gaps) == pytest.approx(10.0, rel=0.01)
    assert 8.0 - 1e-9 <= min(gaps) < 10.0 < max(gaps) <= 12.0 + 1e-9


@pytest.mark.parametrize("sigma", [0.15, 0.25])
def test_spread_estimate_is_the_jobs_own_after_a_few_dozen(sigma: float) -> None:
    """After 25 jobs the learned spread is the jobs' own (within 3 %), not widened by the wide prior."""
    for seed in range(20):
        rng = random.Random(seed)
        seen = [rng.lognormvariate(math.log(220.0), sigma) for _ in range(25)]
        estimates = DurationEstimates()
        for seconds in seen:
            estimates.observe("kling-ai/kling-v2-1", None, seconds)
        _, learned = estimates.log_normal("kling-ai/kling-v2-1", None)
        own = statistics.stdev(math.log(s) for s in seen)
        assert learned == pytest.approx(own, rel=0.03)


def test_spread_estimate_converges_to_the_true_sigma() -> None:
    """Given many jobs the learned spread converges to the true sigma (within 5 %)."""
    rng = random.Random(11)
    estimates = DurationEstimates()
    for _ in range(2000):
        estimates.observe("minimax/hailuo", None, rng.lognormvariate(math.log(150.0), 0.22))
    mean, sigma = estimates.log_normal("minimax/hailuo", None)
    assert sigma == pytest.approx(0.22, rel=0.05)
    assert math.exp(mean) == pytest.approx(150.0, rel=0.03)


def test_first_jobs_lean_on_the_prior() -> None:
    """One or two jobs far from the prior move the estimate, but the spread stays wide until more are seen."""
    estimates = DurationEstimates()
    estimates.observe("kling-ai/kling-v2-1", None, 60.0)
    estimates.observe("kling-ai/kling-v2-1", None, 61.0)
    mean, sigma = estimates.log_normal("kling-ai/kling-v2-1", None)
    assert 60.0 < math.exp(mean) < DURATION_PRIORS["kling-ai/"].median
    assert sigma > DURATION_PRIORS["kling-ai/"].sigma  # the prior and the jobs disagree: unsure


def test_no_gap_exceeds_the_cap() -> None:
    """Whatever the estimate and the elapsed time, a gap is never longer than max_interval."""
    policy = PollPolicy()
    rng = random.Random(5)
    for _ in range(2000):
        mean = rng.uniform(-2, 12)
        sigma = rng.uniform(0.05, 2.0)
        elapsed = rng.uniform(0, 5000)
        assert 0 <= learned_delay(policy, mean, sigma, elapsed, rng) <= policy.max_interval


def test_learned_polling_costs_fewer_polls_than_fixed_five_seconds() -> None:
    """With an estimate close to the truth, a 300 s job is polled less than half as often as every 5 s."""
    policy = PollPolicy(jitter=0.0)
    estimates = DurationEstimates()
    request = VideoRequest(model="kling-ai/kling-v2", prompt="p", length=5)
    for _ in range(100):
        estimates.observe(request.model, request, 300.0)
    polls = _schedule(policy, estimates, request, 300.0)
    assert len(polls) < (300 / 5) / 2
    assert polls[-1] - 300.0 <= policy.interval  # found within one dense gap


def test_cold_priors_still_poll_within_the_cap() -> None:
    """A model with no history is polled from its prior, never more than max_interval apart."""
    policy = PollPolicy(jitter=0.0)
    request = VideoRequest(model="kling-ai/kling-v2", prompt="p", length=5)
    polls = _schedule(policy, DurationEstimates(), request, 200.0)
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert max(gaps) <= policy.max_interval
    assert polls[-1] - 200.0 <= policy.interval
