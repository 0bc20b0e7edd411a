"""One request budget per session: every submit and poll spends from it.

:class:`RequestBudget` is the configuration (a frozen value); :class:`Throttle`
is the live state a session owns. The throttle is a token bucket whose rate
reacts to the server:

- a 429 pauses *every* request of the session until the server's
  ``Retry-After`` (or a fallback pause) has passed, and halves the
  rate, once per rate-limit episode rather than once per 429 (requests that
  were already on their way when the rate was cut do not cut it again);
- the fallback pause doubles while 429s follow each other, and halves again
  with each request sent after the last 429 that goes through, down to the
  first pause: one 429 among successes always costs the first pause only;
- after the pause the rate climbs back linearly to the configured rate over
  ``recovery`` seconds, as long as no new 429 arrives.

A session without a configured budget is unthrottled until its first 429.
From then on it throttles itself in the same way, starting from half the
request rate it had just measured, and it drops the limit again once it has
climbed back above that measured rate.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math

import anyio
import attrs

from ._config import check_number
from ._errors import InvalidRequestError

__all__ = ["RequestBudget", "Throttle", "coerce_budget"]

logger = logging.getLogger("fastrouter_async")

_MEASURE_WINDOW = 2.0  # seconds of history behind the measured request rate
_FLOOR = 0.01  # however long a storm lasts, the rate is not cut below 1% of the budget
_PAUSES_KEPT = 32  # recent pauses kept for inspection (a handful of storms)


def _positive(name: str, value: object) -> None:
    check_number(name, value, "a finite number > 0", above=0, below=math.inf)


@attrs.frozen(kw_only=True)
class RequestBudget:
    """A requests-per-second budget shared by every submit and poll of a session.

    ::

        FastRouterSession(request_budget=RequestBudget.per_minute(600))
        FastRouterSession(request_budget=10)            # 10 requests per second

    ``burst`` is how many requests may go out back to back after a quiet spell
    (default: one second's worth, at least 1). On a 429 the whole session
    pauses and the rate is multiplied by ``slowdown``; it then climbs back to
    ``rate`` over ``recovery`` seconds. (A submit's 429 saying "too many jobs at
    once" is not about requests: it lowers the session's job cap instead.)
    Downloads from provider CDNs are not counted: they do not reach FastRouter's API.
    """

    rate: float
    """Requests per second."""
    burst: float | None = None
    slowdown: float = 0.5
    recovery: float = 30.0
    # Half a minute to return to full speed after a 429: long enough not to re-trigger
    # the limit at once, short enough that a batch is not slowed for long by one storm.

    def __attrs_post_init__(self) -> None:
        _positive("rate", self.rate)
        if self.burst is not None:
            _positive("burst", self.burst)
        if isinstance(self.slowdown, bool) or not isinstance(self.slowdown, int | float) or not 0 < self.slowdown < 1:
            raise InvalidRequestError("slowdown", self.slowdown, "a factor between 0 and 1 (exclusive)")
        _positive("recovery", self.recovery)

    @classmethod
    def per_second(cls, rate: float, **options: float) -> RequestBudget:
        return cls(rate=rate, **options)

    @classmethod
    def per_minute(cls, rate: float, **options: float) -> RequestBudget:
        _positive("rate", rate)
        return cls(rate=rate / 60.0, **options)

    @property
    def capacity(self) -> float:
        return self.burst if self.burst is not None else max(1.0, self.rate)


def coerce_budget(value: RequestBudget | float | None) -> RequestBudget | None:
    """The session's ``request_budget=`` argument: a budget, requests per second, or ``None``."""
    if value is None or isinstance(value, RequestBudget):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError(
            "request_budget", value, "a RequestBudget, a number of requests per second, or None for no budget"
        )
    _positive("request_budget", value)
    return RequestBudget(rate=float(value))


class Throttle:
    """The live request budget of one session (see the module docstring)."""

    def __init__(
        self,
        budget: RequestBudget | None,
        *,
        first_pause: float,
        max_pause: float,
        fallback_slowdown: float = 0.5,
        fallback_recovery: float = 30.0,
    ) -> None:
        # A 429 without Retry-After pauses the session for ``first_pause`` (the retry policy's
        # base delay), doubling up to ``max_pause`` while rate-limit episodes follow each other.
        self._budget = budget
        self._slowdown = budget.slowdown if budget else fallback_slowdown
        self._recovery = budget.recovery if budget else fallback_recovery
        self._target: float | None = budget.rate if budget else None  # None: no limit
        self._capacity = budget.capacity if budget else 1.0
        self._tokens = self._capacity
        self._refilled_at: float | None = None
        self._paused_until = 0.0
        self._episode = 0
        self._cut_rate: float | None = None  # the rate right after the last cut
        self._cut_at = 0.0  # when the climb back began (the end of the pause)
        self._first_pause = first_pause
        self._max_pause = max_pause
        self._fallback_pause = first_pause
        self._lock: anyio.Lock | None = None
        self._window_start: float | None = None
        self._window_count = 0
        self._measured_rate = 0.0
        self._uncapped_ceiling = 0.0  # without a budget: the measured rate the climb returns to
        self.rate_limited = 0
        """How many 429s the session has seen."""
        self._pauses: collections.deque[float] = collections.deque(maxlen=_PAUSES_KEPT)

    @property
    def paused_until(self) -> float:
        """The event-loop time before which no request goes out."""
        return self._paused_until

    @property
    def recent_pauses(self) -> tuple[float, ...]:
        """The pauses (seconds) of the last rate-limit episodes, oldest first."""
        return tuple(self._pauses)

    @property
    def next_fallback_pause(self) -> float:
        """The pause the next 429 without ``Retry-After`` would bring."""
        return self._fallback_pause

    @property
    def episode(self) -> int:
        """A ticket: which rate-limit episode a request was sent in."""
        return self._episode

    def current_rate(self, now: float | None = None) -> float | None:
        """Requests per second allowed right now (``None``: unlimited)."""
        now = anyio.current_time() if now is None else now
        if self._cut_rate is None:
            return self._target
        climb_to = self._target if self._target is not None else self._uncapped_ceiling
        progress = max(0.0, now - self._cut_at) / self._recovery
        rate = self._cut_rate + (climb_to - self._cut_rate) * min(1.0, progress)
        if progress >= 1.0:
            self._cut_rate = None  # fully recovered
            return self._target
        return rate

    def try_acquire(self) -> int | None:
        """The episode ticket if a request may go out at once without a budget to spend; else ``None``.

        The common case (no budget, no 429 yet) without a coroutine: a caller that gets ``None``
        awaits :meth:`acquire`, which counts the request (and takes this path first itself).
        """
        now = asyncio.get_running_loop().time()  # anyio's clock, without its backend lookup: once per request
        if now < self._paused_until or self.current_rate(now) is not None:
            return None
        self._count(now)
        return self._episode

    async def acquire(self) -> int:
        """Wait until a request may go out; returns the episode ticket to hand to :meth:`rate_limited_by`."""
        ticket = self.try_acquire()
        if ticket is not None:
            return ticket  # the common case: no budget and no 429 yet
        self._count(asyncio.get_running_loop().time())
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:  # FIFO: requests leave in the order they arrived
            while True:
                now = anyio.current_time()
                if now < self._paused_until:
                    await anyio.sleep(self._paused_until - now)
                    continue
                rate = self.current_rate(now)
                if rate is None:
                    return self._episode
                self._refill(now, rate)
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return self._episode
                await anyio.sleep((1.0 - self._tokens) / rate)

    def _refill(self, now: float, rate: float) -> None:
        if self._refilled_at is not None:
            self._tokens = min(self._capacity, self._tokens + (now - self._refilled_at) * rate)
        self._refilled_at = now

    def _count(self, now: float) -> None:
        if self._window_start is None:
            self._window_start = now
        elapsed = now - self._window_start
        if elapsed >= _MEASURE_WINDOW:
            self._measured_rate = self._window_count / elapsed
            self._window_start = now
            self._window_count = 0
        self._window_count += 1

    def _recent_rate(self, now: float) -> float:
        if self._window_start is None:
            return 0.0
        elapsed = now - self._window_start
        current = self._window_count / elapsed if elapsed > 0.05 else 0.0
        return max(self._measured_rate, current)

    def rate_limited_by(self, ticket: int, retry_after: float | None, *, now: float | None = None) -> None:
        """A request sent in episode ``ticket`` got a 429: pause everyone, and slow down once per episode."""
        now = anyio.current_time() if now is None else now
        self.rate_limited += 1
        pause = retry_after if retry_after is not None else self._fallback_pause
        if ticket != self._episode:
            # Sent before the last cut: the storm is already being handled. Only honour a longer wait.
            self._paused_until = max(self._paused_until, now + pause)
            return
        self._episode += 1
        if retry_after is None:
            self._fallback_pause = min(self._max_pause, self._fallback_pause * 2)
        rate = self.current_rate(now)
        if rate is None:  # no budget yet: start from half of what was just being sent
            measured = max(self._recent_rate(now), 1.0 / max(pause, 1e-3))
            self._uncapped_ceiling = measured
            rate = measured
        ceiling = self._target if self._target is not None else self._uncapped_ceiling
        self._cut_rate = max(rate * self._slowdown, ceiling * _FLOOR)
        self._paused_until = max(self._paused_until, now + pause)
        self._cut_at = self._paused_until
        self._tokens = min(self._tokens, 1.0)
        self._pauses.append(pause)
        logger.warning(
            "rate limited (429): pausing all requests for %.2fs, then %.3g requests/s rising back over %.0fs",
            pause,
            self._cut_rate,
            self._recovery,
        )

    def succeeded(self, ticket: int | None = None) -> None:
        """A request sent in episode ``ticket`` went through.

        One sent after the last 429 (``ticket`` is the current episode, or not given)
        shows the limit has eased: the fallback pause for the next 429 halves, back
        down to the first pause. One sent before it says nothing about the limit now.
        """
        if self._cut_rate is None:
            self._fallback_pause = self._first_pause  # fully recovered: the next storm starts small
        elif ticket is None or ticket == self._episode:
            self._fallback_pause = max(self._first_pause, self._fallback_pause / 2)
