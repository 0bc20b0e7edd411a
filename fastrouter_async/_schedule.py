"""The learned poll schedule: when to poll a running job, given a lognormal estimate of its duration.

Three phases. While the job is unlikely to end soon, polls are sparse (one every
``max_interval`` at most, one landing where the dense phase starts). The dense
phase starts when the estimated chance that the job ends within the next
``interval``, given that it is still running (the *hazard* over one gap), reaches
``policy.dense_hazard``, and at the latest one gap after the estimated
``policy.sparse_share`` quantile. Then a poll every ``interval`` on average until
the estimated 99.8th percentile; past it, gaps grow with the lateness.

Why a hazard threshold: a poll is worth sending when the job is likely to have
ended since the last one. Spending the polls where the chance of an end per
poll is highest gives the fewest polls for a given share of late detections, and
one threshold shared by every kind of job lets long jobs (whose ends are spread
over more seconds) stay sparse a little longer than short ones.

Pure and synchronous: a ``random.Random`` is passed in, so tests can seed it.
"""

from __future__ import annotations

import math
import random
from statistics import NormalDist
from typing import Final

from ._config import PollPolicy

__all__ = ["dense_start", "learned_delay"]

_LATE_SHARE: Final = 0.002
# Past the estimated 99.8th percentile a job is "late": its polls space out again (up to the cap).
# Late, not merely slow: spacing polls out earlier costs late detections that count against the
# 95th percentile, for a saving of a poll or two per hundred jobs.
_Z_LOW: Final = -8.0
_Z_STEP: Final = 0.25
_CACHE_SIZE: Final = 4096
# dense_start() is asked at every poll; the estimates it depends on change only when a job ends.

_NORMAL = NormalDist()
_Z_CACHE: dict[float, float] = {}
_START_CACHE: dict[tuple[float, float, float, float, float], float] = {}


def _z(share: float) -> float:
    z = _Z_CACHE.get(share)
    if z is None:
        z = _Z_CACHE[share] = _NORMAL.inv_cdf(min(max(share, 1e-9), 1 - 1e-9))
    return z


def _survival(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _ends_within(log_mean: float, sigma: float, z: float, gap: float) -> float:
    """Chance that a job still running at the ``z`` point of its estimate ends within ``gap`` seconds."""
    alive = _survival(z)
    if alive <= 0.0:
        return 1.0
    later = math.log(math.exp(log_mean + sigma * z) + gap)
    return 1.0 - _survival((later - log_mean) / sigma) / alive


def _hazard_start(log_mean: float, sigma: float, gap: float, hazard: float) -> float:
    """Seconds after submit when the chance of ending within the next ``gap`` first reaches ``hazard``."""
    z = _Z_LOW
    if _ends_within(log_mean, sigma, z, gap) >= hazard:
        return 0.0
    while z < -_Z_LOW:
        upper = z + _Z_STEP
        if _ends_within(log_mean, sigma, upper, gap) >= hazard:
            for _ in range(20):  # bisection within the step: 0.25 / 2**20 of a sigma
                middle = (z + upper) / 2
                if _ends_within(log_mean, sigma, middle, gap) >= hazard:
                    upper = middle
                else:
                    z = middle
            return math.exp(log_mean + sigma * upper)
        z = upper
    return math.inf


def dense_start(policy: PollPolicy, log_mean: float, sigma: float) -> float:
    """Seconds after submit at which polling becomes dense (every ``interval``) for this estimate.

    The earlier of: the hazard over one gap reaching ``policy.dense_hazard``, and one
    gap after the estimated ``policy.sparse_share`` quantile. ``0``: dense from the start.
    """
    if policy.sparse_share <= 0:
        return 0.0
    key = (policy.interval, policy.dense_hazard, policy.sparse_share, log_mean, sigma)
    start = _START_CACHE.get(key)
    if start is None:
        start = math.exp(log_mean + sigma * _z(policy.sparse_share)) + policy.interval
        if policy.dense_hazard > 0 and policy.interval > 0:
            start = min(start, _hazard_start(log_mean, sigma, policy.interval, policy.dense_hazard))
        if len(_START_CACHE) >= _CACHE_SIZE:
            _START_CACHE.clear()
        _START_CACHE[key] = start
    return start


def learned_delay(policy: PollPolicy, log_mean: float, sigma: float, elapsed: float, rng: random.Random) -> float:
    """Seconds until the next poll of a job running for ``elapsed`` seconds, from its duration estimate.

    Sparse before :func:`dense_start` (one poll lands on it, none is further than
    ``max_interval`` away), every ``interval`` on average until the 99.8th percentile,
    then growing by ``multiplier`` with the lateness, up to ``max_interval``.

    Jitter: a dense gap is drawn evenly within ``interval * (1 +- jitter)`` (its mean
    is ``interval``, so the detection delay is what ``interval`` promises); a sparse or
    late gap is only shortened, by up to ``jitter`` of it, so that it never passes the
    start of the dense phase or ``max_interval``.
    """
    opens = dense_start(policy, log_mean, sigma)
    closes = math.exp(log_mean + sigma * _z(1.0 - _LATE_SHARE))
    jitter = policy.jitter
    if elapsed + policy.interval < opens:
        delay = min(opens - elapsed, policy.max_interval)
    elif elapsed < closes:
        delay = policy.interval
        if jitter:
            delay *= 1.0 + jitter * (2.0 * rng.random() - 1.0)
        return min(delay, policy.max_interval)
    else:
        delay = min(max(policy.interval, (elapsed - closes) * (policy.multiplier - 1.0)), policy.max_interval)
    if jitter and delay:
        delay *= 1.0 - jitter * rng.random()
    return delay
