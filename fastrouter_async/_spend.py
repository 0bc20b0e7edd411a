"""Spend caps: reservations made before each paid submit, settled to the final cost when the job ends.

A :class:`SpendLedger` keeps, under one cap in US dollars, what was **spent** (final costs of jobs
that ended) and what is **reserved** (the estimates of jobs submitted or being submitted). A submit
is sent only once its estimate is reserved, and a reservation that would take spent + reserved over
the cap is refused with :class:`SpendCapError` before anything is sent. The check and the booking are
one synchronous step, so any number of tasks racing for the last dollars never overshoot the cap.

When a job ends its reservation *settles*: to its final cost, to 0 when it failed (FastRouter bills
no failed job) or was a cache hit, and to the reserved amount itself when the final cost is unknown
(never treated as free). A submit refused before anything was created *releases* its reservation.

The ledger is in-process. What must later be shared by several processes (one cap for every worker
using the same key) sits behind the small interface ``reserve / settle / release / spent / reserved``
that a shared store can implement the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence

import attrs

from ._catalog import Price
from ._config import check_number
from ._costs import PaidPrices, SpendEstimate, estimate_request, estimate_requests
from ._errors import SpendCapError
from ._models import Cost, VideoRequest

__all__ = ["SessionCosts", "SpendHold", "SpendLedger", "check_cap"]

_EPSILON = 1e-9  # float sums of cents: 0.1 + 0.2 must fit under a cap of 0.3


def check_cap(name: str, value: object) -> float | None:
    """``value`` as a cap in USD (``None``: no cap), or :class:`InvalidRequestError` naming ``name``."""
    if value is None:
        return None
    return check_number(name, value, "an amount in US dollars >= 0, or None for no cap", at_least=0, below=math.inf)


class SpendLedger:
    """What is spent and reserved under one cap (in-process; see the module docs)."""

    def __init__(self, cap_usd: float, *, what: str = "max_spend_usd") -> None:
        self.cap_usd = cap_usd
        self.what = what
        self._spent = 0.0
        self._reserved: dict[Hashable, float] = {}

    @property
    def spent(self) -> float:
        """Final costs of the jobs that ended (US dollars)."""
        return self._spent

    @property
    def reserved(self) -> float:
        """Estimates of the jobs not ended yet (US dollars)."""
        return sum(self._reserved.values())

    @property
    def left(self) -> float:
        return max(0.0, self.cap_usd - self._spent - self.reserved)

    def reserve(self, key: Hashable, usd: float, *, model: str | None = None, force: bool = False) -> None:
        """Reserve ``usd`` for the job ``key``, or raise :class:`SpendCapError` and reserve nothing.

        A key reserved already keeps its reservation (a replay of the same job is not a second cost).
        ``force`` books it even over the cap (jobs an earlier run already submitted).
        """
        if key in self._reserved:
            return
        if not force and self._spent + self.reserved + usd > self.cap_usd + _EPSILON:
            raise SpendCapError(
                cap_usd=self.cap_usd, spent_usd=self._spent, reserved_usd=self.reserved, cost_usd=usd, model=model
            )
        self._reserved[key] = usd

    def settle(self, key: Hashable, usd: float) -> None:
        """The job ``key`` ended and cost ``usd``: its reservation becomes spent."""
        self._reserved.pop(key, None)
        self._spent += usd

    def release(self, key: Hashable) -> None:
        """The job ``key`` was never created: its reservation is given back."""
        self._reserved.pop(key, None)

    def reservation(self, key: Hashable) -> float | None:
        return self._reserved.get(key)


@attrs.define(eq=False)
class SpendHold:
    """One job's reservation in one or more ledgers (the session's cap, a batch's cap)."""

    key: Hashable
    usd: float
    ledgers: Sequence[SpendLedger]
    done: bool = False

    def release(self) -> None:
        """Nothing was created (a refused submit): give the reservation back everywhere."""
        if not self.done:
            self.done = True
            for ledger in self.ledgers:
                ledger.release(self.key)

    def settle(self, usd: float) -> None:
        if not self.done:
            self.done = True
            for ledger in self.ledgers:
                ledger.settle(self.key, usd)

    def ended(self, cost: Cost | None) -> None:
        """Settle for a job that ended: ``None`` for a failed job (not billed), else its cost;
        an unknown final cost keeps the reserved amount as spent (never counted as free)."""
        if cost is None:
            self.settle(0.0)
        elif cost.usd is not None:
            self.settle(cost.usd)
        else:
            self.settle(self.usd)


class SessionCosts:
    """A session's side of costs: its cap, what it learned it paid, and the reservation before each submit."""

    def __init__(
        self,
        *,
        cap_usd: float | None,
        unknown_price_usd: float | None,
        listed: Callable[[], Mapping[str, Price] | None],
    ) -> None:
        self.ledger = None if cap_usd is None else SpendLedger(cap_usd)
        self.unknown_price_usd = unknown_price_usd
        self.paid = PaidPrices()
        self._listed_source = listed
        self._listed: Mapping[str, Price] | None = None
        self._listed_read = False

    def listed(self) -> Mapping[str, Price] | None:
        """The prices of the cached model list (``models --refresh``), read once."""
        if not self._listed_read:
            self._listed_read = True
            self._listed = self._listed_source()
        return self._listed

    def estimate(self, requests: Iterable[VideoRequest]) -> SpendEstimate:
        return estimate_requests(requests, paid=self.paid, listed=self.listed())

    def hold(
        self,
        request: VideoRequest,
        ledger: SpendLedger | None = None,
        key: Hashable | None = None,
        *,
        track_unknown: bool = False,
    ) -> SpendHold | None:
        """Reserve ``request``'s estimate in ``ledger`` and the session's cap (:class:`SpendCapError` if either
        is full, or the price is unknown and no ``unknown_price_usd`` was given); ``None``: no cap applies.
        ``track_unknown``: ``ledger`` only tracks (no cap), so an unknown price is reserved as 0 there."""
        ledgers = [each for each in (ledger, self.ledger) if each is not None]
        if not ledgers:
            return None
        key = object() if key is None else key
        usd = next((r for r in (each.reservation(key) for each in ledgers) if r is not None), None)
        if usd is None:
            usd = estimate_request(0, request, paid=self.paid, listed=self.listed()).usd
        if usd is None:
            usd = self.unknown_price_usd
        if usd is None and track_unknown and self.ledger is None:
            usd = 0.0  # no cap applies: the batch's tally shows only what is known
        if usd is None:
            first = ledgers[0]
            raise SpendCapError(
                cap_usd=first.cap_usd,
                spent_usd=first.spent,
                reserved_usd=first.reserved,
                cost_usd=None,
                model=request.model,
            )
        booked: list[SpendLedger] = []
        try:
            for each in ledgers:
                each.reserve(key, usd, model=request.model)
                booked.append(each)
        except SpendCapError:
            for each in booked:
                each.release(key)
            raise
        return SpendHold(key=key, usd=usd, ledgers=ledgers)

    def observe(self, request: VideoRequest | None, cost: Cost, *, found_again: bool | None) -> None:
        """Learn what a finished job of ``request`` was billed (not a cache hit: that says nothing of the price)."""
        if request is not None and not found_again and cost.kind == "final" and cost.usd is not None:
            self.paid.observe(request, cost.usd)
