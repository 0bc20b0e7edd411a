"""Finding a model's spec and a video's price in the catalog (``_catalog``'s table)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ._catalog import MODELS, PRICES
from ._specs import ModelSpec, Price

__all__ = ["find_model", "price_for"]


def _slug_key(model_id: str) -> str:
    # FastRouter normalises slugs to one canonical form in which "." and "-" are interchangeable:
    # bytedance/seedance-1.5-pro and bytedance/seedance-1-5-pro are the same model (research §4.5 item 8).
    return model_id.lower().replace(".", "-")


_BY_SLUG_KEY: Mapping[str, ModelSpec] = MappingProxyType({_slug_key(spec.id): spec for spec in MODELS.values()})


def find_model(model_id: str) -> ModelSpec | None:
    """The spec of ``model_id``, or ``None`` if unknown.

    Matches the exact id or a known alias, case-insensitively: ``"bytedance/seedance-1-5-pro"`` and
    ``"ByteDance/Seedance-1.5-Pro"`` both find ``bytedance/seedance-1.5-pro``.
    """
    spec = MODELS.get(model_id)
    return spec if spec is not None else _BY_SLUG_KEY.get(_slug_key(model_id))


def price_for(model: str, length: int | None = None, *, listed: Mapping[str, Price] | None = None) -> Price | None:
    """The price that applies to one video of ``model`` of ``length`` seconds, or ``None`` if unknown.

    ``listed`` (prices from FastRouter's refreshed model list, by id) wins over the shipped table,
    being newer. A price that does not cover ``length`` (a per-video price for another length)
    is not returned: it would be a guess. With ``length=None`` the model's price is returned as
    published; ``Price.cost(length)`` then says what one video costs.
    """
    for table in (listed or {}, PRICES):
        price = table.get(model)
        if price is None:
            spec = find_model(model)
            price = table.get(spec.id) if spec is not None else None
        if price is not None and (length is None or price.cost(length) is not None):
            return price
    return None
