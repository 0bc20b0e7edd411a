"""Exactly-once submits: the decisions around replaying a submit whose answer was lost.

Every submit (unless replays are off) carries a ``cache_key`` that names that one intended job.
FastRouter's documented response cache answers a repeat of the same request with the same key with
the **same task id, unbilled**, even while the task is still running (for up to its 30-minute
"pending-job safety timeout"). So when an answer is lost after sending, the submit is sent again,
identical, with the same key: a hit says "it had been created; here is its task id", a miss says
"the first one never arrived" and creates it now, once.

This module holds the decisions (which key a submit gets, whether a lost answer may be replayed and
after how long, what an accepted answer says about the job, the error raised when it may not) and
the loop that applies them (``replaying``) around the session's attempts.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import attrs

from ._cachekey import fresh_cache_key, is_cache_hit
from ._config import ReplayPolicy, RetryPolicy
from ._errors import SubmitUncertainError
from ._models import VideoRequest
from ._protocol import SubmitAccepted
from ._submits import SubmitIdentity

__all__ = ["SubmitAttempts", "found_again", "replay_delay", "replaying", "stamped"]

logger = logging.getLogger("fastrouter_async")

T = TypeVar("T")


@attrs.define(kw_only=True)
class SubmitAttempts:
    """The attempts of one submit: its key, when it was first sent, how many replays were sent."""

    cache_key: str | None
    """Sent as the ``cache_key`` header of every attempt (``None``: no key, no replays)."""
    first_attempt_at: float | None
    """When the first attempt was sent (unix time); the replay window counts from it."""
    fresh: bool
    """The key was made for this submit just now, so its first attempt cannot find an older job."""
    replays: int = 0
    """Replays sent so far (the attempt number given to ``SubmitHooks.before_send``)."""

    @classmethod
    def start(cls, request: VideoRequest, identity: SubmitIdentity | None, policy: ReplayPolicy) -> SubmitAttempts:
        """The attempts of a new submit of ``request``.

        With replays on: the key of ``identity`` (a batch job's), else the request's own, else a fresh
        one. With replays off only a key the user put on the request is sent (and never replayed).
        """
        if not policy.enabled:
            return cls(cache_key=request.cache_key, first_attempt_at=None, fresh=False)
        if identity is not None and identity.cache_key is not None:
            return cls(cache_key=identity.cache_key, first_attempt_at=identity.first_attempt_at, fresh=False)
        if request.cache_key is not None:
            first = None if identity is None else identity.first_attempt_at
            return cls(cache_key=request.cache_key, first_attempt_at=first, fresh=False)
        return cls(cache_key=fresh_cache_key(), first_attempt_at=None, fresh=True)

    @property
    def identity(self) -> SubmitIdentity:
        return SubmitIdentity(self.cache_key, self.first_attempt_at)


def found_again(accepted: SubmitAccepted, attempts: SubmitAttempts) -> bool | None:
    """Whether an accepted attempt found a job created earlier (a cache hit, unbilled).

    True for a hit; False for a miss, for a submit without a key, and for the first attempt of a
    fresh key (nothing older can hold it); None when the answer does not say.
    """
    if attempts.cache_key is None:
        return False
    hit = is_cache_hit(accepted.payload)
    if hit is None and attempts.fresh and attempts.replays == 0:
        return False
    return hit


def replay_delay(
    error: SubmitUncertainError,
    attempts: SubmitAttempts,
    *,
    policy: ReplayPolicy,
    retry_policy: RetryPolicy,
    rng: random.Random,
    now: float,
) -> float | None:
    """How long to wait before replaying a submit whose answer was lost; ``None``: do not replay.

    A replay is sent only with replays on and a key, when the lost answer showed no task id (one that
    did needs no replay: the id is known) and was no redirect (never followed nor re-sent), fewer
    than ``max_replays`` replays were sent, and the replay would still go out within ``window``
    seconds of the first attempt. The wait is the retry
    policy's backoff with full jitter.
    """
    if not policy.enabled or attempts.cache_key is None or error.task_id is not None:
        return None
    if error.status_code is not None and 300 <= error.status_code < 400:
        return None  # a redirected submit is never sent again, to any address (see docs/security.md)
    if attempts.replays >= policy.max_replays or attempts.first_attempt_at is None:
        return None
    delay = rng.uniform(0.0, retry_policy.backoff_ceiling(attempts.replays))
    if now + delay - attempts.first_attempt_at >= policy.window:
        return None
    return delay


def stamped(error: SubmitUncertainError, attempts: SubmitAttempts) -> SubmitUncertainError:
    """``error`` with the submit's key and first-attempt time, so the caller can re-send it safely."""
    if error.cache_key == attempts.cache_key and error.first_attempt_at == attempts.first_attempt_at:
        return error
    return SubmitUncertainError(
        error.request,
        error.reason,
        task_id=error.task_id,
        status_code=error.status_code,
        cache_key=attempts.cache_key,
        first_attempt_at=attempts.first_attempt_at,
    )


async def replaying(
    operation: Callable[[], Awaitable[T]],
    attempts: SubmitAttempts,
    *,
    policy: ReplayPolicy,
    retry_policy: RetryPolicy,
    rng: random.Random,
    what: str,
) -> T:
    """Run ``operation`` (one attempt with its own retries); replay it while ``replay_delay`` allows.

    ``SubmitUncertainError`` leaves here stamped with the key and the first attempt's time.
    """
    while True:
        try:
            return await operation()
        except SubmitUncertainError as exc:
            error = stamped(exc, attempts)
            cause = exc.__cause__
        delay = replay_delay(error, attempts, policy=policy, retry_policy=retry_policy, rng=rng, now=time.time())
        if delay is None:
            raise error from cause
        attempts.replays += 1
        logger.warning(
            "%s: the answer was lost (%s); re-sending it with the same cache_key %s in %.2fs (replay %d of %d)",
            what,
            error.reason,
            attempts.cache_key,
            delay,
            attempts.replays,
            policy.max_replays,
        )
        try:
            await anyio.sleep(delay)
        except BaseException:
            logger.warning(
                "%s was stopped before its replay; the job may exist: re-send the same request with "
                "cache_key=%r within %.0f s of its first attempt to find it unbilled",
                what,
                attempts.cache_key,
                policy.window,
            )
            raise
