"""The values the model catalog is made of: :class:`ModelSpec` (what a model accepts) and
:class:`Price` (what one of its videos costs, as a source published it).

The table of known models and prices is data, in ``_catalog``; finding a model or a price in it
is in ``_lookup``.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Literal

import attrs

__all__ = ["ImageSupport", "ModelSpec", "Price"]

ImageSupport = Literal["required", "optional", "unknown"]


def _ints(values: Iterable[int] | None) -> frozenset[int] | None:
    return None if values is None else frozenset(values)


def _strs(values: Iterable[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


@attrs.frozen(kw_only=True)
class ModelSpec:
    """What one FastRouter video model accepts. ``None`` means "not documented, not checked".

    ``image``: ``"required"`` (image-to-video only), ``"optional"`` or ``"unknown"``.
    ``durations``: allowed ``length`` values (and ``seconds`` values when
    ``duration_field`` is ``"seconds"``, which only Sora uses).
    ``resolution_required``: a text-to-video request (one without ``image``) must
    give ``resolution``; with an image the server's default applies.
    ``sizes``: Sora's ``size`` values; ``size`` is rejected for models without them.
    ``supports_audio``: ``False`` means ``generate_audio=True`` is rejected.
    ``max_duration``: the longest ``length`` accepted, where only an upper bound is documented.
    ``retired``: the day the model stopped working upstream; validation then refuses it unless the
    request sets ``allow_retired=True``. ``retired_notice`` says why, for messages.

    Every rule defaults to "not documented": a spec states only what is known of its model. The
    sets of values may be given as any iterable (a tuple, a ``range``) and are kept as frozensets.
    """

    id: str
    name: str
    provider: str
    image: ImageSupport = "unknown"
    durations: frozenset[int] | None = attrs.field(default=None, converter=_ints)
    duration_field: Literal["length", "seconds"] = "length"
    duration_required: bool = False
    resolutions: frozenset[str] | None = attrs.field(default=None, converter=_strs)
    resolution_required: bool = False
    aspect_ratios: frozenset[str] | None = attrs.field(default=None, converter=_strs)
    sizes: frozenset[str] | None = attrs.field(default=None, converter=_strs)
    modes: frozenset[str] | None = attrs.field(default=None, converter=_strs)
    max_prompt_length: int | None = None
    supports_audio: bool | None = None
    notes: str = ""
    max_duration: int | None = None
    retired: datetime.date | None = None
    retired_notice: str = ""


@attrs.frozen(kw_only=True)
class Price:
    """What one video of a model costs, as a source published it.

    ``per`` is ``"video"`` (``usd`` for one video of ``length`` seconds; ``length=None``: any length)
    or ``"second"`` (``usd`` per second of video). ``source`` says where the number comes from and
    ``as_of`` when it was seen, so an estimate can say how much to trust it.
    """

    model: str
    usd: float
    per: Literal["video", "second"]
    length: int | None
    source: str
    as_of: datetime.date

    def cost(self, length: int | None) -> float | None:
        """The price of one video of ``length`` seconds, or ``None`` if this price does not say."""
        if self.per == "second":
            return None if length is None else self.usd * length
        if self.length is None or length is None or length == self.length:
            return self.usd
        return None
