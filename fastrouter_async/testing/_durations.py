"""Realistic job durations: a plan factory drawing each job's run time for its model and length.

The figures are the simulator's own "truth" for benchmarks and demos. They are
illustrative, in line with what users report of the providers ("Kling I2V can
take 3-8 minutes", "Sora takes about 3-10 minutes", Veo Fast in well under a
minute); they are deliberately not taken from anything the client assumes, so a
client that learns how long jobs take is measured against figures it never saw.
"""

from __future__ import annotations

import fnmatch
import math
import random
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import attrs

from ._plans import JobPlan

__all__ = ["DURATION_TABLE", "DurationModel", "RealisticDurations", "duration_model_for"]


@attrs.frozen
class DurationModel:
    """How long jobs of one model family run: a lognormal around ``base + per_second * video_seconds``."""

    base: float
    """Seconds every job takes, whatever its length (queueing, setup, encoding)."""
    per_second: float
    """Seconds of work per second of video."""
    sigma: float
    """The lognormal's shape: 0.2 puts about two jobs in three within -18 %/+22 % of the median."""

    def median(self, video_seconds: float) -> float:
        """The median run time, in seconds, of a video ``video_seconds`` long."""
        return self.base + self.per_second * video_seconds


DURATION_TABLE: Mapping[str, DurationModel] = MappingProxyType(
    {
        # Patterns are shell-style (fnmatch) over the lower-cased model id; the first match wins.
        "google/veo*-fast*": DurationModel(20, 4, 0.20),
        "google/veo*-lite*": DurationModel(20, 4, 0.20),
        "google/veo*": DurationModel(40, 8, 0.18),
        "openai/sora-2-pro*": DurationModel(150, 25, 0.25),
        "openai/sora-2*": DurationModel(90, 15, 0.25),
        "kling-ai/*master*": DurationModel(180, 30, 0.22),
        "kling-ai/*": DurationModel(120, 20, 0.22),
        "bytedance/*fast*": DurationModel(20, 3, 0.20),
        "bytedance/*": DurationModel(40, 6, 0.20),
        "minimax/*": DurationModel(90, 10, 0.22),
        "runway/*": DurationModel(30, 5, 0.15),
        "*": DurationModel(60, 10, 0.25),
    }
)
"""Model-id pattern -> :class:`DurationModel`, in matching order (the last pattern matches anything)."""

DEFAULT_VIDEO_SECONDS = 5.0  # when the body names no length: the most common default among providers
VEO_VIDEO_SECONDS = 8.0  # Veo makes 8-second videos unless told otherwise


def duration_model_for(model: str) -> DurationModel:
    """The first :data:`DURATION_TABLE` entry whose pattern matches ``model``."""
    lowered = model.lower()
    for pattern, duration_model in DURATION_TABLE.items():
        if fnmatch.fnmatchcase(lowered, pattern):
            return duration_model
    raise AssertionError("the catch-all pattern matches every model")  # pragma: no cover


def video_seconds_of(body: Mapping[str, Any]) -> float:
    """The video length a submit body asks for: ``length``, else ``seconds``, else the model's default."""
    for key in ("length", "seconds"):
        value = body.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float) and math.isfinite(value) and value > 0:
            return float(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                continue
            if math.isfinite(number) and number > 0:
                return number
    model = body.get("model")
    if isinstance(model, str) and model.lower().startswith("google/veo"):
        return VEO_VIDEO_SECONDS
    return DEFAULT_VIDEO_SECONDS


@attrs.frozen(kw_only=True)
class RealisticDurations:
    """A plan factory for :meth:`FastRouterSimulator.plan_with`: each job runs for a duration drawn for its model.

    ::

        sim.plan_with(RealisticDurations(time_scale=0.01, seed=1))  # minutes become seconds

    Each submit gets ``JobPlan(duration=d)`` where ``d`` is drawn from a lognormal
    whose median is ``base + per_second * video_seconds`` of the model's
    :data:`table` entry (``video_seconds``: the body's ``length`` or ``seconds``;
    8 for ``google/veo*`` and 5 for other models when absent) and whose shape is
    the entry's ``sigma``, times ``time_scale``. With a ``seed`` the draws are
    reproducible: the same submits in the same order get the same durations.
    """

    table: ClassVar[Mapping[str, DurationModel]] = DURATION_TABLE

    time_scale: float = attrs.field(default=1.0, validator=attrs.validators.gt(0.0))
    """Multiplies every duration: ``0.01`` turns a 3-minute job into 1.8 s."""
    seed: int | None = None
    """Seeds this factory's own random generator; ``None`` draws differently every run."""
    _rng: random.Random = attrs.field(
        init=False,
        repr=False,
        eq=False,
        default=attrs.Factory(lambda self: random.Random(self.seed), takes_self=True),
    )

    def median(self, body: Mapping[str, Any]) -> float:
        """The median duration, in seconds (scaled), of a job submitted with ``body``."""
        model = body.get("model")
        duration_model = duration_model_for(model if isinstance(model, str) else "")
        return duration_model.median(video_seconds_of(body)) * self.time_scale

    def draw(self, body: Mapping[str, Any]) -> float:
        """One duration, in seconds (scaled), for a job submitted with ``body``."""
        model = body.get("model")
        duration_model = duration_model_for(model if isinstance(model, str) else "")
        median = duration_model.median(video_seconds_of(body))
        return self._rng.lognormvariate(math.log(median), duration_model.sigma) * self.time_scale

    def __call__(self, body: Mapping[str, Any]) -> JobPlan:
        return JobPlan(duration=self.draw(body))
