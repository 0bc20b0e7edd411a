"""Request validation: the universal rules and each known model's rules from the catalog.

What the rules are and where they come from is documented in :mod:`fastrouter_async._catalog`;
this module only applies them. :func:`validate` raises :class:`InvalidRequestError` naming the
field, the value and what is allowed, before anything is sent or paid.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from urllib.parse import urlsplit

from ._catalog import MODELS
from ._config import check_integer
from ._errors import InvalidRequestError
from ._lookup import find_model
from ._models import WIRE_NAMES, VideoRequest
from ._specs import ModelSpec

__all__ = ["UNIVERSAL_CHECKS", "natural_key", "validate"]

# -- formatting ----------------------------------------------------------------------------------------

_RESOLUTION_RE = re.compile(r"(\d+)([pk])", re.IGNORECASE)
_CHUNK_RE = re.compile(r"\d+|\D+")


def natural_key(value: int | str) -> tuple[tuple[int, int, str], ...]:
    """Sort numbers numerically, "480p" < "720p" < "1080p" < "4k", "9:16" < "16:9"."""
    if isinstance(value, int):
        return ((0, value, ""),)
    match = _RESOLUTION_RE.fullmatch(value)
    if match is not None:
        number, unit = int(match[1]), match[2].lower()
        lines = number * 540 if unit == "k" else number  # "4k" is 2160 lines, "8k" 4320
        return ((0, lines, ""), (1, 0, unit))
    return tuple(
        (0, int(chunk), "") if chunk.isdecimal() else (1, 0, chunk.lower()) for chunk in _CHUNK_RE.findall(value)
    )


def _listing(values: Iterable[int | str]) -> str:
    return ", ".join(str(value) for value in sorted(values, key=natural_key))


# -- universal rules (every model, known or not) ---------------------------------------------------------

_MODEL_ID_RE = re.compile(r"[^\s/]+/[^\s/]+")
_ASPECT_RATIO_RE = re.compile(r"[1-9]\d*:[1-9]\d*")
_SIZE_RE = re.compile(r"[1-9]\d*x[1-9]\d*")
_BASE64_RE = re.compile(r"[A-Za-z0-9+/=_\-\s]{32,}")
# Seeds are signed 32-bit integers: Pollo, the upstream most models run on, accepts seeds down to
# -2147483647; nothing documents a seed above 2**31 - 1, which a signed 32-bit field cannot hold.
_SEED_MIN = -(2**31 - 1)
_SEED_MAX = 2**31 - 1
_IMAGE_ALLOWED = (
    "FastRouter only accepts image URLs (no base64, no data: URIs): an absolute http(s) URL of a JPG or PNG image"
)
# No universal prompt maximum: FastRouter documents none, and the per-model caps (1000-2500 characters)
# come from the spec. An invented number would only reject prompts the server might accept.


def _check_model_id(field: str, value: object) -> None:
    if not isinstance(value, str) or _MODEL_ID_RE.fullmatch(value) is None:
        raise InvalidRequestError(
            field, value, 'a model id in "provider/name" form, like "google/veo3": one slash, no spaces'
        )


def _check_prompt(field: str, value: object) -> None:
    # FastRouter requires a prompt; an empty one is accepted at submit and then fails upstream with a 400.
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(field, value, "a non-empty text prompt (FastRouter requires one)")


def _check_image(field: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidRequestError(field, value, _IMAGE_ALLOWED)
    if value[:5].lower() == "data:":
        raise InvalidRequestError(field, value, f"a data: URI was given; {_IMAGE_ALLOWED}")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        host = None
    else:
        if parts.scheme.lower() not in ("http", "https"):
            host = None
    if not host or any(char.isspace() for char in value):
        hint = "this looks like base64 data; " if _BASE64_RE.fullmatch(value) else ""
        raise InvalidRequestError(field, value, f"{hint}{_IMAGE_ALLOWED}")


def _check_duration(field: str, value: object) -> None:
    if value is not None:
        check_integer(field, value, "a whole number of seconds greater than 0", at_least=1)


def _check_seed(field: str, value: object) -> None:
    allowed = f"a whole number from {_SEED_MIN} to {_SEED_MAX} (a signed 32-bit integer)"
    if value is not None:
        check_integer(field, value, allowed, at_least=_SEED_MIN, at_most=_SEED_MAX)


def _check_text(field: str, value: object) -> None:
    if value is not None and not (isinstance(value, str) and value.strip()):
        raise InvalidRequestError(field, value, "a non-empty string")


def _check_shape(field: str, value: object, pattern: re.Pattern[str], example: str) -> None:
    if value is not None and not (isinstance(value, str) and pattern.fullmatch(value)):
        raise InvalidRequestError(field, value, f'a string like "{example}" (two positive whole numbers)')


def _check_generate_audio(field: str, value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise InvalidRequestError(field, value, "True or False")


def _fold(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


# Any spelling of a known field: "aspectRatio", "aspect_ratio", "Aspect-Ratio", ... -> "aspect_ratio".
_RESERVED_EXTRA: Mapping[str, str] = MappingProxyType(
    {_fold(spelling): field for field, wire in WIRE_NAMES.items() for spelling in (field, wire)}
)


def _json_problem(value: object, containing: frozenset[int] = frozenset()) -> str | None:
    """Why ``value`` cannot be sent as JSON unchanged, or ``None`` if it can."""
    if value is None or isinstance(value, str | int):  # bool is an int
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value!r} is not valid in JSON"
    if isinstance(value, list | tuple | dict):
        if id(value) in containing:
            return "it contains itself"
        containing |= {id(value)}
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    return f"the dict key {key!r} is not a string"
            children: Iterable[object] = value.values()
        else:
            children = value
        for child in children:
            problem = _json_problem(child, containing)
            if problem is not None:
                return problem
        return None
    return f"a {type(value).__name__} is not JSON"


def _check_extra(extra: Mapping[str, object]) -> None:
    for key, value in extra.items():
        if not isinstance(key, str) or not key.strip():
            raise InvalidRequestError("extra", key, "keys must be non-empty strings (the API parameter names)")
        field = _RESERVED_EXTRA.get(_fold(key))
        if _fold(key) == "allowretired":
            raise InvalidRequestError(
                "extra",
                key,
                "allow_retired is a field of VideoRequest, not an API parameter: pass "
                "VideoRequest(..., allow_retired=True) to submit() (it is never sent)",
            )
        if field is not None:
            raise InvalidRequestError(
                "extra",
                key,
                f"{key!r} is the {field} parameter; pass it as {field}=... (a keyword of submit() and "
                "a field of VideoRequest) so that it is validated and sent once",
            )
        problem = _json_problem(value)
        if problem is not None:
            raise InvalidRequestError(
                f"extra[{key!r}]",
                value,
                f"a JSON value (str, int, float, bool, None, or lists and dicts of those, with string keys); {problem}",
            )


def _check_aspect_ratio(field: str, value: object) -> None:
    _check_shape(field, value, _ASPECT_RATIO_RE, "16:9")


def _check_size(field: str, value: object) -> None:
    _check_shape(field, value, _SIZE_RE, "1280x720")


UNIVERSAL_CHECKS: Mapping[str, Callable[[str, object], None]] = MappingProxyType(
    {
        "model": _check_model_id,
        "prompt": _check_prompt,
        "image": _check_image,
        "length": _check_duration,
        "seconds": _check_duration,
        "seed": _check_seed,
        "resolution": _check_text,
        "mode": _check_text,
        "aspect_ratio": _check_aspect_ratio,
        "size": _check_size,
        "generate_audio": _check_generate_audio,
    }
)
"""The check each request field sent to the server (each of ``WIRE_NAMES``) gets whatever the model,
in the order applied; a test holds its fields to ``WIRE_NAMES``."""


def _check_universal(request: VideoRequest) -> None:
    for field, check in UNIVERSAL_CHECKS.items():
        check(field, getattr(request, field))
    _check_extra(request.extra)
    if not isinstance(request.allow_retired, bool):
        raise InvalidRequestError("allow_retired", request.allow_retired, "True or False")


# -- per-model rules (known models) --------------------------------------------------------------------


def _check_choice(
    field: str,
    value: int | str | None,
    allowed: frozenset[int] | frozenset[str] | None,
    *,
    model: str,
    casefold: bool = False,
) -> None:
    if value is None or allowed is None:
        return
    if casefold and isinstance(value, str):
        ok = value.casefold() in {str(choice).casefold() for choice in allowed}
    else:
        ok = value in allowed
    if not ok:
        how = " (matched case-insensitively)" if casefold else ""
        raise InvalidRequestError(field, value, f"allowed values are {_listing(allowed)}{how}", model=model)


def _sora_ids() -> str:
    return ", ".join(spec.id for spec in MODELS.values() if spec.duration_field == "seconds")


def _rule_image(request: VideoRequest, spec: ModelSpec) -> None:
    if spec.image == "required" and request.image is None:
        raise InvalidRequestError(
            "image",
            None,
            "this model is image-to-video only; pass image= as an http(s) URL of a JPG or PNG image",
            model=request.model,
        )


def _rule_duration(request: VideoRequest, spec: ModelSpec) -> None:
    if spec.duration_field == "seconds":
        if request.seconds is not None and request.length is not None:
            raise InvalidRequestError(
                "seconds",
                request.seconds,
                f"give seconds or length, not both (length={request.length!r} was given too)",
                model=request.model,
            )
        given = {"seconds": request.seconds, "length": request.length}
    else:
        if request.seconds is not None:
            raise InvalidRequestError(
                "seconds",
                request.seconds,
                f"seconds is only for Sora models ({_sora_ids()}); use length for this model",
                model=request.model,
            )
        given = {"length": request.length}
    for field, value in given.items():
        _check_choice(field, value, spec.durations, model=request.model)
    longest = spec.max_duration
    for field, value in given.items():
        if longest is not None and value is not None and value > longest:
            raise InvalidRequestError(field, value, f"at most {longest} seconds for this model", model=request.model)
    if spec.duration_required and all(value is None for value in given.values()):
        values = f"; allowed values are {_listing(spec.durations)}" if spec.durations is not None else ""
        raise InvalidRequestError(spec.duration_field, None, f"required for this model{values}", model=request.model)


def _rule_resolution(request: VideoRequest, spec: ModelSpec) -> None:
    _check_choice("resolution", request.resolution, spec.resolutions, model=request.model, casefold=True)
    if spec.resolution_required and request.resolution is None and request.image is None:
        values = f": one of {_listing(spec.resolutions)}" if spec.resolutions is not None else ""
        raise InvalidRequestError(
            "resolution", None, f"required for text-to-video (no image) with this model{values}", model=request.model
        )


def _rule_aspect_ratio(request: VideoRequest, spec: ModelSpec) -> None:
    _check_choice("aspect_ratio", request.aspect_ratio, spec.aspect_ratios, model=request.model)


def _rule_size(request: VideoRequest, spec: ModelSpec) -> None:
    if spec.sizes is None and request.size is not None:
        raise InvalidRequestError(
            "size",
            request.size,
            f"size is only for Sora models ({_sora_ids()}); use aspect_ratio (and resolution) for this model",
            model=request.model,
        )
    _check_choice("size", request.size, spec.sizes, model=request.model)


def _rule_mode(request: VideoRequest, spec: ModelSpec) -> None:
    _check_choice("mode", request.mode, spec.modes, model=request.model)


def _rule_prompt_length(request: VideoRequest, spec: ModelSpec) -> None:
    limit = spec.max_prompt_length
    if limit is not None and len(request.prompt) > limit:
        raise InvalidRequestError(
            "prompt",
            request.prompt,
            f"at most {limit} characters for this model (got {len(request.prompt)})",
            model=request.model,
        )


def _rule_audio(request: VideoRequest, spec: ModelSpec) -> None:
    if spec.supports_audio is False and request.generate_audio is True:
        with_audio = ", ".join(s.id for s in MODELS.values() if s.supports_audio)
        raise InvalidRequestError(
            "generate_audio",
            True,
            f"this model generates no audio; omit generate_audio, or use a model that does ({with_audio})",
            model=request.model,
        )


def _rule_retired(request: VideoRequest, spec: ModelSpec) -> None:
    # Last, so that a request with other mistakes hears about those first (they matter either way).
    if spec.retired is not None and not request.allow_retired:
        raise InvalidRequestError(
            "model",
            request.model,
            f"this model was retired on {spec.retired.isoformat()}: {spec.retired_notice}. Choose another model "
            "(fastrouter-video models lists them), or set allow_retired=True on the request to submit anyway",
        )


_MODEL_RULES: tuple[Callable[[VideoRequest, ModelSpec], None], ...] = (
    _rule_image,
    _rule_duration,
    _rule_resolution,
    _rule_aspect_ratio,
    _rule_size,
    _rule_mode,
    _rule_prompt_length,
    _rule_audio,
    _rule_retired,
)


def _check_against_spec(request: VideoRequest, spec: ModelSpec) -> None:
    for rule in _MODEL_RULES:
        rule(request, spec)


def validate(request: VideoRequest) -> None:
    """Check ``request`` before it is sent; raise :class:`InvalidRequestError` if it cannot be right.

    The universal rules apply to every model; a known model's spec adds its own. A retired model
    is refused unless ``request.allow_retired`` is set. The error names the field (its Python name),
    the value and what is allowed. Nothing is changed: a request that passes is sent exactly as given.
    """
    _check_universal(request)
    spec = find_model(request.model)
    if spec is not None:
        _check_against_spec(request, spec)
