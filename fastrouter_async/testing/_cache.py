"""FastRouter's response cache for video creates, as documented, for the simulator.

FastRouter's page "Response caching: images and video (async)" describes it; this module models it:

- It is off unless the create request has the header ``cache_key`` (1 to 128 characters of
  ``[A-Za-z0-9_\\-:.]``; anything else is a 400). The body may carry ``"cache": {"expiration_time":
  60..604800 (default 57600), "filter_on_model": true, "filter_on_provider": false,
  "similarity_threshold": 0..1}``; out-of-range or unknown settings are a 400. ``cache`` is not a
  generation parameter.
- A request is looked up by the account (the Bearer token), the ``cache_key``, the endpoint, the model
  (when ``filter_on_model``), the prompt, and every other body field exactly (JSON values compared as
  JSON: an omitted ``seed`` differs from ``"seed": 0``), except ``cache``, ``callback_url`` and ``user``.
  No other header counts (the tracing headers ``traceparent``, ``x-span-id``, ``x-span-name``,
  ``x-trace-id`` included).
- Differences from FastRouter, all on the strict side: prompts always match exactly (FastRouter
  matches by meaning below a ``similarity_threshold`` of 1.0; here any threshold means exact); the
  model is compared as sent (no aliases); reference images are compared by their URL, not their
  content; ``filter_on_provider`` is accepted and changes nothing (there is one provider).
- An entry lives ``expiration_time`` seconds from the request that created it, on the simulator's
  clock. Its task is *pending* until ``created + plan.duration`` (the ``finishes_at`` of the
  timeline) or until a poll found it done, whichever is first. A pending task is matched for
  ``pending_timeout`` seconds (FastRouter's "pending-job safety timeout", 30 minutes); a task that
  only finished after that was dropped by the timeout and is never matched. A task that failed is
  never matched: FastRouter caches successful results, so the request is a miss and runs again.
- A hit answers the original task id, ``data.status: "processing"`` and ``message: "Video generation
  started"``, creates no job and is not billed. ``"cached"`` style (FastRouter's newer docs): top-level
  ``cached: true`` and no credit fields in ``estimate_usage``; ``"legacy"`` style (the older docs): no
  ``cached``, ``credits_used: 0`` and ``provider: ""``. A miss creates a job, billed as any other.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from . import _payloads
from ._records import CacheHit

if TYPE_CHECKING:
    from ._records import SimulatedJob

__all__ = [
    "CACHE_KEY_HEADER",
    "DEFAULT_EXPIRATION",
    "DEFAULT_PENDING_TIMEOUT",
    "CacheHit",
    "CacheHitStyle",
    "CacheRequest",
    "CacheSettings",
    "InvalidCacheRequest",
    "ResponseCache",
    "by_cache_key",
    "hit_body",
    "job_matches",
    "read_request",
]

CACHE_KEY_HEADER: Final = "cache_key"
_CACHE_KEY = re.compile(r"[A-Za-z0-9_\-:.]{1,128}")
DEFAULT_EXPIRATION: Final = 57_600  # 16 hours: FastRouter's default lifetime for media entries
MIN_EXPIRATION: Final = 60
MAX_EXPIRATION: Final = 604_800  # 7 days: FastRouter's maximum for media
DEFAULT_PENDING_TIMEOUT: Final = 1800.0  # FastRouter's "pending-job safety timeout": 30 minutes
ENDPOINT: Final = "videos"  # entries never cross endpoints
UNKEYED_FIELDS: Final = frozenset({"cache", "callback_url", "user"})  # body fields that are not part of the key
FAILED_OUTCOMES: Final = frozenset({"failed", "failed_generation"})

CacheHitStyle = Literal["cached", "legacy"]


class InvalidCacheRequest(Exception):
    """The ``cache_key`` header or the ``cache`` object is not acceptable."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@attrs.frozen(kw_only=True)
class CacheSettings:
    """The body's ``cache`` object, defaults filled in."""

    expiration_time: int = DEFAULT_EXPIRATION
    filter_on_model: bool = True
    filter_on_provider: bool = False
    similarity_threshold: float = 1.0


@attrs.frozen(kw_only=True)
class CacheRequest:
    """A create request that asked for caching: its key, its settings and what it is looked up by."""

    cache_key: str
    settings: CacheSettings
    lookup: str
    """A SHA-256 over every part of the lookup key (the account's token is never kept in clear)."""


def read_request(headers: Mapping[str, str], body: Mapping[str, Any], *, account: str) -> CacheRequest | None:
    """The cache request of a create (``None`` without the header); InvalidCacheRequest if it is refused.

    ``body`` is an accepted create body (a JSON object with ``model`` and ``prompt``).
    """
    cache_key = headers.get(CACHE_KEY_HEADER)
    if cache_key is None:
        return None
    if _CACHE_KEY.fullmatch(cache_key) is None:
        raise InvalidCacheRequest(
            f"Bad Request - invalid 'cache_key' header ({len(cache_key)} characters): "
            "it must be 1 to 128 characters of [A-Za-z0-9_\\-:.]",
            code="invalid_cache_key",
        )
    settings = _settings(body.get("cache", {}))
    params = {k: v for k, v in body.items() if k not in UNKEYED_FIELDS}
    model, prompt = params.pop("model"), params.pop("prompt")
    parts = [account, cache_key, ENDPOINT, model if settings.filter_on_model else None, prompt, params]
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    lookup = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return CacheRequest(cache_key=cache_key, settings=settings, lookup=lookup)


def _settings(raw: object) -> CacheSettings:
    if not isinstance(raw, Mapping):
        raise _invalid("'cache' must be an object")
    unknown = sorted(set(raw) - {"expiration_time", "filter_on_model", "filter_on_provider", "similarity_threshold"})
    if unknown:
        raise _invalid(
            f"unknown 'cache' settings {unknown}: expected expiration_time, filter_on_model, "
            "filter_on_provider, similarity_threshold"
        )
    expiration = raw.get("expiration_time", DEFAULT_EXPIRATION)
    if isinstance(expiration, bool) or not isinstance(expiration, int):
        raise _invalid(f"'cache.expiration_time' must be an integer number of seconds, not {expiration!r}")
    if not MIN_EXPIRATION <= expiration <= MAX_EXPIRATION:
        raise _invalid(
            f"'cache.expiration_time' must be from {MIN_EXPIRATION} to {MAX_EXPIRATION} seconds, not {expiration}"
        )
    flags = {}
    for name, default in (("filter_on_model", True), ("filter_on_provider", False)):
        flags[name] = raw.get(name, default)
        if not isinstance(flags[name], bool):
            raise _invalid(f"'cache.{name}' must be true or false, not {flags[name]!r}")
    threshold = raw.get("similarity_threshold", 1.0)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise _invalid(f"'cache.similarity_threshold' must be a number from 0 to 1, not {threshold!r}")
    return CacheSettings(
        expiration_time=expiration,
        filter_on_model=flags["filter_on_model"],
        filter_on_provider=flags["filter_on_provider"],
        similarity_threshold=float(threshold),
    )


def _invalid(what: str) -> InvalidCacheRequest:
    return InvalidCacheRequest(f"Bad Request - {what}", code="invalid_cache_config")


@attrs.define(kw_only=True)
class _Entry:
    task_id: str
    created: float
    expires_at: float


@attrs.define(eq=False)
class ResponseCache:
    """The entries of one simulator: lookup key -> the task it answers, with its lifetime."""

    _entries: dict[str, _Entry] = attrs.field(factory=dict, init=False)

    def find(
        self, request: CacheRequest, jobs: Mapping[str, SimulatedJob], *, now: float, pending_timeout: float
    ) -> SimulatedJob | None:
        """The job a request is answered with (a hit), or ``None`` (a miss; a dead entry is forgotten)."""
        entry = self._entries.get(request.lookup)
        if entry is None:
            return None
        job = jobs.get(entry.task_id)
        if job is None or not _answers(entry, job, now=now, pending_timeout=pending_timeout):
            del self._entries[request.lookup]
            return None
        return job

    def store(self, request: CacheRequest, job: SimulatedJob, *, now: float) -> None:
        """Remember ``job`` as the answer to ``request`` for its settings' lifetime."""
        self._entries[request.lookup] = _Entry(
            task_id=job.task_id, created=now, expires_at=now + request.settings.expiration_time
        )

    def live(self, jobs: Mapping[str, SimulatedJob], *, now: float, pending_timeout: float) -> int:
        """How many entries would answer a request now."""
        return sum(
            1
            for entry in self._entries.values()
            if entry.task_id in jobs and _answers(entry, jobs[entry.task_id], now=now, pending_timeout=pending_timeout)
        )


def _answers(entry: _Entry, job: SimulatedJob, *, now: float, pending_timeout: float) -> bool:
    """Whether ``entry`` still answers a request at ``now`` (see the module docstring for the rules)."""
    if now >= entry.expires_at:
        return False
    finished_at = job.created + job.plan.duration  # inf for a job that never ends
    if job.done_at is not None:
        finished_at = min(finished_at, job.done_at)
    if now < finished_at:  # still pending
        return now - entry.created < pending_timeout
    if finished_at - entry.created >= pending_timeout:
        return False  # the safety timeout dropped the pending entry before the task finished
    return job.plan.outcome not in FAILED_OUTCOMES


def hit_body(*, task_id: str, model: str, style: CacheHitStyle) -> dict[str, Any]:
    """The 200 answer of a cache hit: the original task id, still "processing", no charge."""
    body = _payloads.create_body(task_id=task_id, model=model, cost_usd=0)
    usage = body["estimate_usage"]
    if style == "cached":
        body["cached"] = True
        del usage["credits_used"], usage["user_key_credits_used"]
    else:
        usage["provider"] = ""
    return body


def by_cache_key(billed: Iterable[SimulatedJob], hits: Iterable[CacheHit]) -> dict[str, dict[str, int]]:
    """Per ``cache_key``: the billed jobs it created and the hits it got (jobs without a key left out)."""
    keys: dict[str, dict[str, int]] = {}
    for job in billed:
        if job.cache_key is not None:
            keys.setdefault(job.cache_key, {"billed": 0, "hits": 0})["billed"] += 1
    for hit in hits:
        keys.setdefault(hit.cache_key, {"billed": 0, "hits": 0})["hits"] += 1
    return keys


def job_matches(
    job: SimulatedJob,
    *,
    prompt: str | None,
    model: str | None,
    cache_key: str | None,
    where: Callable[[Mapping[str, Any]], bool] | None,
) -> bool:
    """Whether ``job`` passes every filter given (``None`` filters nothing)."""
    return (
        (prompt is None or job.prompt == prompt)
        and (model is None or job.model == model)
        and (cache_key is None or job.cache_key == cache_key)
        and (where is None or where(job.body))
    )
