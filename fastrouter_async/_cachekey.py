"""Keys for FastRouter's response cache, used as an idempotency key for paid submits.

FastRouter has no idempotency header, but its documented response cache works as one: a create
request carrying the header ``cache_key`` is looked up by (account, cache key, endpoint, model,
prompt, every other parameter). A second identical request within the entry's lifetime answers the
**same task id** and is **not billed**, even while the first task is still running (for up to the
documented 30-minute "pending-job safety timeout"). So a submit whose answer was lost can be sent
again with the same key and body: a hit says "it had been created; here is its task id", a miss
says "the first one never arrived" and creates it now.

This module is the pure part: the constants, the keys, the ``cache`` body object, and reading a
create answer to tell a hit from a miss. No I/O, no asyncio.
"""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
from collections.abc import Mapping
from typing import Any, Final

from ._config import MAX_CACHE_TTL_S, MIN_CACHE_TTL_S, PENDING_TIMEOUT_S, check_integer
from ._errors import InvalidRequestError
from ._models import CACHE_KEY_ALLOWED, CACHE_KEY_MAX_LENGTH, validate_user_cache_key

__all__ = [
    "CACHE_BODY_FIELD",
    "CACHE_KEY_ALLOWED",
    "CACHE_KEY_HEADER",
    "CACHE_KEY_MAX_LENGTH",
    "DEFAULT_CACHE_TTL_S",
    "FILTER_ON_MODEL",
    "FILTER_ON_PROVIDER",
    "MAX_CACHE_TTL_S",
    "MIN_CACHE_TTL_S",
    "PENDING_TIMEOUT_S",
    "SIMILARITY_THRESHOLD",
    "cache_body",
    "fresh_cache_key",
    "is_cache_hit",
    "job_cache_key",
    "validate_user_cache_key",
]

CACHE_KEY_HEADER: Final = "cache_key"
# FastRouter's header name, underscore included (sent as it is; HTTP compares names case-insensitively).
CACHE_BODY_FIELD: Final = "cache"
# The body object with the cache settings; FastRouter reads it only together with the header.

# CACHE_KEY_MAX_LENGTH, CACHE_KEY_ALLOWED and validate_user_cache_key live with VideoRequest (its
# cache_key field checks them); the lifetimes MIN/MAX_CACHE_TTL_S and PENDING_TIMEOUT_S with the
# policies in _config that check against them. They are named here too, the cache's whole vocabulary.

DEFAULT_CACHE_TTL_S: Final = 86_400
# One day. It must outlive the replay window (20 minutes) and the pending timeout (30 minutes) by a wide
# margin, so a replay never misses because the entry expired; a day also covers a crashed batch re-run
# later the same day, whose finished jobs are then found again instead of paid again. It stays well
# inside FastRouter's 7-day maximum, and a long lifetime cannot hand a task to a different request:
# each key names one intended job only.
SIMILARITY_THRESHOLD: Final = 1.0
# Exact matching of the prompt: below 1.0 FastRouter matches prompts by meaning, and a different job
# could then be answered with another job's task.
FILTER_ON_MODEL: Final = True
# The model is part of the lookup: a request for one model is never answered with another model's task.
FILTER_ON_PROVIDER: Final = False
# FastRouter's default: the provider FastRouter routes to is its choice, not part of what was asked.

_KEY_VERSION: Final = "fra1"
# Prefixes every key this client makes, so a change in how keys are derived never meets an old entry.


def job_cache_key(*, namespace: str, fingerprint: str, occurrence: int) -> str:
    """The deterministic key of one intended job: ``fra1:j:`` + base32 of a SHA-256 over the three parts.

    For a batch: ``namespace`` is the journal's run id, ``fingerprint`` the request's fingerprint and
    ``occurrence`` which copy of that request it is (0 for the first), so two identical requests in one
    batch get different keys, and the same job of the same run always gets the same one.
    """
    if not isinstance(namespace, str) or not namespace:
        raise InvalidRequestError("namespace", namespace, "a non-empty string (the batch's run id)")
    if not isinstance(fingerprint, str) or not fingerprint:
        raise InvalidRequestError("fingerprint", fingerprint, "a non-empty string (the request's fingerprint)")
    check_integer("occurrence", occurrence, "an integer >= 0", at_least=0)
    # Each part is length-prefixed, so no two different triples can hash the same text.
    text = f"{len(namespace)}:{namespace}|{len(fingerprint)}:{fingerprint}|{occurrence}"
    return f"{_KEY_VERSION}:j:{_b32(hashlib.sha256(text.encode('utf-8')).digest())}"


def fresh_cache_key() -> str:
    """A new random key (``fra1:r:`` + 160 random bits in base32), for a submit with no job identity."""
    return f"{_KEY_VERSION}:r:{_b32(secrets.token_bytes(20))}"


def cache_body(ttl_s: int) -> dict[str, Any]:
    """The body's ``cache`` object: exact matching, filtered on the model, entries kept ``ttl_s`` seconds."""
    allowed = f"an integer number of seconds from {MIN_CACHE_TTL_S} to {MAX_CACHE_TTL_S} (7 days)"
    check_integer("cache_ttl", ttl_s, allowed, at_least=MIN_CACHE_TTL_S, at_most=MAX_CACHE_TTL_S)
    return {
        "expiration_time": ttl_s,
        "filter_on_model": FILTER_ON_MODEL,
        "filter_on_provider": FILTER_ON_PROVIDER,
        "similarity_threshold": SIMILARITY_THRESHOLD,
    }


def is_cache_hit(payload: object) -> bool | None:
    """Whether a parsed create answer was a cache hit: True, False, or None when it cannot tell.

    - top-level ``cached: true`` (FastRouter's newer docs) is a hit;
    - ``estimate_usage.provider == ""`` with credits zero or absent (the older docs' way) is a hit;
    - credits present and above zero were charged: a miss;
    - anything else (no usage, a shape never seen) is unknown.

    ``usage`` is read when ``estimate_usage`` is absent (an older create answer). Any JSON value is
    accepted; nothing here raises.
    """
    if not isinstance(payload, Mapping):
        return None
    if payload.get("cached") is True:
        return True
    usage = payload.get("estimate_usage")
    if not isinstance(usage, Mapping):
        usage = payload.get("usage")
    if not isinstance(usage, Mapping):
        return None
    credits = [_number(usage.get(name)) for name in ("credits_used", "user_key_credits_used") if name in usage]
    if any(c is not None and c > 0 for c in credits):
        return False
    no_charge = all(c == 0 for c in credits)  # absent (an empty list) or all zero; garbage is not "no charge"
    if usage.get("provider") == "" and no_charge:
        return True
    return None


def _number(value: object) -> float | None:
    """A finite JSON number (not a bool), or a numeric string such as ``"0.21"``; else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):  # not a number, or an integer too large for a float
        return None
    return number if math.isfinite(number) else None


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()
