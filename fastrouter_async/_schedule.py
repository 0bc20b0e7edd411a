"""The poll schedules: when to poll a running job, from a lognormal estimate of its duration or on fixed gaps.

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

One jitter rule serves both schedules (:func:`jittered`): a gap is drawn evenly
within ``(1 +- jitter)`` times its length, but never past its ceiling (the
start of the dense phase for a sparse gap, ``max_interval`` for every other
one; on the fixed schedule, the planned gap itself). Far from the ceiling
the mean gap is the gap itself; a gap at its ceiling is only shortened.

Pure and synchronous: a ``random.Random`` is passed in, so tests can seed it.
"""

from __future__ import annotations

import math
import random
from statistics import NormalDist
from typing import Final

from ._config import PollPolicy

__all__ = ["dense_start", "jittered", "learned_delay", "poll_delay"]

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


def jittered(gap: float, jitter: float, ceiling: float, rng: random.Random) -> float:
    """``gap`` drawn evenly within ``gap * (1 +- jitter)``, the part above ``ceiling`` cut off.

    The one jitter rule of both schedules. A gap well under its ceiling keeps
    its mean (the detection delay stays what the gap promises); a gap at its
    ceiling is only shortened, by up to ``jitter`` of it, so the ceiling holds.
    """
    low = gap * (1.0 - jitter)
    high = min(gap * (1.0 + jitter), ceiling)
    if high <= low:
        return min(gap, ceiling)
    return low + (high - low) * rng.random()


def poll_delay(policy: PollPolicy, polls_done: int, rng: random.Random) -> float:
    """Seconds to wait before the next poll on the fixed (not learning) schedule, jittered.

    The gap is :meth:`PollPolicy.base_delay` and is its own ceiling in :func:`jittered`:
    a fixed schedule's gaps are promised as maxima (``PollPolicy.fixed(5.0, jitter=0.1)``
    never waits longer than 5 s), so its jitter only shortens.
    """
    base = policy.base_delay(polls_done)
    if policy.jitter and base:
        return jittered(base, policy.jitter, base, rng)
    return base


def learned_delay(policy: PollPolicy, log_mean: float, sigma: float, elapsed: float, rng: random.Random) -> float:
    """Seconds until the next poll of a job running for ``elapsed`` seconds, from its duration estimate.

    Sparse before :func:`dense_start` (one poll lands on it, none is further than
    ``max_interval`` away), every ``interval`` on average until the 99.8th percentile,
    then growing by ``multiplier`` with the lateness, up to ``max_interval``.

    Jitter is :func:`jittered`: a dense or late gap under ``max_interval`` keeps its
    mean (so the detection delay is what ``interval`` promises); a sparse gap is
    only shortened, so that it never passes the start of the dense phase or
    ``max_interval``.
    """
    opens = dense_start(policy, log_mean, sigma)
    closes = math.exp(log_mean + sigma * _z(1.0 - _LATE_SHARE))
    if elapsed + policy.interval < opens:
        delay = ceiling = min(opens - elapsed, policy.max_interval)
    elif elapsed < closes:
        delay, ceiling = policy.interval, policy.max_interval
    else:
        delay = min(max(policy.interval, (elapsed - closes) * (policy.multiplier - 1.0)), policy.max_interval)
        ceiling = policy.max_interval
    if policy.jitter and delay:
        return jittered(delay, policy.jitter, ceiling, rng)
    return min(delay, ceiling)
