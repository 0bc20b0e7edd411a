"""Response-cache keys: deterministic job keys, random fresh keys, the cache object, and reading hits."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest

from fastrouter_async import InvalidRequestError
from fastrouter_async._cachekey import (
    CACHE_BODY_FIELD,
    CACHE_KEY_HEADER,
    CACHE_KEY_MAX_LENGTH,
    DEFAULT_CACHE_TTL_S,
    MAX_CACHE_TTL_S,
    MIN_CACHE_TTL_S,
    PENDING_TIMEOUT_S,
    SIMILARITY_THRESHOLD,
    cache_body,
    fresh_cache_key,
    is_cache_hit,
    job_cache_key,
    validate_user_cache_key,
)

ALLOWED = re.compile(r"[A-Za-z0-9_\-:.]{1,128}")
REPLAY_WINDOW_S = 20 * 60  # the replay window the submits will use


def test_constants_match_the_documented_cache() -> None:
    """The header, body field, limits and exact matching are FastRouter's documented ones."""
    assert (CACHE_KEY_HEADER, CACHE_BODY_FIELD, CACHE_KEY_MAX_LENGTH) == ("cache_key", "cache", 128)
    assert (MIN_CACHE_TTL_S, MAX_CACHE_TTL_S, PENDING_TIMEOUT_S) == (60, 604_800, 1800)
    assert SIMILARITY_THRESHOLD == 1.0


def test_default_ttl_covers_the_replay_window_and_pending_timeout() -> None:
    """The default lifetime outlives the replay window and the pending timeout, inside the documented range."""
    assert REPLAY_WINDOW_S < PENDING_TIMEOUT_S < DEFAULT_CACHE_TTL_S <= MAX_CACHE_TTL_S
    assert cache_body(DEFAULT_CACHE_TTL_S)["expiration_time"] == 86_400


def test_job_key_is_deterministic_and_allowed() -> None:
    """The same run, fingerprint and occurrence always give the same key, in FastRouter's charset and length."""
    key = job_cache_key(namespace="run-1", fingerprint="abc", occurrence=0)
    assert key == job_cache_key(namespace="run-1", fingerprint="abc", occurrence=0)
    assert ALLOWED.fullmatch(key)
    assert key.startswith("fra1:j:")
    assert len(key) == len("fra1:j:") + 52  # 256 bits in unpadded base32


def test_job_key_pins_its_derivation() -> None:
    """The derivation is pinned: a change would make a re-run miss the keys of its own earlier jobs."""
    digest = hashlib.sha256(b"5:run-1|3:abc|0").digest()
    expected = "fra1:j:" + base64.b32encode(digest).decode().rstrip("=").lower()
    assert job_cache_key(namespace="run-1", fingerprint="abc", occurrence=0) == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("run-1", "abc", 0), ("run-2", "abc", 0)),
        (("run-1", "abc", 0), ("run-1", "abd", 0)),
        (("run-1", "abc", 0), ("run-1", "abc", 1)),
        (("ab", "c", 0), ("a", "bc", 0)),  # no ambiguity where one part ends and the next begins
        (("a|1:b", "c", 0), ("a", "b|1:c", 0)),
        (("run", "fp", 1), ("run", "fp", 10)),
    ],
)
def test_job_keys_differ_for_different_jobs(a: tuple[str, str, int], b: tuple[str, str, int]) -> None:
    """Any change of run id, fingerprint or occurrence gives another key."""
    ka = job_cache_key(namespace=a[0], fingerprint=a[1], occurrence=a[2])
    kb = job_cache_key(namespace=b[0], fingerprint=b[1], occurrence=b[2])
    assert ka != kb


def test_job_key_of_long_and_unusual_parts_stays_allowed() -> None:
    """Parts of any length and alphabet still give a key of at most 128 allowed characters."""
    key = job_cache_key(namespace="ü" * 500, fingerprint="\x00 /?" * 300, occurrence=10**30)
    assert ALLOWED.fullmatch(key)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"namespace": "", "fingerprint": "f", "occurrence": 0}, "namespace"),
        ({"namespace": 1, "fingerprint": "f", "occurrence": 0}, "namespace"),
        ({"namespace": "n", "fingerprint": "", "occurrence": 0}, "fingerprint"),
        ({"namespace": "n", "fingerprint": None, "occurrence": 0}, "fingerprint"),
        ({"namespace": "n", "fingerprint": "f", "occurrence": -1}, "occurrence"),
        ({"namespace": "n", "fingerprint": "f", "occurrence": True}, "occurrence"),
        ({"namespace": "n", "fingerprint": "f", "occurrence": 1.0}, "occurrence"),
    ],
)
def test_job_key_refuses_bad_parts(kwargs: dict[str, Any], field: str) -> None:
    """A missing or wrongly typed part is an InvalidRequestError naming it."""
    with pytest.raises(InvalidRequestError) as caught:
        job_cache_key(**kwargs)
    assert caught.value.field == field


def test_fresh_keys_are_random_and_allowed() -> None:
    """Fresh keys never repeat and fit FastRouter's charset and length."""
    keys = {fresh_cache_key() for _ in range(1000)}
    assert len(keys) == 1000
    for key in keys:
        assert ALLOWED.fullmatch(key)
        assert key.startswith("fra1:r:")
        assert len(key) == len("fra1:r:") + 32  # 160 random bits


@pytest.mark.parametrize(
    "value",
    ["a", "my-app:batch_7.v2", "A" * 128, "fra1:j:abc", "0", "..", "-_:."],
)
def test_user_key_accepted(value: str) -> None:
    """Keys of 1 to 128 allowed characters are returned unchanged."""
    assert validate_user_cache_key(value) == value


@pytest.mark.parametrize(
    "value",
    ["", "A" * 129, "has space", "slash/", "ümlaut", "tab\t", "new\nline", "semi;colon", "a*", None, 5, b"bytes"],
)
def test_user_key_refused(value: object) -> None:
    """Anything else raises InvalidRequestError naming cache_key, the value and what is allowed."""
    with pytest.raises(InvalidRequestError) as caught:
        validate_user_cache_key(value)
    error = caught.value
    assert (error.field, error.value) == ("cache_key", value)
    assert "128" in error.allowed
    assert "cache_key" in str(error)


def test_cache_body_asks_for_exact_matching() -> None:
    """The cache object sets the lifetime, exact prompt matching and model filtering."""
    assert cache_body(3600) == {
        "expiration_time": 3600,
        "filter_on_model": True,
        "filter_on_provider": False,
        "similarity_threshold": 1.0,
    }


@pytest.mark.parametrize("ttl", [59, 604_801, 0, -1, 60.0, True, "3600", None])
def test_cache_body_refuses_ttl_outside_the_documented_range(ttl: object) -> None:
    """A lifetime that is not an integer from 60 s to 7 days is refused before anything is sent."""
    with pytest.raises(InvalidRequestError) as caught:
        cache_body(ttl)  # type: ignore[arg-type]
    assert caught.value.field == "cache_ttl"
    assert "604800" in caught.value.allowed


@pytest.mark.parametrize("ttl", [60, 604_800])
def test_cache_body_accepts_the_range_ends(ttl: int) -> None:
    """Both ends of the documented range are accepted."""
    assert cache_body(ttl)["expiration_time"] == ttl


MISS_USAGE: dict[str, Any] = {
    "chat_id": "fr_abdbddc2-36f4-4b6f-b014-ecf60ed2cb9f",
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "total_tokens": 0,
    "user_key_credits_used": 0.21,
    "credits_used": 0.21,
    "provider": "pollo",
}
MISS: dict[str, Any] = {
    "chat_id": "fr_abdbddc2-36f4-4b6f-b014-ecf60ed2cb9f",
    "model": "kling-ai/kling-v1-6",
    "code": "success",
    "message": "Video generation started",
    "data": {"taskId": "fr_01M1Y389KN0KN28AT3733Q505H", "status": "processing"},
    "estimate_usage": MISS_USAGE,
}  # FastRouter's documented cache MISS answer
NEW_HIT = {
    **MISS,
    "cached": True,
    "estimate_usage": {"chat_id": "fr_x", "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
}
OLD_HIT = {
    **MISS,
    "estimate_usage": {**MISS_USAGE, "credits_used": 0, "user_key_credits_used": 0, "provider": ""},
}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (MISS, False),
        (NEW_HIT, True),
        (OLD_HIT, True),
        ({"cached": True}, True),
        ({"cached": True, "estimate_usage": {"credits_used": 0.21}}, True),  # the explicit flag wins
        ({"cached": "true"}, None),  # only a JSON true counts
        ({"cached": False}, None),
        ({"cached": False, "estimate_usage": {"credits_used": 0.5}}, False),
        ({"estimate_usage": {"provider": ""}}, True),  # no credit fields at all
        ({"estimate_usage": {"provider": "", "credits_used": 0.0}}, True),
        ({"estimate_usage": {"provider": "", "credits_used": "0"}}, True),
        ({"estimate_usage": {"provider": "", "credits_used": None}}, None),  # not a number: cannot tell
        ({"estimate_usage": {"provider": "", "credits_used": 0.1}}, False),
        ({"estimate_usage": {"provider": "pollo", "credits_used": 0}}, None),
        ({"estimate_usage": {"provider": "pollo"}}, None),
        ({"estimate_usage": {"credits_used": "0.192"}}, False),
        ({"estimate_usage": {"user_key_credits_used": 0.3}}, False),
        ({"estimate_usage": {"credits_used": float("nan")}}, None),
        ({"estimate_usage": {"credits_used": 10**400}}, None),
        ({"estimate_usage": {"credits_used": True}}, None),
        ({"usage": {"credits_used": 0.21}}, False),  # the older create shape
        ({"usage": {"provider": "", "credits_used": 0}}, True),
        ({"estimate_usage": "garbage", "usage": {"credits_used": 1}}, False),
        ({"data": {"taskId": "fr_1"}}, None),
        ({}, None),
        ([], None),
        (None, None),
        ("cached", None),
        (42, None),
        ({"estimate_usage": [1, 2]}, None),
    ],
)
def test_is_cache_hit_table(payload: object, expected: bool | None) -> None:
    """Hits by either documented sign, misses by a charge, and unknown for everything else."""
    assert is_cache_hit(payload) is expected
