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

from ._config import PollPolicy, RetryPolicy
from ._errors import (
    APIConnectionError,
    APIStatusError,
    FastRouterError,
    RateLimitError,
    UnexpectedResponseError,
)
from ._protocol import is_retryable_status, retry_after_seconds

__all__ = ["is_transient", "poll_delay", "retry_delay", "retrying", "server_retry_after"]

logger = logging.getLogger("fastrouter_async")

T = TypeVar("T")


def poll_delay(policy: PollPolicy, polls_done: int, rng: random.Random) -> float:
    """Seconds to wait before the next poll, jittered."""
    base = policy.base_delay(polls_done)
    if policy.jitter and base:
        base *= rng.uniform(1 - policy.jitter, 1 + policy.jitter)
    return base


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


async def retrying(
    operation: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    should_retry: Callable[[FastRouterError], bool],
    rng: random.Random,
    what: str,
) -> T:
    """Run ``operation`` until it succeeds, retrying the failures ``should_retry`` accepts."""
    attempt = 0
    while True:
        try:
            return await operation()
        except FastRouterError as exc:
            if attempt + 1 >= policy.max_attempts or not should_retry(exc):
                raise
            delay = retry_delay(policy, attempt, rng, server_retry_after(exc))
            attempt += 1
            logger.warning(
                "%s failed (%s); retry %d of %d in %.2fs",
                what,
                exc,
                attempt,
                policy.max_attempts - 1,
                delay,
            )
            await anyio.sleep(delay)
