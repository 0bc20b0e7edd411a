"""An account's limits, as a provider enforces them: a request rate and a cap on jobs at once.

Both are off unless set (see :class:`~._simulator.FastRouterSimulator`). The rate is a
token bucket over every API request (submits and polls, not downloads): ``rate``
tokens a second, at most ``burst`` of them saved up. A request that finds no token is
answered 429 with a ``Retry-After`` of the seconds until one is free. The cap refuses
a submit that would create a job while ``account_max_jobs`` jobs are in flight.
Nothing here does I/O or reads a clock: the caller passes the time.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = [
    "CONCURRENCY_CODE",
    "RequestRate",
    "checked_burst",
    "checked_max_jobs",
    "checked_rate",
    "concurrency_message",
    "retry_after_header",
]

CONCURRENCY_CODE: Final = "concurrency_limit_exceeded"


def concurrency_message(cap: int) -> str:
    """The message of a submit refused because ``cap`` jobs are already in flight."""
    return f"Too many concurrent tasks - this account runs at most {cap} at once; wait for one to finish"


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` for a wait of ``seconds``: rounded up to the millisecond, fractions kept (``"0.021"``)."""
    millis = max(1, math.ceil(seconds * 1000 - 1e-6))
    return f"{millis / 1000:.3f}".rstrip("0").rstrip(".")


class RequestRate:
    """A token bucket: :meth:`take` grants a request or says how long until one would be granted."""

    def __init__(self) -> None:
        self._tokens: float | None = None  # None: not used yet (or switched off), so full
        self._at = 0.0

    def take(self, now: float, *, rate: float, burst: float) -> float:
        """Take a token at ``now``: ``0.0`` if granted, else the seconds until one is free (none taken)."""
        saved = burst if self._tokens is None else self._tokens + max(0.0, now - self._at) * rate
        tokens = min(burst, saved)
        self._at = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return 0.0
        self._tokens = tokens
        return (1.0 - tokens) / rate

    def forget(self) -> None:
        """Start full again (the rate was switched off)."""
        self._tokens = None


def checked_rate(value: float | None) -> float | None:
    """``account_rate_limit``: ``None`` (no limit) or a positive, finite number of requests per second."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ValueError(f"account_rate_limit must be None or a positive number of requests per second, not {value!r}")
    return float(value)


def checked_burst(value: float | None) -> float | None:
    """``account_rate_burst``: ``None`` (one second's worth, at least 1) or a number of requests, at least 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value < math.inf:
        raise ValueError(f"account_rate_burst must be None or a number of requests of at least 1, not {value!r}")
    return float(value)


def checked_max_jobs(value: int | None) -> int | None:
    """``account_max_jobs``: ``None`` (no cap) or a number of jobs, 0 or more (0 refuses every new job)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"account_max_jobs must be None or a number of jobs (0 or more), not {value!r}")
    return value
