"""How long jobs take: priors per model, learning from finished jobs, and the poll schedule built on it.

Durations are modelled as lognormal: ``log(seconds)`` has a mean and a standard
deviation per *key*, the model plus the requested video length when there is
one (``"kling-ai/kling-v2 length=10"``). Each key starts from the prior of its
model family, weighted like ``_PRIOR_WEIGHT`` observed jobs, and every job seen
to finish moves the estimate: after a few dozen jobs the data dominate. Old
observations fade (at most ``_MEMORY`` count), so a provider that gets slower
is followed.

Everything here is pure and synchronous; the session owns one
:class:`DurationEstimates` and the poll scheduler asks it for each next delay.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ._errors import InvalidRequestError
from ._models import VideoRequest
from ._schedule import learned_delay

__all__ = ["DURATION_PRIORS", "DurationEstimates", "DurationPrior", "learned_delay"]

EXPORT_VERSION: Final = 1


@attrs.frozen
class DurationPrior:
    """What a model family is expected to take before any job was seen: a median and a spread."""

    median: float
    """Seconds (real time) for a typical job of the family."""
    sigma: float
    """Standard deviation of ``log(seconds)``: 0.5 means a 90 % range of about x0.44 to x2.3."""


DURATION_PRIORS: Final[Mapping[str, DurationPrior]] = {
    # By model-id prefix; the longest matching prefix wins. The medians come from what users report
    # (Kling image-to-video "3-8 minutes", Sora "about 3-10 minutes", FastRouter's own "minutes"),
    # rounded, for a typical 5-8 s clip. The spread is wide on purpose: the prior only has to be
    # roughly right, the first finished jobs correct it.
    "google/veo": DurationPrior(median=90.0, sigma=0.5),
    "google/veo3-fast": DurationPrior(median=60.0, sigma=0.5),
    "google/veo3.1-fast": DurationPrior(median=60.0, sigma=0.5),
    "google/veo3.1-lite": DurationPrior(median=60.0, sigma=0.5),
    "openai/sora": DurationPrior(median=330.0, sigma=0.5),
    "kling-ai/": DurationPrior(median=300.0, sigma=0.5),
    "bytedance/": DurationPrior(median=75.0, sigma=0.5),
    "minimax/": DurationPrior(median=180.0, sigma=0.5),
    "runway/": DurationPrior(median=45.0, sigma=0.5),
    "": DurationPrior(median=180.0, sigma=0.7),  # any other model: three minutes, give or take a lot
}

_PRIOR_WEIGHT = 2.0
# The prior counts like two finished jobs while none was seen ...
_PRIOR_FADE = 5.0
# ... and fades as jobs are seen: e^(-jobs / 5) of that, so a third of it after five jobs and
# nothing measurable after twenty-five. The spread learned from the jobs is then their own:
# a prior that kept its weight would widen it for good (by 10-35 % after 25 jobs, since the prior
# is wide and its median off), and a wider spread means dense polling starting too early.
_MEMORY = 200.0
# At most this many observations count: older ones fade, so a provider that slows down is followed
# within a few hundred jobs.
_MIN_SIGMA = 0.05
# Durations are never treated as more certain than +-5 %: queues vary even for identical requests.
_MAX_SIGMA = 2.0


@attrs.define
class _Estimate:
    """A prior and the running weighted mean and variance of the observed ``log(seconds)``, pooled."""

    prior_mean: float
    prior_var: float
    jobs: float = 0.0
    """Observations counted (at most ``_MEMORY``: older ones fade)."""
    data_mean: float = 0.0
    data_var: float = 0.0
    """The observations' own variance (weighted, unbiased once two were seen)."""

    def add(self, log_seconds: float) -> None:
        self.jobs = min(self.jobs + 1.0, _MEMORY)
        share = 1.0 / self.jobs
        delta = log_seconds - self.data_mean
        self.data_mean += share * delta
        if self.jobs >= 2:
            # Welford's update on the unbiased variance (with fading once jobs is capped).
            self.data_var += (delta * (log_seconds - self.data_mean) - self.data_var) / (self.jobs - 1.0)
        else:
            self.data_var = 0.0

    @property
    def mean(self) -> float:
        prior = _PRIOR_WEIGHT * math.exp(-self.jobs / _PRIOR_FADE)
        return (prior * self.prior_mean + self.jobs * self.data_mean) / (prior + self.jobs)

    @property
    def sigma(self) -> float:
        prior = _PRIOR_WEIGHT * math.exp(-self.jobs / _PRIOR_FADE)
        jobs = self.jobs
        data_var = self.data_var if jobs >= 2 else self.prior_var  # one job says nothing of the spread
        apart = self.data_mean - self.prior_mean
        # Pooled variance of two groups (the prior and the jobs), the gap between their means included.
        var = (prior * self.prior_var + jobs * data_var + prior * jobs / (prior + jobs) * apart * apart) / (
            prior + jobs
        )
        return min(max(math.sqrt(max(var, 0.0)), _MIN_SIGMA), _MAX_SIGMA)


def _key(model: str | None, request: VideoRequest | None) -> str:
    name = model or "unknown"
    if request is not None:
        if request.length is not None:
            return f"{name} length={request.length}"
        if request.seconds is not None:
            return f"{name} seconds={request.seconds}"
    return name


def _prior_for(model: str | None) -> DurationPrior:
    model = (model or "").lower()
    best = max((prefix for prefix in DURATION_PRIORS if model.startswith(prefix)), key=len)
    return DURATION_PRIORS[best]


class DurationEstimates:
    """The durations a session has learned, by model and video length."""

    def __init__(self, *, scale: float = 1.0) -> None:
        self._scale = scale
        self._estimates: dict[str, _Estimate] = {}

    def log_normal(self, model: str | None, request: VideoRequest | None) -> tuple[float, float]:
        """``(mean, sigma)`` of ``log(seconds)`` for a job of ``model`` with ``request``."""
        estimate = self._estimates.get(_key(model, request))
        if estimate is None and request is not None:
            estimate = self._estimates.get(_key(model, None))  # another length of the same model
        if estimate is None:
            prior = _prior_for(model)
            return math.log(prior.median * self._scale), prior.sigma
        return estimate.mean, estimate.sigma

    def observe(self, model: str | None, request: VideoRequest | None, seconds: float) -> None:
        """A job of ``model`` with ``request`` took ``seconds`` from submit to completion."""
        if not seconds > 0 or not math.isfinite(seconds):
            return
        log_seconds = math.log(seconds)
        keys = {_key(model, request), _key(model, None)}  # the model-wide estimate serves unseen lengths
        for key in keys:
            estimate = self._estimates.get(key)
            if estimate is None:
                estimate = self._estimates[key] = self._new_estimate(model)
            estimate.add(log_seconds)

    def _new_estimate(self, model: str | None) -> _Estimate:
        prior = _prior_for(model)
        return _Estimate(math.log(prior.median * self._scale), prior.sigma**2)

    def export(self) -> dict[str, Any]:
        """What was learned, as JSON-ready data for :meth:`load` (seconds as measured)."""
        return {
            "version": EXPORT_VERSION,
            "durations": {
                key: {
                    "jobs": round(e.jobs, 3),
                    # What the jobs themselves showed: an importing session pools it with its prior
                    # exactly as this one does, so the estimate carries over unchanged.
                    "median_seconds": round(math.exp(e.data_mean), 6),
                    "sigma": round(math.sqrt(max(e.data_var, 0.0)), 6),
                }
                for key, e in sorted(self._estimates.items())
            },
        }

    def load(self, data: Mapping[str, Any]) -> int:
        """Take over estimates exported by :meth:`export`; returns how many keys were loaded.

        The whole document is checked first: bad data raises
        :class:`InvalidRequestError` naming the field, and nothing is loaded.
        """
        if not isinstance(data, Mapping):
            raise InvalidRequestError("durations", type(data).__name__, "the mapping returned by export_durations()")
        version = data.get("version")
        if version != EXPORT_VERSION:
            raise InvalidRequestError("durations.version", version, f"{EXPORT_VERSION}")
        entries = data.get("durations")
        if not isinstance(entries, Mapping):
            raise InvalidRequestError("durations.durations", entries, "a mapping of key -> estimate")
        loaded: dict[str, _Estimate] = {}
        for key, entry in entries.items():
            where = f"durations[{key!r}]"
            if not isinstance(key, str) or not key or not isinstance(entry, Mapping):
                raise InvalidRequestError(where, entry, "a model key mapped to {jobs, median_seconds, sigma}")
            jobs = _number(entry.get("jobs"), f"{where}.jobs", minimum=0.0)
            median = _number(entry.get("median_seconds"), f"{where}.median_seconds", minimum=None)
            sigma = _number(entry.get("sigma"), f"{where}.sigma", minimum=0.0)
            estimate = self._new_estimate(key.split(" ", 1)[0])
            estimate.jobs = min(jobs, _MEMORY)
            estimate.data_mean = math.log(median)
            estimate.data_var = sigma**2
            loaded[key] = estimate
        self._estimates.update(loaded)
        return len(loaded)


def _number(value: object, field: str, *, minimum: float | None) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and minimum is None:
        ok = value > 0  # type: ignore[operator]
    elif ok and minimum is not None:
        ok = value >= minimum  # type: ignore[operator]
    if not ok:
        allowed = "a finite number > 0" if minimum is None else f"a finite number >= {minimum:g}"
        raise InvalidRequestError(field, value, allowed)
    return float(value)  # type: ignore[arg-type]
