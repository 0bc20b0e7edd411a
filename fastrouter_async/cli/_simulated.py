"""The simulated FastRouter behind ``--simulate`` and the ``simulator`` command.

Jobs take a few seconds each, with durations varied by prompt so that a batch's display
has something to show, and a prompt mentioning "moderation" fails the way a moderation
block does. ``time_scale`` multiplies every duration (``0``: jobs end at their first poll),
which is what tests use.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from typing import Any, Final

from fastrouter_async import PollPolicy
from fastrouter_async.testing import FastRouterSimulator, JobPlan

__all__ = ["FAILURE_WORD", "SIMULATED_API_KEY", "simulated_poll_policy", "simulated_world"]

SIMULATED_API_KEY: Final = "sk-v1-simulated"
# Any token is accepted by the simulator; this one is never a real key, so none is ever sent to it.

FAILURE_WORD: Final = "moderation"

_DURATIONS: Final = (2.0, 2.5, 3.5, 4.5, 6.0)
# Seconds. Real jobs take minutes; a few varied seconds keep a demo short and its display meaningful.
_COSTS: Final = (0.10, 0.21, 0.35, 0.40, 0.75)
# USD, one per duration bucket, so that a summary's total is not just a multiple of one price.


def _bucket(body: Mapping[str, Any]) -> int:
    prompt = body.get("prompt")
    text = prompt if isinstance(prompt, str) else ""
    return zlib.crc32(text.encode()) % len(_DURATIONS)  # stable across runs, unlike hash()


def _mentions_failure(body: Mapping[str, Any]) -> bool:
    prompt = body.get("prompt")
    return isinstance(prompt, str) and FAILURE_WORD in prompt.lower()


def simulated_world(time_scale: float = 1.0) -> FastRouterSimulator:
    """A simulator whose jobs run 2-6 seconds (times ``time_scale``), some of them failing."""
    simulator = FastRouterSimulator(default_plan=JobPlan(duration=3.0 * time_scale))
    simulator.plan_for(
        _mentions_failure,
        JobPlan(
            duration=1.5 * time_scale,
            outcome="failed",
            error="input flagged by content moderation (simulated)",
            cost_usd=0.0,
        ),
    )
    for bucket, (duration, cost) in enumerate(zip(_DURATIONS, _COSTS, strict=True)):
        simulator.plan_for(_in_bucket(bucket), JobPlan(duration=duration * time_scale, cost_usd=cost))
    return simulator


def _in_bucket(bucket: int) -> Callable[[Mapping[str, Any]], bool]:
    return lambda body: _bucket(body) == bucket


def simulated_poll_policy(time_scale: float = 1.0) -> PollPolicy:
    """Polls every half second or so: simulated jobs take seconds, not minutes."""
    interval = 0.5 * time_scale
    return PollPolicy(first_delay=interval, interval=interval, max_interval=2 * interval, jitter=0.1)
