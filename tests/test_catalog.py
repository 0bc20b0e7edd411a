"""The model catalog and request validation (fastrouter_async._catalog)."""

from __future__ import annotations

import datetime
from typing import Any

import attrs
import pytest

from fastrouter_async import FastRouterSession, validate_request
from fastrouter_async._catalog import MODELS, PRICES
from fastrouter_async._errors import InvalidRequestError
from fastrouter_async._lookup import find_model, price_for
from fastrouter_async._models import WIRE_NAMES, VideoRequest
from fastrouter_async._specs import ModelSpec, Price
from fastrouter_async._validate import UNIVERSAL_CHECKS, _check_against_spec, validate
from fastrouter_async.testing import FastRouterSimulator

UNKNOWN = "acme/brand-new-video"
PNG = "https://example.com/frame.png"
RAW_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"
SORA_ONLY = "only for Sora models (openai/sora-2, openai/sora-2-pro)"

# The 28 video model ids in FastRouter-origin sources (research notes §4.3).
RESEARCH_IDS = {
    "bytedance/seedance",
    "bytedance/seedance-pro",
    "bytedance/seedance-1.5-pro",
    "bytedance/seedance-2",
    "bytedance/seedance-2-fast",
    "google/veo2",
    "google/veo3",
    "google/veo3-fast",
    "google/veo3.1",
    "google/veo3.1-fast",
    "google/veo3.1-lite",
    "kling-ai/kling-v1-6",
    "kling-ai/kling-v2",
    "kling-ai/kling-v2-1",
    "kling-ai/kling-v2-1-master",
    "kling-ai/kling-v3",
    "kling-ai/kling-video-o1",
    "openai/sora-2",
    "openai/sora-2-pro",
    "pika/pika-v2-2",
    "pollo/pollo-v1-6",
    "runway/runway-gen-3-turbo",
    "runway/runway-gen-4-turbo",
    "vidu/vidu-q1",
    "vidu/vidu-v2-0",
    "wanx/wan-v2-6",
    "minimax/minimax-hailuo-02",
    "x-ai/grok-imagine-video",
}
# Listed by FastRouter in December 2026 (research notes §7.2).
NEW_IDS = {
    "bytedance/dreamina-seedance-2-5",
    "bytedance/seedance-2-mini",
    "x-ai/grok-imagine-video-1.5",
    "alibaba/happyhorse-1.1",
    "google/gemini-omni-1.1-flash",
    "minimax/minimax-h3",
    "wanx/wan-v2-7",
    "wanx/wan-v3-0",
}
UNDOCUMENTED_IDS = {
    "bytedance/seedance-2",
    "bytedance/seedance-2-fast",
    "google/veo3.1-lite",
    "kling-ai/kling-v3",
    "x-ai/grok-imagine-video",
} | (NEW_IDS - {"bytedance/dreamina-seedance-2-5"})


def request(model: str = UNKNOWN, prompt: str = "a red fox running through snow", **fields: Any) -> VideoRequest:
    return VideoRequest(model=model, prompt=prompt, **fields)


def rejected(req: VideoRequest) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        validate(req)
    return info.value


def assert_names(error: InvalidRequestError, field: str, value: object) -> None:
    """The error's attributes and message name the field and the value."""
    assert error.field == field
    assert error.value is value or error.value == value
    message = str(error)
    assert message.startswith(f"invalid {field}=")
    assert repr(value)[:40] in message
    assert error.allowed in message


# -- valid requests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        ("google/veo3", {"length": 8, "resolution": "1080p", "aspect_ratio": "16:9", "generate_audio": True}),
        ("google/veo3", {"image": PNG, "seed": 42, "extra": {"negativePrompt": "blurry"}}),
        ("google/veo3.1-fast", {"resolution": "4k", "length": 4}),
        ("google/veo2", {"length": 5, "resolution": "720p", "generate_audio": False}),
        ("openai/sora-2", {"seconds": 8, "size": "1280x720", "allow_retired": True}),
        ("openai/sora-2", {"length": 12, "aspect_ratio": "9:16", "allow_retired": True}),
        ("openai/sora-2-pro", {"seconds": 4, "size": "1792x1024", "resolution": "1080p", "allow_retired": True}),
        ("bytedance/seedance", {"image": PNG, "length": 10}),
        ("bytedance/seedance-pro", {"resolution": "720p", "length": 5, "aspect_ratio": "21:9"}),
        ("bytedance/seedance-1.5-pro", {"resolution": "480p", "length": 7, "generate_audio": True}),
        ("minimax/minimax-hailuo-02", {"resolution": "768P", "length": 6}),
        ("minimax/minimax-hailuo-02", {"resolution": "1080p", "length": 10}),
        ("kling-ai/kling-v1-6", {"mode": "pro", "length": 10, "aspect_ratio": "1:1"}),
        ("kling-ai/kling-v2-1", {"image": PNG, "mode": "std"}),
        ("kling-ai/kling-video-o1", {"image": PNG, "length": 3, "mode": "pro"}),
        ("runway/runway-gen-3-turbo", {"image": PNG, "aspect_ratio": "5:3", "length": 5}),
        ("runway/runway-gen-4-turbo", {"image": "http://cdn.example.org/x.jpg?sig=abc", "aspect_ratio": "9:16"}),
        ("wanx/wan-v3-0", {"length": 7, "resolution": "2k", "mode": "turbo", "generate_audio": True}),
        ("x-ai/grok-imagine-video", {"image": PNG, "aspect_ratio": "2:1"}),
    ],
)
def test_valid_requests_pass(model: str, fields: dict[str, Any]) -> None:
    """Requests within a model's documented (union) limits validate without error."""
    validate(request(model, **fields))


@pytest.mark.parametrize(
    "fields",
    [
        {"length": 7, "seconds": 99, "size": "3x2", "mode": "turbo", "resolution": "360p"},
        {"aspect_ratio": "7:3", "generate_audio": True, "seed": 0},
        {"length": 5, "seconds": 5},
        {"seed": 2**31 - 1, "image": "HTTPS://Example.COM/a.png"},
        {"seed": -(2**31 - 1)},
        {"extra": {"cfg_scale": 0.5, "camera": {"pan": [1, -2.5, None], "fixed": True}, "tags": ("a", "b")}},
    ],
)
def test_unknown_model_gets_only_universal_rules(fields: dict[str, Any]) -> None:
    """A model missing from the catalog is never rejected for it, and model-specific limits do not apply."""
    assert find_model(UNKNOWN) is None
    validate(request(UNKNOWN, **fields))


# -- universal rules ---------------------------------------------------------------------------------------

_SELF_LIST: list[object] = []
_SELF_LIST.append(_SELF_LIST)


@pytest.mark.parametrize(
    ("fields", "field", "value", "hint"),
    [
        ({"model": ""}, "model", "", "provider/name"),
        ({"model": "veo3"}, "model", "veo3", "provider/name"),
        ({"model": "google/veo 3"}, "model", "google/veo 3", "no spaces"),
        ({"model": " google/veo3"}, "model", " google/veo3", "no spaces"),
        ({"model": "a/b/c"}, "model", "a/b/c", "one slash"),
        ({"model": "/veo3"}, "model", "/veo3", "provider/name"),
        ({"model": "google/"}, "model", "google/", "provider/name"),
        ({"model": 42}, "model", 42, "provider/name"),
        ({"prompt": ""}, "prompt", "", "non-empty"),
        ({"prompt": " \n\t"}, "prompt", " \n\t", "non-empty"),
        ({"prompt": None}, "prompt", None, "non-empty"),
        ({"image": "data:image/png;base64,iVBORw0KGgo="}, "image", "data:image/png;base64,iVBORw0KGgo=", "data:"),
        (
            {"image": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"},
            "image",
            "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ",
            "base64",
        ),
        ({"image": "ftp://example.com/a.png"}, "image", "ftp://example.com/a.png", "http(s) URL"),
        ({"image": "/home/me/a.png"}, "image", "/home/me/a.png", "http(s) URL"),
        ({"image": "example.com/a.png"}, "image", "example.com/a.png", "http(s) URL"),
        ({"image": "https://"}, "image", "https://", "http(s) URL"),
        ({"image": "http:///a.png"}, "image", "http:///a.png", "http(s) URL"),
        ({"image": "https://[::1/a.png"}, "image", "https://[::1/a.png", "http(s) URL"),
        ({"image": "https://exa mple.com/a.png"}, "image", "https://exa mple.com/a.png", "http(s) URL"),
        ({"image": b"\x89PNG"}, "image", b"\x89PNG", "no base64"),
        ({"length": 0}, "length", 0, "greater than 0"),
        ({"length": -5}, "length", -5, "greater than 0"),
        ({"length": True}, "length", True, "whole number"),
        ({"length": 8.0}, "length", 8.0, "whole number"),
        ({"length": "8"}, "length", "8", "whole number"),
        ({"seconds": 0}, "seconds", 0, "greater than 0"),
        ({"seconds": False}, "seconds", False, "whole number"),
        ({"seed": -(2**31)}, "seed", -(2**31), "-2147483647 to 2147483647 (a signed 32-bit integer)"),
        ({"seed": 2**31}, "seed", 2**31, "-2147483647 to 2147483647 (a signed 32-bit integer)"),
        ({"seed": 2**32 - 1}, "seed", 2**32 - 1, "-2147483647 to 2147483647"),
        ({"seed": True}, "seed", True, "whole number"),
        ({"seed": 1.5}, "seed", 1.5, "whole number"),
        ({"resolution": ""}, "resolution", "", "non-empty string"),
        ({"resolution": "  "}, "resolution", "  ", "non-empty string"),
        ({"resolution": 1080}, "resolution", 1080, "non-empty string"),
        ({"mode": ""}, "mode", "", "non-empty string"),
        ({"mode": 1}, "mode", 1, "non-empty string"),
        ({"aspect_ratio": "16/9"}, "aspect_ratio", "16/9", '"16:9"'),
        ({"aspect_ratio": "0:9"}, "aspect_ratio", "0:9", '"16:9"'),
        ({"aspect_ratio": "16:9:1"}, "aspect_ratio", "16:9:1", '"16:9"'),
        ({"aspect_ratio": " 16:9"}, "aspect_ratio", " 16:9", '"16:9"'),
        ({"aspect_ratio": ""}, "aspect_ratio", "", '"16:9"'),
        ({"aspect_ratio": 1.78}, "aspect_ratio", 1.78, '"16:9"'),
        ({"size": "1280*720"}, "size", "1280*720", '"1280x720"'),
        ({"size": "0x720"}, "size", "0x720", '"1280x720"'),
        ({"size": "1280x"}, "size", "1280x", '"1280x720"'),
        ({"size": 1280}, "size", 1280, '"1280x720"'),
        ({"generate_audio": "yes"}, "generate_audio", "yes", "True or False"),
        ({"generate_audio": 1}, "generate_audio", 1, "True or False"),
    ],
)
def test_universal_rules_reject(fields: dict[str, Any], field: str, value: object, hint: str) -> None:
    """Each universal rule rejects bad input for any model, naming the field, the value and what is allowed."""
    error = rejected(request(**fields))
    assert_names(error, field, value)
    assert hint in error.allowed


@pytest.mark.parametrize(
    ("key", "python_name"),
    [
        ("aspectRatio", "aspect_ratio"),
        ("aspect_ratio", "aspect_ratio"),
        ("Aspect-Ratio", "aspect_ratio"),
        ("generateAudio", "generate_audio"),
        ("generate_audio", "generate_audio"),
        ("model", "model"),
        ("prompt", "prompt"),
        ("image", "image"),
        ("length", "length"),
        ("seconds", "seconds"),
        ("resolution", "resolution"),
        ("size", "size"),
        ("mode", "mode"),
        ("Seed", "seed"),
    ],
)
def test_extra_rejects_known_field_names(key: str, python_name: str) -> None:
    """A known field smuggled through extra (any spelling) is rejected and the keyword is suggested."""
    error = rejected(request("google/veo3", extra={key: "x"}))
    assert_names(error, "extra", key)
    assert f"pass it as {python_name}=..." in error.allowed


@pytest.mark.parametrize("key", ["", "  ", 7, None])
def test_extra_rejects_blank_or_non_string_keys(key: object) -> None:
    """extra keys must be non-empty strings."""
    error = rejected(request(extra={key: 1}))
    assert_names(error, "extra", key)
    assert "non-empty strings" in error.allowed


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (object(), "object is not JSON"),
        ({1: "a"}, "dict key 1 is not a string"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        ({"a": [1, {2, 3}]}, "set is not JSON"),
        (b"bytes", "bytes is not JSON"),
        (_SELF_LIST, "contains itself"),
    ],
)
def test_extra_rejects_values_that_are_not_json(value: object, problem: str) -> None:
    """extra values are sent unchanged, so they must be plain JSON data."""
    error = rejected(request(extra={"negativePrompt": value}))
    assert error.field == "extra['negativePrompt']"
    assert error.value is value
    assert problem in error.allowed
    assert str(error).startswith("invalid extra['negativePrompt']=")


def test_invalid_request_error_is_a_value_error() -> None:
    """Callers can catch validation failures as plain ValueError."""
    with pytest.raises(ValueError, match="invalid prompt"):
        validate(request(prompt=""))


# -- per-model rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "fields", "field", "value", "allowed"),
    [
        # image-to-video-only models
        ("runway/runway-gen-3-turbo", {}, "image", None, "image-to-video only"),
        ("runway/runway-gen-4-turbo", {"length": 5}, "image", None, "image-to-video only"),
        ("kling-ai/kling-v2-1", {}, "image", None, "image-to-video only"),
        # durations
        ("google/veo3", {"length": 7}, "length", 7, "allowed values are 4, 6, 8"),
        ("google/veo2", {"length": 4}, "length", 4, "allowed values are 5, 8"),
        ("bytedance/seedance", {"image": PNG, "length": 6}, "length", 6, "allowed values are 5, 10"),
        ("minimax/minimax-hailuo-02", {"length": 5}, "length", 5, "allowed values are 6, 10"),
        ("kling-ai/kling-video-o1", {"length": 11}, "length", 11, "allowed values are 3, 4, 5, 6, 7, 8, 9, 10"),
        (
            "bytedance/seedance-1.5-pro",
            {"resolution": "720p", "length": 3},
            "length",
            3,
            "4, 5, 6, 7, 8, 9, 10, 11, 12",
        ),
        # resolutions
        ("google/veo3", {"resolution": "4k"}, "resolution", "4k", "allowed values are 720p, 1080p"),
        ("google/veo2", {"resolution": "1080p"}, "resolution", "1080p", "allowed values are 720p"),
        ("google/veo3.1", {"resolution": "8k"}, "resolution", "8k", "allowed values are 720p, 1080p, 4k"),
        ("bytedance/seedance-pro", {"resolution": "2k"}, "resolution", "2k", "480p, 720p, 1080p"),
        ("minimax/minimax-hailuo-02", {"resolution": "360p"}, "resolution", "360p", "480p, 512P, 720p, 768P, 1080p"),
        ("openai/sora-2-pro", {"resolution": "480p"}, "resolution", "480p", "allowed values are 720p, 1080p"),
        # resolution required for text-to-video
        ("bytedance/seedance", {}, "resolution", None, "required for text-to-video"),
        ("bytedance/seedance-pro", {"length": 5}, "resolution", None, "one of 480p, 720p, 1080p"),
        ("bytedance/seedance-1.5-pro", {}, "resolution", None, "required for text-to-video"),
        # aspect ratios
        ("google/veo3", {"aspect_ratio": "1:1"}, "aspect_ratio", "1:1", "allowed values are 9:16, 16:9"),
        ("runway/runway-gen-3-turbo", {"image": PNG, "aspect_ratio": "16:9"}, "aspect_ratio", "16:9", "3:5, 5:3"),
        ("kling-ai/kling-v1-6", {"aspect_ratio": "4:3"}, "aspect_ratio", "4:3", "1:1, 9:16, 16:9"),
        ("openai/sora-2", {"aspect_ratio": "1:1"}, "aspect_ratio", "1:1", "9:16, 16:9"),
        # modes
        ("kling-ai/kling-v1-6", {"mode": "ultra"}, "mode", "ultra", "allowed values are pro, std"),
        ("kling-ai/kling-video-o1", {"mode": "std"}, "mode", "std", "allowed values are pro"),
        # prompt length
        ("bytedance/seedance", {"image": PNG, "prompt": "x" * 1001}, "prompt", "x" * 1001, "at most 1000"),
        ("runway/runway-gen-4-turbo", {"image": PNG, "prompt": "y" * 1001}, "prompt", "y" * 1001, "at most 1000"),
        ("google/veo2", {"prompt": "z" * 2001}, "prompt", "z" * 2001, "at most 2000"),
        ("kling-ai/kling-v1-6", {"prompt": "w" * 2501}, "prompt", "w" * 2501, "at most 2500"),
        # audio
        ("google/veo2", {"generate_audio": True}, "generate_audio", True, "generates no audio"),
        ("kling-ai/kling-v2", {"generate_audio": True}, "generate_audio", True, "google/veo3"),
        # Sora: seconds, length and size
        ("openai/sora-2", {"seconds": 10}, "seconds", 10, "allowed values are 4, 8, 12"),
        ("openai/sora-2", {"length": 10}, "length", 10, "allowed values are 4, 8, 12"),
        ("openai/sora-2-pro", {"seconds": 8, "length": 8}, "seconds", 8, "not both"),
        ("openai/sora-2", {"size": "1920x1080"}, "size", "1920x1080", "1280x720, 1792x1024"),
        # seconds and size are Sora-only
        ("google/veo3", {"seconds": 8}, "seconds", 8, "use length"),
        (
            "kling-ai/kling-v1-6",
            {"seconds": 5},
            "seconds",
            5,
            "only for Sora models (openai/sora-2, openai/sora-2-pro)",
        ),
        ("pika/pika-v2-2", {"seconds": 5}, "seconds", 5, "use length"),
        ("kling-ai/kling-v2", {"size": "1280x720"}, "size", "1280x720", "use aspect_ratio"),
        ("x-ai/grok-imagine-video", {"size": "1280x720"}, "size", "1280x720", SORA_ONLY),
    ],
)
def test_model_rules_reject(model: str, fields: dict[str, Any], field: str, value: object, allowed: str) -> None:
    """Each per-model rule rejects what the model's spec excludes, naming field, value, model and what is allowed."""
    error = rejected(request(model, **fields))
    assert_names(error, field, value)
    assert error.model == model
    assert f"for model {model!r}" in str(error)
    assert allowed in error.allowed


def test_error_message_reads_well() -> None:
    """The message format is 'invalid <field>=<value> for model <id>: allowed values are ...'."""
    error = rejected(request("google/veo3", length=7))
    assert str(error) == "invalid length=7 for model 'google/veo3': allowed values are 4, 6, 8"


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        ("bytedance/seedance", {"prompt": "x" * 1000, "resolution": "480p"}),
        ("kling-ai/kling-v1-6", {"prompt": "x" * 2500}),
        ("bytedance/seedance", {"image": PNG}),
        ("bytedance/seedance-pro", {"image": PNG}),
        ("minimax/minimax-hailuo-02", {}),
        ("kling-ai/kling-v2", {"generate_audio": False}),
        ("openai/sora-2", {"generate_audio": True, "allow_retired": True}),
    ],
)
def test_model_rules_boundaries_pass(model: str, fields: dict[str, Any]) -> None:
    """Limits are inclusive, resolution is only required without an image, and audio=False is always fine."""
    validate(request(model, **fields))


@pytest.mark.parametrize("model", ["openai/sora-2", "openai/sora-2-pro"])
@pytest.mark.parametrize("duration_field", ["seconds", "length"])
@pytest.mark.parametrize("duration", [4, 8, 12])
def test_sora_accepts_seconds_or_length(model: str, duration_field: str, duration: int) -> None:
    """Sora takes 4, 8 or 12 as seconds (FastRouter docs) or as length (Pollo upstream)."""
    fields: dict[str, Any] = {duration_field: duration, "allow_retired": True}
    validate(request(model, **fields))


@pytest.mark.parametrize("size", ["720x1280", "1280x720", "1024x1792", "1792x1024"])
@pytest.mark.parametrize("model", ["openai/sora-2", "openai/sora-2-pro"])
def test_sora_accepts_documented_sizes(model: str, size: str) -> None:
    """Every size FastRouter documents for Sora is accepted for both Sora models."""
    validate(request(model, size=size, allow_retired=True))


def test_duration_required_rule() -> None:
    """A spec with duration_required rejects a request without its duration field (no table entry uses it yet)."""
    spec = attrs.evolve(MODELS["openai/sora-2"], duration_required=True)
    with pytest.raises(InvalidRequestError) as info:
        _check_against_spec(request("openai/sora-2", allow_retired=True), spec)
    assert_names(info.value, "seconds", None)
    assert "required for this model; allowed values are 4, 8, 12" in info.value.allowed
    _check_against_spec(request("openai/sora-2", length=4, allow_retired=True), spec)


# -- resolution case and aliases ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "resolution"),
    [
        ("minimax/minimax-hailuo-02", "768p"),
        ("minimax/minimax-hailuo-02", "768P"),
        ("minimax/minimax-hailuo-02", "512p"),
        ("minimax/minimax-hailuo-02", "1080P"),
        ("google/veo3", "1080P"),
        ("google/veo3.1", "4K"),
    ],
)
def test_resolution_is_matched_case_insensitively_and_left_unchanged(model: str, resolution: str) -> None:
    """'768p' and '768P' both pass (the docs disagree on case) and the request keeps the caller's spelling."""
    req = request(model, resolution=resolution)
    validate(req)
    assert req.resolution == resolution


@pytest.mark.parametrize(
    ("alias", "model_id"),
    [
        ("bytedance/seedance-1-5-pro", "bytedance/seedance-1.5-pro"),
        ("ByteDance/Seedance-1.5-Pro", "bytedance/seedance-1.5-pro"),
        ("GOOGLE/VEO3", "google/veo3"),
        ("google/veo3-1-fast", "google/veo3.1-fast"),
        ("kling-ai/kling-v1.6", "kling-ai/kling-v1-6"),
        ("openai/sora-2", "openai/sora-2"),
    ],
)
def test_find_model_resolves_aliases(alias: str, model_id: str) -> None:
    """find_model matches exact ids, case-insensitive ids and the '.'/'-' spellings FastRouter treats alike."""
    assert find_model(alias) is MODELS[model_id]


@pytest.mark.parametrize("model_id", ["acme/x", "google/veo3 ", "google/veo", "veo3", ""])
def test_find_model_returns_none_for_unknown_ids(model_id: str) -> None:
    """Ids that are not a known model or alias find nothing."""
    assert find_model(model_id) is None


def test_alias_gets_the_model_rules() -> None:
    """A request by alias is checked against the canonical model's spec; the error names the id as given."""
    error = rejected(request("bytedance/seedance-1-5-pro", resolution="720p", length=13))
    assert_names(error, "length", 13)
    assert error.model == "bytedance/seedance-1-5-pro"


# -- the table ---------------------------------------------------------------------------------------------


def test_models_holds_the_researched_and_newly_listed_ids() -> None:
    """MODELS is exactly the 28 researched video model ids plus the 8 FastRouter listed in December 2026."""
    assert set(MODELS) == RESEARCH_IDS | NEW_IDS
    assert len(MODELS) == 36


@pytest.mark.parametrize("model_id", sorted(RESEARCH_IDS | NEW_IDS))
def test_spec_is_consistent(model_id: str) -> None:
    """Every spec is keyed by its id, explains itself, and only Sora uses seconds and size."""
    spec = MODELS[model_id]
    assert isinstance(spec, ModelSpec)
    assert spec.id == model_id
    assert spec.name
    assert spec.provider
    assert spec.notes
    assert spec.image in {"required", "optional", "unknown"}
    is_sora = model_id.startswith("openai/sora-2")
    assert (spec.duration_field == "seconds") is is_sora
    assert (spec.sizes is not None) is is_sora
    assert find_model(model_id) is spec


@pytest.mark.parametrize("model_id", sorted(UNDOCUMENTED_IDS))
def test_undocumented_models_check_nothing_model_specific(model_id: str) -> None:
    """Models with no documented rules have every rule set to None and image support 'unknown'."""
    spec = MODELS[model_id]
    assert spec.image == "unknown"
    assert spec.durations is None
    assert spec.resolutions is None
    assert spec.aspect_ratios is None
    assert spec.sizes is None
    assert spec.modes is None
    assert spec.max_prompt_length is None
    assert spec.supports_audio is None
    assert not spec.duration_required
    assert not spec.resolution_required


def test_models_is_read_only() -> None:
    """MODELS cannot be modified by callers."""
    with pytest.raises(TypeError):
        MODELS["acme/x"] = MODELS["google/veo3"]  # type: ignore[index]


def test_normalised_ids_are_unique() -> None:
    """No two catalog ids collapse to the same alias key, so alias lookup is unambiguous."""
    keys = {model_id.lower().replace(".", "-") for model_id in MODELS}
    assert len(keys) == len(MODELS)


def test_wire_names_cover_every_request_field() -> None:
    """WIRE_NAMES maps each VideoRequest field except extra, camelCasing aspectRatio and generateAudio."""
    client_only = {"extra", "allow_retired", "cache_key"}  # cache_key is a header, never a body field
    assert set(WIRE_NAMES) == {f.name for f in attrs.fields(VideoRequest)} - client_only
    assert WIRE_NAMES["aspect_ratio"] == "aspectRatio"
    assert WIRE_NAMES["generate_audio"] == "generateAudio"
    assert all(WIRE_NAMES[name] == name for name in WIRE_NAMES if name not in {"aspect_ratio", "generate_audio"})


def test_every_sent_field_has_a_universal_check() -> None:
    """Each field of WIRE_NAMES, and nothing else, has the check every request gets whatever the model."""
    assert set(UNIVERSAL_CHECKS) == set(WIRE_NAMES)


def test_from_fields_accepts_python_and_wire_names() -> None:
    """VideoRequest.from_fields maps wire names to Python names and keeps the rest as extra."""
    request = VideoRequest.from_fields(
        {"model": "google/veo3", "prompt": "a cat", "aspectRatio": "16:9", "negativePrompt": "blur", "length": 8}
    )
    assert request.aspect_ratio == "16:9"
    assert request.length == 8
    assert dict(request.extra) == {"negativePrompt": "blur"}


def test_from_fields_merges_an_extra_mapping() -> None:
    """An "extra" mapping joins the other pass-through fields."""
    request = VideoRequest.from_fields({"model": "m/x", "prompt": "p", "extra": {"fps": 24}, "cfg": 1})
    assert dict(request.extra) == {"fps": 24, "cfg": 1}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"prompt": "p"}, "model"),
        ({"model": "m/x"}, "prompt"),
        ({"model": "m/x", "prompt": "p", "aspect_ratio": "1:1", "aspectRatio": "1:1"}, "aspect_ratio"),
        ({"model": "m/x", "prompt": "p", "extra": "fps=24"}, "extra"),
        (["model", "prompt"], "request"),
    ],
)
def test_from_fields_rejects_bad_mappings(fields: Any, field: str) -> None:
    """Missing, doubled or malformed fields are named in the error."""
    with pytest.raises(InvalidRequestError) as caught:
        VideoRequest.from_fields(fields)
    assert caught.value.field == field


def test_validate_request_is_public() -> None:
    """validate_request checks a request against the catalog without sending anything."""
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(VideoRequest(model="google/veo3", prompt="p", length=99))
    assert caught.value.field == "length"


# -- rules from the upstream per-model docs (December 2026) -------------------------------------------------


@pytest.mark.parametrize(
    ("model", "fields", "field", "value", "allowed"),
    [
        ("wanx/wan-v2-6", {"length": 1}, "length", 1, "allowed values are 2, 3, 4"),
        ("wanx/wan-v2-6", {"length": 16}, "length", 16, "13, 14, 15"),
        ("wanx/wan-v2-6", {"resolution": "480p"}, "resolution", "480p", "720P, 1080P"),
        ("wanx/wan-v2-6", {"aspect_ratio": "21:9"}, "aspect_ratio", "21:9", "1:1, 3:4, 4:3, 9:16, 16:9"),
        ("wanx/wan-v2-6", {"prompt": "x" * 2001}, "prompt", "x" * 2001, "at most 2000 characters"),
        ("vidu/vidu-q1", {"length": 4}, "length", 4, "allowed values are 5"),
        ("vidu/vidu-q1", {"resolution": "720p"}, "resolution", "720p", "allowed values are 1080p"),
        ("vidu/vidu-v2-0", {}, "image", None, "image-to-video only"),
        ("vidu/vidu-v2-0", {"image": PNG, "length": 5}, "length", 5, "allowed values are 4, 8"),
        ("pika/pika-v2-2", {"length": 7}, "length", 7, "allowed values are 5, 10"),
        ("pika/pika-v2-2", {"resolution": "480p"}, "resolution", "480p", "720p, 1080p"),
        ("pollo/pollo-v1-6", {"length": 8, "resolution": "720p"}, "length", 8, "allowed values are 5, 10"),
        ("pollo/pollo-v1-6", {"mode": "std", "resolution": "720p"}, "mode", "std", "allowed values are basic, pro"),
        ("pollo/pollo-v1-6", {}, "resolution", None, "required for text-to-video"),
        ("pollo/pollo-v1-6", {"prompt": "x" * 1001, "image": PNG}, "prompt", "x" * 1001, "at most 1000"),
        ("google/veo3", {"prompt": "x" * 2001}, "prompt", "x" * 2001, "at most 2000 characters"),
        ("google/veo3-fast", {"prompt": "x" * 2001}, "prompt", "x" * 2001, "at most 2000 characters"),
        ("google/veo3.1", {"prompt": "x" * 2001}, "prompt", "x" * 2001, "at most 2000 characters"),
        ("google/veo3.1-fast", {"prompt": "x" * 2001}, "prompt", "x" * 2001, "at most 2000 characters"),
        ("bytedance/dreamina-seedance-2-5", {"length": 31}, "length", 31, "at most 30 seconds"),
    ],
)
def test_upstream_rules_reject(model: str, fields: dict[str, Any], field: str, value: object, allowed: str) -> None:
    """The per-model rules now known from the upstream docs reject what they exclude, naming field and value."""
    error = rejected(request(model, **fields))
    assert_names(error, field, value)
    assert allowed in error.allowed


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        ("wanx/wan-v2-6", {"length": 2, "resolution": "720p", "aspect_ratio": "3:4", "generate_audio": True}),
        ("wanx/wan-v2-6", {"length": 15, "resolution": "1080P", "prompt": "x" * 2000}),
        ("vidu/vidu-q1", {"length": 5, "resolution": "1080p"}),
        ("vidu/vidu-v2-0", {"image": PNG, "length": 8}),
        ("pika/pika-v2-2", {"length": 10, "resolution": "720p"}),
        ("pollo/pollo-v1-6", {"image": PNG, "length": 5, "mode": "basic", "prompt": "x" * 1000}),
        ("pollo/pollo-v1-6", {"resolution": "720p", "mode": "pro"}),
        ("google/veo3.1", {"prompt": "x" * 2000}),
        ("bytedance/dreamina-seedance-2-5", {"length": 30, "generate_audio": True, "resolution": "2k"}),
        ("bytedance/seedance-2-mini", {"length": 99, "mode": "anything", "aspect_ratio": "7:3"}),
    ],
)
def test_upstream_rules_boundaries_pass(model: str, fields: dict[str, Any]) -> None:
    """Requests at the edges of the upstream limits pass; undocumented values stay unchecked."""
    validate(request(model, **fields))


def test_newly_listed_models_cite_their_source() -> None:
    """Each model added from FastRouter's December 2026 listing says where it comes from in its notes."""
    for model_id in NEW_IDS:
        assert "FastRouter" in MODELS[model_id].notes, model_id
    assert MODELS["bytedance/dreamina-seedance-2-5"].max_duration == 30
    assert MODELS["bytedance/dreamina-seedance-2-5"].supports_audio is True


# -- retired models ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["openai/sora-2", "openai/sora-2-pro", "OpenAI/Sora-2"])
def test_retired_model_is_refused(model: str) -> None:
    """A Sora request is refused before sending, naming the model, the retirement date and the opt-in."""
    error = rejected(request(model, seconds=4))
    assert_names(error, "model", model)
    assert "retired on 2026-09-24" in error.allowed
    assert "allow_retired=True" in error.allowed
    assert str(error).startswith(f"invalid model={model!r}: this model was retired")


def test_retired_model_passes_with_opt_in() -> None:
    """allow_retired=True lets a retired model through, and the flag is never sent to the server."""
    from fastrouter_async._protocol import build_submit_body  # noqa: PLC0415

    req = request("openai/sora-2", seconds=4, allow_retired=True)
    validate(req)
    assert "allow_retired" not in build_submit_body(req)
    assert "allow_retired" not in str(build_submit_body(req))


def test_retired_check_comes_after_other_rules() -> None:
    """A retired model's other mistakes are reported first (the retirement is then the last word)."""
    assert rejected(request("openai/sora-2", seconds=10)).field == "seconds"


def test_allow_retired_from_batch_fields() -> None:
    """A batch line's allow_retired is the request field, not an extra API parameter."""
    req = VideoRequest.from_fields({"model": "openai/sora-2", "prompt": "p", "allow_retired": True})
    assert req.allow_retired is True
    assert dict(req.extra) == {}
    validate(req)
    assert rejected(VideoRequest.from_fields({"model": "m/x", "prompt": "p", "allow_retired": "yes"})).field == (
        "allow_retired"
    )


def test_only_sora_is_retired() -> None:
    """Exactly the two Sora models carry a retirement date and a notice."""
    retired = {spec.id for spec in MODELS.values() if spec.retired is not None}
    assert retired == {"openai/sora-2", "openai/sora-2-pro"}
    assert all(MODELS[model_id].retired_notice for model_id in retired)


# -- prices ------------------------------------------------------------------------------------------------


def test_price_table_is_sourced_and_dated() -> None:
    """Every shipped price names its source and date; no price is shipped without one."""
    assert PRICES
    for model_id, price in PRICES.items():
        assert price.model == model_id
        assert model_id in MODELS
        assert price.source
        assert isinstance(price.as_of, datetime.date)
        assert price.usd > 0


def test_price_for_the_published_kling_example() -> None:
    """Kling V1.6 costs 0.21 USD for a 5 s video (FastRouter's docs); other lengths are unknown, not scaled."""
    price = price_for("kling-ai/kling-v1-6", 5)
    assert price is not None
    assert price.usd == pytest.approx(0.21)
    assert price.cost(5) == pytest.approx(0.21)
    assert price.as_of == datetime.date(2026, 9, 7)
    assert price_for("kling-ai/kling-v1-6", 10) is None
    assert price_for("Kling-AI/Kling-V1.6", None) is price


@pytest.mark.parametrize("model", ["google/veo3", "wanx/wan-v3-0", UNKNOWN])
def test_price_unknown_is_none(model: str) -> None:
    """A model with no published price has none: the lookup answers None, never a guess."""
    assert price_for(model, 5) is None


def test_listed_prices_win_and_per_second_scales() -> None:
    """A price from FastRouter's refreshed list wins over the shipped one; a per-second price covers any length."""
    listed = {
        "kling-ai/kling-v1-6": Price(
            model="kling-ai/kling-v1-6",
            usd=0.05,
            per="second",
            length=None,
            source="FastRouter GET /models",
            as_of=datetime.date(2026, 12, 4),
        )
    }
    price = price_for("kling-ai/kling-v1-6", 10, listed=listed)
    assert price is listed["kling-ai/kling-v1-6"]
    assert price.cost(10) == pytest.approx(0.5)
    assert price.cost(None) is None


@pytest.mark.parametrize("key", ["allow_retired", "allowRetired", "Allow-Retired"])
def test_allow_retired_in_extra_is_refused(key: str) -> None:
    """allow_retired given as an extra parameter is refused (it would be sent and not opt in), naming the fix."""
    error = rejected(request("openai/sora-2", extra={key: True}))
    assert_names(error, "extra", key)
    assert "VideoRequest(..., allow_retired=True)" in error.allowed


async def test_session_refuses_retired_model_before_sending(
    session: FastRouterSession, sim: FastRouterSimulator
) -> None:
    """submit() to a retired model raises before any request; with allow_retired=True the job is submitted."""
    with pytest.raises(InvalidRequestError) as info:
        await session.submit(model="openai/sora-2", prompt="a cat", seconds=4)
    assert info.value.field == "model"
    with pytest.raises(InvalidRequestError):
        await session.submit(model="openai/sora-2", prompt="a cat", seconds=4, allow_retired=True)
    assert sim.records.requests == []
    job = await session.submit(VideoRequest(model="openai/sora-2", prompt="a cat", seconds=4, allow_retired=True))
    assert job.task_id
    (submit,) = [r for r in sim.records.requests if r.route == "submit"]
    assert {k: v for k, v in submit.json.items() if k != "cache"} == {
        "model": "openai/sora-2",
        "prompt": "a cat",
        "seconds": 4,
    }


def test_a_model_spec_states_only_what_is_known() -> None:
    """A ModelSpec given only its id, name and provider documents no rule; value sets may be any iterable."""
    spec = ModelSpec(id="acme/video", name="Acme Video", provider="Acme")
    assert (spec.image, spec.duration_field, spec.duration_required, spec.resolution_required) == (
        "unknown",
        "length",
        False,
        False,
    )
    rules = (spec.durations, spec.resolutions, spec.aspect_ratios, spec.sizes, spec.modes, spec.max_prompt_length)
    assert rules == (None,) * 6
    assert spec.supports_audio is None
    assert ModelSpec(id="a/b", name="B", provider="A", durations=range(4, 7)).durations == frozenset({4, 5, 6})
