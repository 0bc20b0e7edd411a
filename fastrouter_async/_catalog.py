"""Known FastRouter video models and their parameter rules: data plus one :func:`validate`.

Where the rules come from, most authoritative first:

1. FastRouter's own docs: the ``POST /videos`` request schema (``model`` and
   ``prompt`` required; ``image`` is a JPG/PNG URL, never base64; ``seconds`` and
   ``size`` are "used by Sora models") and the rows of the Image-to-Video model
   table that survive in the stored copies (Runway Gen-3/Gen-4 Turbo, Seedance
   1.0 Lite/Pro, Hailuo-02, Kling V1.6/V2/V2.1).
2. Pollo, the upstream FastRouter routes video through (its responses say
   ``"provider": "pollo"`` and the model slugs are Pollo's): its per-model limits
   fill the gaps FastRouter's docs leave.
3. FastRouter's catalog (the models.dev sync and the changelog) for the list of ids.

Policy:

* **Union on conflict.** Where FastRouter's docs and Pollo disagree (Seedance Pro
  resolutions, Runway Gen-4 aspect ratios, Hailuo resolutions, Sora's duration
  field), every value either source documents is accepted and a parameter is
  required only if both sources require it. Rejecting a valid request costs the
  user a working call; letting a doubtful one through costs one 400 from the server.
* **``None`` means "not documented"** and is not checked. Parameters nobody
  documents for a model are passed through; the server decides.
* **Unknown models get only the universal rules.** The catalog changes faster than
  this table, so a model id is never rejected for being unknown.
* **Values are never rewritten.** Resolutions are matched case-insensitively (the
  docs write ``768p``, Pollo ``768P``) but sent exactly as given.

Each spec's ``notes`` records its sources and conflicts, for users and tools to show.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Literal, TypeGuard
from urllib.parse import urlsplit

import attrs

from ._errors import InvalidRequestError
from ._models import VideoRequest
from ._protocol import WIRE_NAMES

__all__ = ["MODELS", "WIRE_NAMES", "ModelSpec", "find_model", "validate"]

ImageSupport = Literal["required", "optional", "unknown"]


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
    """

    id: str
    name: str
    provider: str
    image: ImageSupport
    durations: frozenset[int] | None
    duration_field: Literal["length", "seconds"]
    duration_required: bool
    resolutions: frozenset[str] | None
    resolution_required: bool
    aspect_ratios: frozenset[str] | None
    sizes: frozenset[str] | None
    modes: frozenset[str] | None
    max_prompt_length: int | None
    supports_audio: bool | None
    notes: str = ""


# -- the table ---------------------------------------------------------------------------------------

_UNION = "accepted here is the union of both"
_VEO_RATIOS = frozenset({"16:9", "9:16"})
_KLING_RATIOS = frozenset({"16:9", "9:16", "1:1"})
_SEEDANCE_RESOLUTIONS = frozenset({"480p", "720p", "1080p"})
_SEEDANCE_RATIOS = frozenset({"16:9", "9:16", "4:3", "3:4", "1:1"})
_SORA_DURATIONS = frozenset({4, 8, 12})
_SORA_SIZES = frozenset({"720x1280", "1280x720", "1024x1792", "1792x1024"})
_SORA_NOTES = (
    "FastRouter documents seconds 4/8/12 and size 720x1280/1280x720/1024x1792/1792x1024; Pollo uses "
    f"length 4/8/12 and aspectRatio 16:9/9:16 instead; {_UNION}, so seconds or length may be given (not both). "
    "Pollo requires the duration, FastRouter's schema does not, so it is optional here. length=10 was "
    "reportedly accepted once (user code) but is documented nowhere and is rejected. Pollo's 4000-character "
    "prompt cap is not enforced: FastRouter appears to call OpenAI directly for Sora ('openai submit' errors, "
    "OpenAI video_ task ids). Sora always produces audio; generate_audio is not checked."
)
_UNDOCUMENTED = "No parameter rules are documented; only the universal rules apply (seconds and size are Sora-only)."


def _veo(model_id: str, name: str, *, resolutions: Iterable[str], notes: str) -> ModelSpec:
    return ModelSpec(
        id=model_id,
        name=name,
        provider="Google",
        image="optional",
        durations=frozenset({4, 6, 8}),
        duration_field="length",
        duration_required=False,
        resolutions=frozenset(resolutions),
        resolution_required=False,
        aspect_ratios=_VEO_RATIOS,
        sizes=None,
        modes=None,
        max_prompt_length=None,
        supports_audio=True,
        notes=notes,
    )


def _sora(model_id: str, name: str, *, resolutions: Iterable[str] | None, notes: str) -> ModelSpec:
    return ModelSpec(
        id=model_id,
        name=name,
        provider="OpenAI",
        image="optional",
        durations=_SORA_DURATIONS,
        duration_field="seconds",
        duration_required=False,
        resolutions=None if resolutions is None else frozenset(resolutions),
        resolution_required=False,
        aspect_ratios=_VEO_RATIOS,
        sizes=_SORA_SIZES,
        modes=None,
        max_prompt_length=None,
        supports_audio=None,
        notes=notes,
    )


def _kling(
    model_id: str,
    name: str,
    *,
    image: ImageSupport = "optional",
    durations: Iterable[int] = (5, 10),
    aspect_ratios: Iterable[str] | None = _KLING_RATIOS,
    modes: Iterable[str] | None = None,
    max_prompt_length: int | None = None,
    notes: str,
) -> ModelSpec:
    return ModelSpec(
        id=model_id,
        name=name,
        provider="Kling AI",
        image=image,
        durations=frozenset(durations),
        duration_field="length",
        duration_required=False,
        resolutions=None,
        resolution_required=False,
        aspect_ratios=None if aspect_ratios is None else frozenset(aspect_ratios),
        sizes=None,
        modes=None if modes is None else frozenset(modes),
        max_prompt_length=max_prompt_length,
        supports_audio=False,
        notes=notes,
    )


def _seedance(
    model_id: str,
    name: str,
    *,
    durations: Iterable[int],
    aspect_ratios: Iterable[str],
    max_prompt_length: int,
    supports_audio: bool,
    notes: str,
) -> ModelSpec:
    return ModelSpec(
        id=model_id,
        name=name,
        provider="ByteDance",
        image="optional",
        durations=frozenset(durations),
        duration_field="length",
        duration_required=False,
        resolutions=_SEEDANCE_RESOLUTIONS,
        resolution_required=True,
        aspect_ratios=frozenset(aspect_ratios),
        sizes=None,
        modes=None,
        max_prompt_length=max_prompt_length,
        supports_audio=supports_audio,
        notes=notes,
    )


def _runway(model_id: str, name: str, *, aspect_ratios: Iterable[str], notes: str) -> ModelSpec:
    return ModelSpec(
        id=model_id,
        name=name,
        provider="Runway",
        image="required",
        durations=frozenset({5, 10}),
        duration_field="length",
        duration_required=False,
        resolutions=None,
        resolution_required=False,
        aspect_ratios=frozenset(aspect_ratios),
        sizes=None,
        modes=None,
        max_prompt_length=1000,
        supports_audio=False,
        notes=notes,
    )


def _undocumented(model_id: str, name: str, provider: str, *, notes: str = _UNDOCUMENTED) -> ModelSpec:
    return ModelSpec(
        id=model_id,
        name=name,
        provider=provider,
        image="unknown",
        durations=None,
        duration_field="length",
        duration_required=False,
        resolutions=None,
        resolution_required=False,
        aspect_ratios=None,
        sizes=None,
        modes=None,
        max_prompt_length=None,
        supports_audio=None,
        notes=notes,
    )


_SPECS: tuple[ModelSpec, ...] = (
    _seedance(
        "bytedance/seedance",
        "Seedance 1.0 Lite",
        durations=(5, 10),
        aspect_ratios=_SEEDANCE_RATIOS,
        max_prompt_length=1000,
        supports_audio=False,
        notes=(
            "resolution 480p/720p/1080p and length 5/10 (FastRouter and Pollo agree). FastRouter's image-to-video "
            "table marks resolution required; Pollo requires it only for text-to-video (image-to-video defaults to "
            "480p), so it is required here only when no image is given; pass it anyway to be safe. Prompt at most "
            "1000 characters and aspect ratios from Pollo."
        ),
    ),
    _seedance(
        "bytedance/seedance-pro",
        "Seedance 1.0 Pro",
        durations=(5, 10),
        aspect_ratios=(*_SEEDANCE_RATIOS, "21:9"),
        max_prompt_length=1000,
        supports_audio=False,
        notes=(
            f"resolution: FastRouter's table lists 480p/1080p, Pollo 480p/720p/1080p; {_UNION}. Required only "
            "without an image (FastRouter: always; Pollo: text-to-video only). length 5/10 (both agree); prompt at "
            "most 1000 characters and aspect ratios from Pollo, matching limits observed in user code."
        ),
    ),
    _seedance(
        "bytedance/seedance-1.5-pro",
        "Seedance 1.5 Pro",
        durations=range(4, 13),
        aspect_ratios=("16:9", "4:3", "1:1", "3:4", "9:16", "21:9"),
        max_prompt_length=2000,
        supports_audio=True,
        notes=(
            "From Pollo only (no FastRouter table row): length 4-12, resolution 480p/720p/1080p (required without "
            "an image), prompt at most 2000 characters (stated for image-to-video, applied to both), generateAudio "
            "supported. Also reachable as bytedance/seedance-1-5-pro: FastRouter treats both spellings alike."
        ),
    ),
    _undocumented("bytedance/seedance-2", "Seedance 2", "ByteDance"),
    _undocumented("bytedance/seedance-2-fast", "Seedance 2 Fast", "ByteDance"),
    ModelSpec(
        id="google/veo2",
        name="Veo 2",
        provider="Google",
        image="optional",
        durations=frozenset({5, 8}),
        duration_field="length",
        duration_required=False,
        resolutions=frozenset({"720p"}),
        resolution_required=False,
        aspect_ratios=_VEO_RATIOS,
        sizes=None,
        modes=None,
        max_prompt_length=2000,
        supports_audio=False,
        notes=(
            "From Pollo: length 5/8, resolution 720p, aspectRatio 16:9/9:16, prompt at most 2000 characters. "
            "Veo 2 generates no audio."
        ),
    ),
    _veo(
        "google/veo3",
        "Veo 3",
        resolutions=("720p", "1080p"),
        notes="From Pollo: length 4/6/8 (default 8), resolution 720p/1080p, aspectRatio 16:9/9:16, generateAudio.",
    ),
    _veo(
        "google/veo3-fast",
        "Veo 3 Fast",
        resolutions=("720p", "1080p"),
        notes="From Pollo: length 4/6/8 (default 8), resolution 720p/1080p, aspectRatio 16:9/9:16, generateAudio.",
    ),
    _veo(
        "google/veo3.1",
        "Veo 3.1",
        resolutions=("720p", "1080p", "4k"),
        notes="From Pollo (slug veo3-1): length 4/6/8, resolution 720p/1080p/4k, aspectRatio 16:9/9:16, generateAudio.",
    ),
    _veo(
        "google/veo3.1-fast",
        "Veo 3.1 Fast",
        resolutions=("720p", "1080p", "4k"),
        notes=(
            "From Pollo (slug veo3-1-fast): length 4/6/8, resolution 720p/1080p/4k, aspectRatio 16:9/9:16, "
            "generateAudio."
        ),
    ),
    _undocumented(
        "google/veo3.1-lite",
        "Veo 3.1 Lite",
        "Google",
        notes=f"Probably shares Veo 3.1's limits, but nothing documents them. {_UNDOCUMENTED}",
    ),
    _kling(
        "kling-ai/kling-v1-6",
        "Kling V1.6",
        modes=("std", "pro"),
        max_prompt_length=2500,
        notes=(
            "length 5/10 and mode std/pro (FastRouter and Pollo agree); aspectRatio 16:9/9:16/1:1 (text-to-video) "
            "and prompt at most 2500 characters from Pollo. No audio."
        ),
    ),
    _kling(
        "kling-ai/kling-v2",
        "Kling V2",
        notes="length 5/10 (FastRouter and Pollo agree); aspectRatio 16:9/9:16/1:1 from Pollo. No audio.",
    ),
    _kling(
        "kling-ai/kling-v2-1",
        "Kling V2.1",
        image="required",
        aspect_ratios=None,
        modes=("std", "pro"),
        notes=(
            "Image-to-video only: Pollo has no text-to-video variant and FastRouter lists it in its image-to-video "
            "table. length 5/10 and mode std/pro from Pollo. No audio."
        ),
    ),
    _kling(
        "kling-ai/kling-v2-1-master",
        "Kling V2.1 Master",
        notes="From Pollo: length 5/10, aspectRatio 16:9/9:16/1:1; text- or image-to-video. No audio.",
    ),
    _undocumented("kling-ai/kling-v3", "Kling V3", "Kling AI"),
    _kling(
        "kling-ai/kling-video-o1",
        "Kling Video O1",
        durations=range(3, 11),
        modes=("pro",),
        notes=(
            "From Pollo: length 3-10 with an image and 5/10 without (the union, 3-10, is accepted), mode pro only, "
            "aspectRatio 16:9/9:16/1:1. Pollo documents no generateAudio."
        ),
    ),
    ModelSpec(
        id="minimax/minimax-hailuo-02",
        name="MiniMax Hailuo-02",
        provider="MiniMax",
        image="optional",
        durations=frozenset({6, 10}),
        duration_field="length",
        duration_required=False,
        resolutions=frozenset({"480p", "512P", "720p", "768P", "1080p"}),
        resolution_required=False,
        aspect_ratios=None,
        sizes=None,
        modes=None,
        max_prompt_length=2000,
        supports_audio=False,
        notes=(
            "resolution: FastRouter marks it required but lists no values (its global table has 480p/720p/1080p); "
            f"Pollo uses 512P/768P/1080P with a 768P default; {_UNION}, matched case-insensitively and sent as "
            "given. Not required, since Pollo has a default. length 6/10 (both agree); prompt at most 2000 "
            "characters from Pollo. Not in the models.dev catalog sync, but in FastRouter's docs."
        ),
    ),
    _sora("openai/sora-2", "Sora 2", resolutions=None, notes=_SORA_NOTES),
    _sora(
        "openai/sora-2-pro",
        "Sora 2 Pro",
        resolutions=("720p", "1080p"),
        notes=f"{_SORA_NOTES} resolution 720p/1080p (default 1080p) from Pollo.",
    ),
    _undocumented("pika/pika-v2-2", "Pika 2.2", "Pika"),
    _undocumented("pollo/pollo-v1-6", "Pollo 1.6", "Pollo"),
    _runway(
        "runway/runway-gen-3-turbo",
        "Runway Gen-3 Turbo",
        aspect_ratios=("5:3", "3:5"),
        notes=(
            "Image-to-video only (FastRouter's table requires image; Pollo has no text-to-video variant). "
            "length 5/10 and aspectRatio 5:3/3:5 (both agree); prompt at most 1000 characters from Pollo. No audio."
        ),
    ),
    _runway(
        "runway/runway-gen-4-turbo",
        "Runway Gen-4 Turbo",
        aspect_ratios=("16:9", "9:16", "1:1", "4:3", "3:4", "21:9"),
        notes=(
            "Image-to-video only (FastRouter's table requires image; Pollo has no text-to-video variant). "
            f"aspectRatio: FastRouter's table lists only 16:9, Pollo six ratios; {_UNION}. length 5/10 (both "
            "agree); prompt at most 1000 characters from Pollo. No audio."
        ),
    ),
    _undocumented("vidu/vidu-q1", "Vidu Q1", "Vidu"),
    _undocumented("vidu/vidu-v2-0", "Vidu 2.0", "Vidu"),
    _undocumented("wanx/wan-v2-6", "Wan 2.6", "Alibaba"),
    _undocumented(
        "x-ai/grok-imagine-video",
        "Grok Imagine Video",
        "xAI",
        notes=f"Added in FastRouter's changelog (2026-06-18); not in the models.dev catalog sync. {_UNDOCUMENTED}",
    ),
)

MODELS: Mapping[str, ModelSpec] = MappingProxyType({spec.id: spec for spec in _SPECS})
"""Every known FastRouter video model, by id. Not exhaustive: FastRouter adds models."""


def _slug_key(model_id: str) -> str:
    # FastRouter normalises slugs to one canonical form in which "." and "-" are interchangeable:
    # bytedance/seedance-1.5-pro and bytedance/seedance-1-5-pro are the same model (research §4.5 item 8).
    return model_id.lower().replace(".", "-")


_BY_SLUG_KEY: Mapping[str, ModelSpec] = MappingProxyType({_slug_key(spec.id): spec for spec in _SPECS})


def find_model(model_id: str) -> ModelSpec | None:
    """The spec of ``model_id``, or ``None`` if unknown.

    Matches the exact id or a known alias, case-insensitively: ``"bytedance/seedance-1-5-pro"`` and
    ``"ByteDance/Seedance-1.5-Pro"`` both find ``bytedance/seedance-1.5-pro``.
    """
    spec = MODELS.get(model_id)
    return spec if spec is not None else _BY_SLUG_KEY.get(_slug_key(model_id))


# -- formatting ----------------------------------------------------------------------------------------

_RESOLUTION_RE = re.compile(r"(\d+)([pk])", re.IGNORECASE)
_CHUNK_RE = re.compile(r"\d+|\D+")


def _natural_key(value: int | str) -> tuple[tuple[int, int, str], ...]:
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
    return ", ".join(str(value) for value in sorted(values, key=_natural_key))


# -- universal rules (every model, known or not) ---------------------------------------------------------

_MODEL_ID_RE = re.compile(r"[^\s/]+/[^\s/]+")
_ASPECT_RATIO_RE = re.compile(r"[1-9]\d*:[1-9]\d*")
_SIZE_RE = re.compile(r"[1-9]\d*x[1-9]\d*")
_BASE64_RE = re.compile(r"[A-Za-z0-9+/=_\-\s]{32,}")
# Seeds are unsigned 32-bit integers upstream (Veo and Seedance document 0..4294967295); a larger seed
# cannot reach the model unchanged, and a negative one means "random" at best.
_SEED_LIMIT = 2**32
_IMAGE_ALLOWED = (
    "FastRouter only accepts image URLs (no base64, no data: URIs): an absolute http(s) URL of a JPG or PNG image"
)
# No universal prompt maximum: FastRouter documents none, and the per-model caps (1000-2500 characters)
# come from the spec. An invented number would only reject prompts the server might accept.


def _check_model_id(value: object) -> None:
    if not isinstance(value, str) or _MODEL_ID_RE.fullmatch(value) is None:
        raise InvalidRequestError(
            "model", value, 'a model id in "provider/name" form, like "google/veo3": one slash, no spaces'
        )


def _check_prompt(value: object) -> None:
    # FastRouter requires a prompt; an empty one is accepted at submit and then fails upstream with a 400.
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError("prompt", value, "a non-empty text prompt (FastRouter requires one)")


def _check_image(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidRequestError("image", value, _IMAGE_ALLOWED)
    if value[:5].lower() == "data:":
        raise InvalidRequestError("image", value, f"a data: URI was given; {_IMAGE_ALLOWED}")
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
        raise InvalidRequestError("image", value, f"{hint}{_IMAGE_ALLOWED}")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_duration(field: str, value: object) -> None:
    if value is not None and not (_is_int(value) and value > 0):
        raise InvalidRequestError(field, value, "a whole number of seconds greater than 0")


def _check_seed(value: object) -> None:
    if value is not None and not (_is_int(value) and 0 <= value < _SEED_LIMIT):
        raise InvalidRequestError("seed", value, f"a whole number from 0 to {_SEED_LIMIT - 1}")


def _check_text(field: str, value: object) -> None:
    if value is not None and not (isinstance(value, str) and value.strip()):
        raise InvalidRequestError(field, value, "a non-empty string")


def _check_shape(field: str, value: object, pattern: re.Pattern[str], example: str) -> None:
    if value is not None and not (isinstance(value, str) and pattern.fullmatch(value)):
        raise InvalidRequestError(field, value, f'a string like "{example}" (two positive whole numbers)')


def _check_generate_audio(value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise InvalidRequestError("generate_audio", value, "True or False")


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


def _check_universal(request: VideoRequest) -> None:
    _check_model_id(request.model)
    _check_prompt(request.prompt)
    _check_image(request.image)
    _check_duration("length", request.length)
    _check_duration("seconds", request.seconds)
    _check_seed(request.seed)
    _check_text("resolution", request.resolution)
    _check_text("mode", request.mode)
    _check_shape("aspect_ratio", request.aspect_ratio, _ASPECT_RATIO_RE, "16:9")
    _check_shape("size", request.size, _SIZE_RE, "1280x720")
    _check_generate_audio(request.generate_audio)
    _check_extra(request.extra)


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
    return ", ".join(spec.id for spec in _SPECS if spec.duration_field == "seconds")


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
        with_audio = ", ".join(s.id for s in _SPECS if s.supports_audio)
        raise InvalidRequestError(
            "generate_audio",
            True,
            f"this model generates no audio; omit generate_audio, or use a model that does ({with_audio})",
            model=request.model,
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
)


def _check_against_spec(request: VideoRequest, spec: ModelSpec) -> None:
    for rule in _MODEL_RULES:
        rule(request, spec)


def validate(request: VideoRequest) -> None:
    """Check ``request`` before it is sent; raise :class:`InvalidRequestError` if it cannot be right.

    The universal rules apply to every model; a known model's spec adds its own. The error names the
    field (its Python name), the value and what is allowed. Nothing is changed: a request that passes
    is sent exactly as given.
    """
    _check_universal(request)
    spec = find_model(request.model)
    if spec is not None:
        _check_against_spec(request, spec)
