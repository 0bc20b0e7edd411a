"""Known FastRouter video models and their parameter rules, and the published prices: data only.

The values are :class:`~._specs.ModelSpec` and :class:`~._specs.Price`; finding a model or a
price is ``_lookup``'s, checking a request against a spec ``_validate``'s.

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

* **Retired models stay listed.** A model whose upstream shut down (OpenAI's Sora API, on
  2026-09-24) keeps its rules and gains a ``retired`` date: validation refuses it, so nobody
  waits for a job that is expected to fail, unless the request says ``allow_retired=True``
  (for the day FastRouter routes it again).

The price table (:data:`PRICES`) holds only published, dated figures; a model
without one has an unknown price, never a guessed one.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from ._specs import ImageSupport, ModelSpec, Price

__all__ = ["MODELS", "PRICES", "SORA_RETIRED", "ModelSpec", "Price"]
# ModelSpec and Price are named here too: the catalog's own vocabulary, for modules that read it.


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
SORA_RETIRED = datetime.date(2026, 9, 24)
_SORA_RETIRED_NOTICE = (
    "OpenAI shut its Sora video API down on 2026-09-24, so FastRouter's Sora jobs are expected to fail"
)
_UNDOCUMENTED = "No parameter rules are documented; only the universal rules apply (seconds and size are Sora-only)."


def _veo(model_id: str, name: str, *, resolutions: Iterable[str], notes: str) -> ModelSpec:
    # Pollo documents a 2000-character prompt for Veo 3 and Veo 3.1 (the Fast variants share their pages).
    return ModelSpec(
        id=model_id,
        name=name,
        provider="Google",
        image="optional",
        durations=(4, 6, 8),
        resolutions=resolutions,
        aspect_ratios=_VEO_RATIOS,
        max_prompt_length=2000,
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
        resolutions=resolutions,
        aspect_ratios=_VEO_RATIOS,
        sizes=_SORA_SIZES,
        notes=notes,
        retired=SORA_RETIRED,
        retired_notice=_SORA_RETIRED_NOTICE,
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
        durations=durations,
        aspect_ratios=aspect_ratios,
        modes=modes,
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
        durations=durations,
        resolutions=_SEEDANCE_RESOLUTIONS,
        resolution_required=True,
        aspect_ratios=aspect_ratios,
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
        durations=(5, 10),
        aspect_ratios=aspect_ratios,
        max_prompt_length=1000,
        supports_audio=False,
        notes=notes,
    )


_LISTED_2026_12 = "Listed by FastRouter (December 2026); no parameter rules are published for it yet, so only"
_LISTED_NOTES = f"{_LISTED_2026_12} the universal rules apply."


_SPECS: tuple[ModelSpec, ...] = (
    # Source: FastRouter's model listing (December 2026), id only.
    ModelSpec(id="alibaba/happyhorse-1.1", name="HappyHorse 1.1", provider="Alibaba", notes=_LISTED_NOTES),
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
    ModelSpec(id="bytedance/seedance-2", name="Seedance 2", provider="ByteDance", notes=_UNDOCUMENTED),
    ModelSpec(id="bytedance/seedance-2-fast", name="Seedance 2 Fast", provider="ByteDance", notes=_UNDOCUMENTED),
    # Source: FastRouter's model listing (December 2026): "up to 30 s with audio". No minimum length,
    # resolutions or ratios are published, so only the 30 s cap and audio support are known.
    ModelSpec(
        id="bytedance/dreamina-seedance-2-5",
        name="Dreamina Seedance 2.5",
        provider="ByteDance",
        supports_audio=True,
        max_duration=30,
        notes=f"{_LISTED_2026_12} length at most 30 s and audio support (FastRouter's listing) are checked.",
    ),
    # Source: FastRouter's model listing (December 2026), id only.
    ModelSpec(id="bytedance/seedance-2-mini", name="Seedance 2 Mini", provider="ByteDance", notes=_LISTED_NOTES),
    ModelSpec(
        id="google/veo2",
        name="Veo 2",
        provider="Google",
        image="optional",
        durations=(5, 8),
        resolutions=("720p",),
        aspect_ratios=_VEO_RATIOS,
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
        notes=(
            "From Pollo: length 4/6/8 (default 8), resolution 720p/1080p, aspectRatio 16:9/9:16, generateAudio, "
            "prompt at most 2000 characters."
        ),
    ),
    _veo(
        "google/veo3-fast",
        "Veo 3 Fast",
        resolutions=("720p", "1080p"),
        notes=(
            "From Pollo: length 4/6/8 (default 8), resolution 720p/1080p, aspectRatio 16:9/9:16, generateAudio, "
            "prompt at most 2000 characters."
        ),
    ),
    _veo(
        "google/veo3.1",
        "Veo 3.1",
        resolutions=("720p", "1080p", "4k"),
        notes=(
            "From Pollo (slug veo3-1): length 4/6/8, resolution 720p/1080p/4k, aspectRatio 16:9/9:16, "
            "generateAudio, prompt at most 2000 characters."
        ),
    ),
    _veo(
        "google/veo3.1-fast",
        "Veo 3.1 Fast",
        resolutions=("720p", "1080p", "4k"),
        notes=(
            "From Pollo (slug veo3-1-fast): length 4/6/8, resolution 720p/1080p/4k, aspectRatio 16:9/9:16, "
            "generateAudio, prompt at most 2000 characters (documented for Veo 3.1)."
        ),
    ),
    # Source: FastRouter's model listing (December 2026), id only.
    ModelSpec(id="google/gemini-omni-1.1-flash", name="Gemini Omni 1.1 Flash", provider="Google", notes=_LISTED_NOTES),
    ModelSpec(
        id="google/veo3.1-lite",
        name="Veo 3.1 Lite",
        provider="Google",
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
    ModelSpec(id="kling-ai/kling-v3", name="Kling V3", provider="Kling AI", notes=_UNDOCUMENTED),
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
        durations=(6, 10),
        resolutions=("480p", "512P", "720p", "768P", "1080p"),
        max_prompt_length=2000,
        supports_audio=False,
        notes=(
            "resolution: FastRouter marks it required but lists no values (its global table has 480p/720p/1080p); "
            f"Pollo uses 512P/768P/1080P with a 768P default; {_UNION}, matched case-insensitively and sent as "
            "given. Not required, since Pollo has a default. length 6/10 (both agree); prompt at most 2000 "
            "characters from Pollo. Not in the models.dev catalog sync, but in FastRouter's docs."
        ),
    ),
    # Source: FastRouter's model listing (December 2026), id only.
    ModelSpec(id="minimax/minimax-h3", name="MiniMax H3", provider="MiniMax", notes=_LISTED_NOTES),
    _sora("openai/sora-2", "Sora 2", resolutions=None, notes=_SORA_NOTES),
    _sora(
        "openai/sora-2-pro",
        "Sora 2 Pro",
        resolutions=("720p", "1080p"),
        notes=f"{_SORA_NOTES} resolution 720p/1080p (default 1080p) from Pollo.",
    ),
    # Source: Pollo's per-model docs (research notes 7.2): length 5/10, 720p/1080p.
    ModelSpec(
        id="pika/pika-v2-2",
        name="Pika 2.2",
        provider="Pika",
        durations=(5, 10),
        resolutions=("720p", "1080p"),
        notes="From Pollo: length 5/10, resolution 720p/1080p. Other parameters are not documented.",
    ),
    # Source: Pollo's per-model docs (research notes 7.2).
    ModelSpec(
        id="pollo/pollo-v1-6",
        name="Pollo 1.6",
        provider="Pollo",
        durations=(5, 10),
        resolution_required=True,
        modes=("basic", "pro"),
        max_prompt_length=1000,
        notes=(
            "From Pollo: length 5/10, mode basic/pro, resolution required without an image (its values are not "
            "documented, so any is accepted), prompt at most 1000 characters."
        ),
    ),
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
    # Source: Pollo's per-model docs (research notes 7.2): length 5 only, 1080p.
    ModelSpec(
        id="vidu/vidu-q1",
        name="Vidu Q1",
        provider="Vidu",
        durations=(5,),
        resolutions=("1080p",),
        notes="From Pollo: length 5 only, resolution 1080p. Other parameters are not documented.",
    ),
    # Source: Pollo's per-model docs (research notes 7.2): image required, length 4 or 8.
    ModelSpec(
        id="vidu/vidu-v2-0",
        name="Vidu 2.0",
        provider="Vidu",
        image="required",
        durations=(4, 8),
        notes="From Pollo: image-to-video only (image required), length 4 or 8. Other parameters are not documented.",
    ),
    # Source: Pollo's per-model docs (research notes 7.2).
    ModelSpec(
        id="wanx/wan-v2-6",
        name="Wan 2.6",
        provider="Alibaba",
        durations=range(2, 16),
        resolutions=("720P", "1080P"),
        aspect_ratios=("1:1", "4:3", "3:4", "16:9", "9:16"),
        max_prompt_length=2000,
        supports_audio=True,
        notes=(
            "From Pollo: length 2-15, resolution 720P/1080P (matched case-insensitively), aspectRatio "
            "1:1/4:3/3:4/16:9/9:16, prompt at most 2000 characters, audio generated by default."
        ),
    ),
    # Source: FastRouter's model listing (December 2026), ids only; Wan 2.6's limits are not assumed.
    ModelSpec(id="wanx/wan-v2-7", name="Wan 2.7", provider="Alibaba", notes=_LISTED_NOTES),
    ModelSpec(id="wanx/wan-v3-0", name="Wan 3.0", provider="Alibaba", notes=_LISTED_NOTES),
    ModelSpec(
        id="x-ai/grok-imagine-video",
        name="Grok Imagine Video",
        provider="xAI",
        notes=f"Added in FastRouter's changelog (2026-06-18); not in the models.dev catalog sync. {_UNDOCUMENTED}",
    ),
    # Source: FastRouter's model listing (December 2026), id only.
    ModelSpec(id="x-ai/grok-imagine-video-1.5", name="Grok Imagine Video 1.5", provider="xAI", notes=_LISTED_NOTES),
)

MODELS: Mapping[str, ModelSpec] = MappingProxyType({spec.id: spec for spec in _SPECS})
"""Every known FastRouter video model, by id. Not exhaustive: FastRouter adds models."""


# -- prices ------------------------------------------------------------------------------------------------

# FastRouter publishes no per-model video price list in its docs (searched December 2026); its
# GET /models answer carries ``pricing`` (see _catalog_cache). The only published figures are the
# worked examples in FastRouter's own docs, shipped here with their source. Every other model's
# price is unknown (no entry): never guess a number that a spend cap would then trust.
# Also seen but not shipped: bytedance/seedance-1-5-pro, estimate_usage.credits_used 0.192 in the
# response-caching docs; the example does not say the length or resolution it was for.
_PRICE_TABLE: tuple[Price, ...] = (
    Price(
        model="kling-ai/kling-v1-6",
        usd=0.21,
        per="video",
        length=5,
        source=(
            "FastRouter docs, response caching for video: the submit estimate (estimate_usage.credits_used) "
            "and the final cost (data.costUsd) of a 5 s Kling V1.6 video"
        ),
        as_of=datetime.date(2026, 9, 7),
    ),
)

PRICES: Mapping[str, Price] = MappingProxyType({price.model: price for price in _PRICE_TABLE})
"""The shipped, dated price of each model that has a published one, by model id."""
