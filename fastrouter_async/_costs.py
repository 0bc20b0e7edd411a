"""Estimates before paying: what a request will cost, and where that figure comes from.

Sources, best first: what this session (or an earlier one, imported) actually **paid** for the same
model and parameters; the prices of FastRouter's refreshed model list (**listed**); the shipped,
dated **price table**; else **unknown**, never a guessed number. Pure and synchronous: the session
owns one :class:`PaidPrices` and learns into it as jobs finish (like the learned durations).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

import attrs

from ._catalog import PRICES
from ._errors import InvalidRequestError
from ._lookup import find_model, price_for
from ._models import VideoRequest
from ._specs import Price

__all__ = ["CostSource", "PaidPrices", "RequestEstimate", "SpendEstimate", "estimate_request", "estimate_requests"]

EXPORT_VERSION: Final = 1
CostSource = Literal["paid", "listed", "price_table", "unknown"]


@attrs.frozen(kw_only=True)
class RequestEstimate:
    """What one request is expected to cost, before it is sent."""

    index: int
    """Its position among the requests estimated."""
    model: str
    usd: float | None
    """US dollars (``None``: unknown)."""
    source: CostSource
    """``"paid"`` (what a finished job of the same model and parameters cost), ``"listed"`` (FastRouter's
    refreshed model list), ``"price_table"`` (the shipped, dated table) or ``"unknown"``."""
    as_of: str | None = None
    """When the price was seen (ISO date; for ``"paid"`` the figure is what was billed)."""


@attrs.frozen(kw_only=True)
class SpendEstimate:
    """Estimates of several requests: each one, the known total, and how many are unknown."""

    requests: tuple[RequestEstimate, ...]

    @property
    def total_usd(self) -> float:
        """The sum of the known estimates (see ``unknown`` for how many are left out)."""
        return math.fsum(e.usd for e in self.requests if e.usd is not None)

    @property
    def unknown(self) -> int:
        """How many requests have an unknown price (not in ``total_usd``)."""
        return sum(1 for e in self.requests if e.usd is None)

    def by_model(self) -> dict[str, tuple[int, float | None, CostSource]]:
        """Per model: how many requests, their known total (``None``: all unknown) and the source used."""
        out: dict[str, tuple[int, float | None, CostSource]] = {}
        for e in self.requests:
            count, usd, source = out.get(e.model, (0, None, e.source))
            if e.usd is not None:
                usd = (usd or 0.0) + e.usd
            out[e.model] = (count + 1, usd, source if source != "unknown" else e.source)
        return out


def _length(request: VideoRequest) -> int | None:
    return request.length if request.length is not None else request.seconds


def paid_key(request: VideoRequest) -> str:
    """What a price depends on: the model (canonical id), the length, the resolution and the mode."""
    spec = find_model(request.model)
    parts = [spec.id if spec is not None else request.model]
    length = _length(request)
    if length is not None:
        parts.append(f"length={length}")
    resolution = request.resolution or request.size
    if resolution:
        parts.append(f"resolution={resolution.lower()}")
    if request.mode:
        parts.append(f"mode={request.mode.lower()}")
    return " ".join(parts)


@attrs.define
class PaidPrices:
    """What finished jobs actually cost, by model and parameters (the latest figure wins)."""

    _paid: dict[str, float] = attrs.field(factory=dict)

    def observe(self, request: VideoRequest, usd: float) -> None:
        if math.isfinite(usd) and usd > 0:  # a cache hit (0) says nothing about the price
            self._paid[paid_key(request)] = usd

    def get(self, request: VideoRequest) -> float | None:
        return self._paid.get(paid_key(request))

    def export(self) -> dict[str, Any]:
        return {"version": EXPORT_VERSION, "paid_usd": dict(sorted(self._paid.items()))}

    def load(self, data: Mapping[str, Any]) -> int:
        """Take over exported figures; malformed data raises :class:`InvalidRequestError` and loads nothing."""
        if not isinstance(data, Mapping) or data.get("version") != EXPORT_VERSION:
            raise InvalidRequestError("data", data, f"what export_costs() returned (version {EXPORT_VERSION})")
        paid = data.get("paid_usd")
        if not isinstance(paid, Mapping):
            raise InvalidRequestError("data['paid_usd']", paid, "a mapping of key to US dollars")
        loaded: dict[str, float] = {}
        for key, usd in paid.items():
            if not isinstance(key, str) or isinstance(usd, bool) or not isinstance(usd, int | float):
                raise InvalidRequestError(f"data['paid_usd'][{key!r}]", usd, "an amount in US dollars")
            if not math.isfinite(usd) or usd <= 0 or usd > 10_000:
                raise InvalidRequestError(f"data['paid_usd'][{key!r}]", usd, "an amount above 0 and at most 10000")
            loaded[key] = float(usd)
        self._paid.update(loaded)
        return len(loaded)


def estimate_request(
    index: int, request: VideoRequest, *, paid: PaidPrices, listed: Mapping[str, Price] | None
) -> RequestEstimate:
    """The estimate of one request from the best source that knows it."""
    usd = paid.get(request)
    if usd is not None:
        return RequestEstimate(index=index, model=request.model, usd=usd, source="paid")
    length = _length(request)
    price = price_for(request.model, length, listed=listed)
    if price is not None:
        cost = price.cost(length)
        if cost is not None:
            shipped = PRICES.get(price.model) is price
            return RequestEstimate(
                index=index,
                model=request.model,
                usd=cost,
                source="price_table" if shipped else "listed",
                as_of=price.as_of.isoformat(),
            )
    return RequestEstimate(index=index, model=request.model, usd=None, source="unknown")


def estimate_requests(
    requests: Iterable[VideoRequest], *, paid: PaidPrices, listed: Mapping[str, Price] | None
) -> SpendEstimate:
    return SpendEstimate(
        requests=tuple(estimate_request(i, r, paid=paid, listed=listed) for i, r in enumerate(requests))
    )
