"""Turning the session's keyword arguments into values: a request from ``submit()``'s keywords, a poll route."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._config import PollRoute
from ._errors import InvalidRequestError
from ._models import VideoRequest

__all__ = ["merge_extra", "poll_route_of", "request_from_fields"]


def request_from_fields(fields: Mapping[str, Any], extra: Mapping[str, Any]) -> VideoRequest:
    extra = merge_extra(extra)
    for required in ("model", "prompt"):
        if fields[required] is None:
            example = "'google/veo3'" if required == "model" else "'a cat surfing at sunset'"
            raise InvalidRequestError(required, None, f"a non-empty string is required, e.g. {example}")
    return VideoRequest(**fields, extra=extra)


def merge_extra(keywords: Mapping[str, Any]) -> dict[str, Any]:
    """``submit(extra={...}, other=...)``: an ``extra`` mapping joins the other pass-through keywords.

    Without this, ``extra=`` (the VideoRequest spelling) would be sent as a parameter named "extra".
    """
    merged = {k: v for k, v in keywords.items() if k != "extra"}
    if "extra" not in keywords:
        return merged
    nested = keywords["extra"]
    if not isinstance(nested, Mapping):
        raise InvalidRequestError(
            "extra", nested, "a mapping of further API parameters, e.g. {'negativePrompt': 'blurry'}"
        )
    for key, value in nested.items():
        if key in merged:
            raise InvalidRequestError(
                f"extra[{key!r}]", value, "each further parameter once (it was also passed as a keyword)"
            )
        merged[key] = value
    return merged


def poll_route_of(value: PollRoute | str) -> PollRoute:
    if isinstance(value, PollRoute):
        return value
    for route in PollRoute:
        if value in (route.value, route.name, route.name.lower()):
            return route
    allowed = ", ".join(repr(r.value) for r in PollRoute)
    raise InvalidRequestError("poll_route", value, f"a PollRoute or one of {allowed}")
