"""Waiting: the poll schedule and the retry executor.

The delay arithmetic is pure (a ``random.Random`` is passed in, so tests can
seed it); ``retrying`` is the one loop that re-runs a failed request.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from ._config import RetryPolicy
from ._errors import (
    APIConnectionError,
    APIStatusError,
    FastRouterError,
    RateLimitError,
    UnexpectedResponseError,
)
from ._protocol import is_retryable_status, retry_after_seconds

__all__ = ["RetryCounter", "is_transient", "retry_delay", "retrying", "server_retry_after"]

logger = logging.getLogger("fastrouter_async")

T = TypeVar("T")

_RATE_LIMIT_ALLOWANCE = 4
# Rate-limited attempts allowed per ordinary attempt: with the defaults, 32 tries spread over
# the server's Retry-After waits, enough to ride out a storm, not enough to spin on a hard quota.


def retry_delay(policy: RetryPolicy, attempt: int, rng: random.Random, retry_after: float | None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (0-based).

    The server's ``Retry-After`` wins, capped at ``max_retry_after``; otherwise
    exponential backoff with full jitter.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), policy.max_retry_after)
    return rng.uniform(0, policy.backoff_ceiling(attempt))


def server_retry_after(exc: BaseException) -> float | None:
    """The wait the server asked for with this error, if it asked."""
    if isinstance(exc, RateLimitError) and exc.retry_after is not None:
        return exc.retry_after
    if isinstance(exc, APIStatusError):
        return retry_after_seconds(exc.headers, now=time.time())
    return None


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying an idempotent request (a poll) on."""
    if isinstance(exc, APIStatusError):
        return is_retryable_status(exc.status_code)
    # Connection failures, timeouts, malformed answers and "done but no URL yet" may all clear up.
    return isinstance(exc, APIConnectionError | UnexpectedResponseError)


class RetryCounter:
    """The attempts made so far at one request, and whether (and when) to try again.

    A 429 is the session-wide throttle's business (every request of the session
    waits it out together), so rate-limited attempts have their own, larger
    allowance (``_RATE_LIMIT_ALLOWANCE`` times ``max_attempts``) and do not use up
    the attempts meant for real failures.
    """

    __slots__ = ("_attempt", "_limited", "_policy")

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._attempt = 0
        self._limited = 0

    @property
    def attempt(self) -> int:
        """Failed attempts so far, not counting rate-limited ones."""
        return self._attempt

    def delay_after(self, exc: FastRouterError, rng: random.Random, *, transient: bool) -> float | None:
        """Seconds to wait before trying again after ``exc``; ``None``: give up and raise it."""
        policy = self._policy
        if not transient:
            return None
        if isinstance(exc, RateLimitError):
            self._limited += 1
            if self._limited >= policy.max_attempts * _RATE_LIMIT_ALLOWANCE:
                return None
            return retry_delay(policy, min(self._limited - 1, self._attempt), rng, server_retry_after(exc))
        if self._attempt + 1 >= policy.max_attempts:
            return None
        delay = retry_delay(policy, self._attempt, rng, server_retry_after(exc))
        self._attempt += 1
        return delay


async def retrying(
    operation: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    should_retry: Callable[[FastRouterError], bool],
    rng: random.Random,
    what: str,
) -> T:
    """Run ``operation`` until it succeeds, retrying the failures ``should_retry`` accepts.

    How many times and how long to wait is :class:`RetryCounter`'s decision.
    """
    counter = RetryCounter(policy)
    while True:
        try:
            return await operation()
        except FastRouterError as exc:
            delay = counter.delay_after(exc, rng, transient=should_retry(exc))
            if delay is None:
                raise
            if isinstance(exc, RateLimitError):
                logger.warning("%s was rate limited (%s); retrying in %.2fs", what, exc, delay)
            else:
                logger.warning(
                    "%s failed (%s); retry %d of %d in %.2fs",
                    what,
                    exc,
                    counter.attempt,
                    policy.max_attempts - 1,
                    delay,
                )
            await anyio.sleep(delay)
