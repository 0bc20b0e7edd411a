"""FastRouter's wire protocol as pure functions: the requests, error answers and secrets.

Nothing here does I/O or imports aiohttp. Every function takes plain values
(status, headers, body bytes) so the whole protocol is tested table-driven with
the real payloads documented for FastRouter. How a 2xx answer to a submit or a poll
is read is in :mod:`._interpret`.

* the body of a submit names each request field as FastRouter does (``VideoRequest``'s
  :data:`~._models.WIRE_NAMES`), then ``extra`` unchanged;
* every answer is untrusted: JSON is decoded with bounded depth and no number overflow
  (``_untrusted``); messages taken from it are clipped, made printable and scrubbed of the key;
* error bodies may be ``{"error": {"message", "type", "code", "status"}}``,
  ``{"error": "text"}``, ``{"message": ...}``, ``{"detail": ...}`` or plain text.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import attrs

from ._cachekey import CACHE_BODY_FIELD, CACHE_KEY_HEADER, cache_body
from ._config import PollRoute, Secret
from ._errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    InsufficientCreditsError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnexpectedResponseError,
)
from ._models import WIRE_NAMES, SubmitEstimate, VideoRequest
from ._sniff import describe_bytes
from ._untrusted import UnreadableJSON, clip, dumps, finite_number, printable
from ._untrusted import loads as loads_untrusted

__all__ = [
    "RETRYABLE_STATUSES",
    "HttpCall",
    "Response",
    "SubmitAccepted",
    "body_preview",
    "build_submit_body",
    "decode_json",
    "error_for_status",
    "error_message",
    "is_retryable_status",
    "json_preview",
    "poll_call",
    "retry_after_seconds",
    "scrub",
    "scrub_json",
    "submit_call",
    "submit_estimate",
]

# Transient answers: a poll may always be retried on these (plus any 5xx); a submit only
# on 429, where the server refused before creating anything.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})

_REDACTED = "[redacted]"
_BINARY_KINDS = frozenset({"unknown binary", "gzip data", "a ZIP archive", "an image", "a PDF document"})
# Anything shaped like a FastRouter key (sk-v1-...) or a bearer credential is masked too,
# in case a server echoes a different or partial key.
_KEY_PATTERN = re.compile(r"sk-[A-Za-z0-9][A-Za-z0-9_\-]{7,}|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{8,}")


def is_retryable_status(status: int) -> bool:
    """True for answers worth retrying an idempotent request on: 408, 409, 425, 429 and 5xx."""
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


@attrs.frozen
class HttpCall:
    """A request to make: method, absolute URL and an optional JSON body."""

    method: str
    url: str
    json: Mapping[str, Any] | None = None
    encoded: bytes | None = attrs.field(default=None, eq=False, repr=False)
    """``json`` serialized once, for a call sent many times (a job's polls); the transport sends it as is."""
    follow_redirects: bool = attrs.field(default=True, kw_only=True)
    """``False`` for a paid submit: a redirect answer is handed back, never followed (the body is never re-sent)."""
    headers: Mapping[str, str] | None = attrs.field(default=None, kw_only=True, eq=False)
    """Extra request headers for this call (a submit's ``cache_key``); sent to the API origin only."""

    @classmethod
    def post_json(cls, url: str, body: Mapping[str, Any]) -> HttpCall:
        """A POST whose body is serialized now, once."""
        return cls("POST", url, body, json.dumps(body, separators=(",", ":")).encode())


@attrs.frozen(kw_only=True)
class Response:
    """An answer as the transport hands it over.

    ``headers`` have lower-case names. ``body`` is ``None`` when the body is media
    and was deliberately not read (``media`` is then true). The repr shows neither
    header values nor the body: a server may have echoed the key into them.
    """

    status: int
    headers: Mapping[str, str] = attrs.field(repr=lambda h: f"<{len(h)} headers>")
    body: bytes | None = attrs.field(repr=lambda b: "None" if b is None else f"<{len(b)} bytes>")
    media: bool = False

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@attrs.frozen(kw_only=True)
class SubmitAccepted:
    """What a successful create told us."""

    task_id: str
    model: str | None
    raw_status: str | None
    credits_used: float | None
    cached: bool
    payload: Mapping[str, Any] = attrs.field(repr=False)


# --- building requests -------------------------------------------------------------------


def build_submit_body(request: VideoRequest) -> dict[str, Any]:
    """The JSON body of ``POST /videos``: set fields under their wire names, then ``extra``."""
    body: dict[str, Any] = {}
    for field, wire in WIRE_NAMES.items():
        value = getattr(request, field)
        if value is not None:
            body[wire] = value
    for key, value in request.extra.items():
        body[key] = value
    return body


def submit_call(base_url: str, request: VideoRequest, *, cache_key: str | None = None, cache_ttl: int = 0) -> HttpCall:
    """The paid job-creation request; a redirect answer to it is never followed.

    With ``cache_key`` the request carries FastRouter's ``cache_key`` header and the body's ``cache``
    object (exact matching, entries kept ``cache_ttl`` seconds), so a repeat of it with the same key
    answers the same task, unbilled. The generation parameters are the same either way.
    """
    body = build_submit_body(request)
    if cache_key is None:
        return HttpCall("POST", f"{base_url}/videos", body, follow_redirects=False)
    body[CACHE_BODY_FIELD] = cache_body(cache_ttl)
    return HttpCall("POST", f"{base_url}/videos", body, follow_redirects=False, headers={CACHE_KEY_HEADER: cache_key})


def poll_call(route: PollRoute, base_url: str, task_id: str, model: str | None) -> HttpCall:
    """The request that asks for one task's status on the chosen route."""
    if route is PollRoute.VIDEOS:
        return HttpCall("GET", f"{base_url}/videos/{quote(task_id, safe='')}")
    body: dict[str, Any] = {"taskId": task_id}
    if model:
        body["model"] = model
    return HttpCall.post_json(f"{base_url}/{route.value}", body)


# --- reading answers ---------------------------------------------------------------------


def decode_json(response: Response, *, scrub_secret: Secret | str | None = None) -> Any:
    """The decoded JSON of a 2xx answer; UnexpectedResponseError when it is not JSON.

    Nothing is chained to the error: a decoder's exception would hold the raw body.
    """
    raw = response.body or b""
    try:
        return loads_untrusted(raw)
    except UnreadableJSON as exc:
        reason = exc.reason
    preview = body_preview(raw, scrub_secret)
    raise UnexpectedResponseError(
        f"the server answered HTTP {response.status} with an answer that cannot be read ({reason}): {preview}",
        body=preview,
        status_code=response.status,
    )


def body_preview(raw: bytes | None, secret: Secret | str | None, limit: int = 200) -> str:
    """A short, scrubbed, printable glimpse of a body for messages: its start, or what it looks like."""
    if not raw:
        return "an empty body"
    kind = describe_bytes(raw)
    if kind in _BINARY_KINDS or kind.endswith(" video"):
        return f"{kind}, {len(raw)} bytes"
    text = raw[:limit].decode("utf-8", "replace")
    shown = "".join(ch if ch.isprintable() else " " for ch in text)
    return repr(scrub(shown, secret) + ("..." if len(raw) > limit else ""))


def submit_estimate(payload: Mapping[str, Any]) -> SubmitEstimate | None:
    """The cost a create answer states in ``estimate_usage`` (``usage`` in older answers), or None.

    A cache hit states no credits (or 0): it is the same job, not a second cost.
    """
    for key in ("estimate_usage", "usage"):
        block = payload.get(key)
        if isinstance(block, Mapping):
            credits = finite_number(block.get("credits_used"))
            if credits is None:
                credits = finite_number(block.get("user_key_credits_used"))
            usd = finite_number(block.get("cost_usd"))
            if usd is None:
                usd = finite_number(block.get("costUsd"))
            return SubmitEstimate(credits=credits, usd=usd)
    return None


# --- errors ------------------------------------------------------------------------------

_STATUS_ERRORS: Mapping[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}

_DEFAULT_MESSAGES: Mapping[int, str] = {
    400: "bad request: invalid parameters, model or task id",
    401: "invalid credentials: the API key is invalid, disabled or expired",
    402: "insufficient credits: the account or key has run out of credits",
    403: "blocked: the input was flagged by content moderation, or the key may not use this model",
    404: "not found: invalid task id or expired result",
    429: "rate limited: too many requests",
    502: "model down or invalid upstream response",
}


def error_for_status(
    response: Response,
    *,
    method: str | None = None,
    url: str | None = None,
    scrub_secret: Secret | str | None = None,
    now: float | None = None,
) -> APIStatusError:
    """The APIStatusError subclass for a non-2xx answer, with the server's message."""
    status = response.status
    body: object = None
    message: str | None = None
    error_type = error_code = None
    if response.body:
        text = response.body.decode("utf-8", "replace")
        try:
            decoded = loads_untrusted(response.body)
        except UnreadableJSON:
            decoded = None
        if isinstance(decoded, Mapping):
            body = scrub_json(decoded, scrub_secret)
            message = error_message(decoded, scrub_secret, plain_message=True)
            error_type, error_code = (None if v is None else scrub(v, scrub_secret) for v in _error_type_code(decoded))
        elif isinstance(decoded, str):
            body = message = scrub(decoded, scrub_secret)
        else:
            body = scrub(text[:2000], scrub_secret)
            message = clip(scrub(printable(text.strip()[:300]), scrub_secret)) or None
    if not message:
        message = _DEFAULT_MESSAGES.get(status, "server error" if status >= 500 else "request failed")
    cls = _STATUS_ERRORS.get(status) or (ServerError if status >= 500 else APIStatusError)
    kwargs: dict[str, Any] = {
        "status_code": status,
        "body": body,
        "headers": {name: scrub(value, scrub_secret) for name, value in response.headers.items()},
        "method": method,
        "url": url,
        "error_type": error_type,
        "error_code": error_code,
    }
    if cls is RateLimitError:
        return RateLimitError(message, retry_after=retry_after_seconds(response.headers, now=now), **kwargs)
    return cls(message, **kwargs)


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The server's wait hint: ``retry-after-ms``, or ``retry-after`` as seconds or an HTTP date.

    ``now`` is the current Unix time, needed for the date form (``None``: date form ignored).
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = -1.0
        if 0 <= value < math.inf:
            return value
    raw = headers.get("retry-after")
    if raw is None or not raw.strip():
        return None
    try:
        seconds = float(raw.strip())
    except ValueError:
        seconds = None
    if seconds is not None:
        return seconds if 0 <= seconds < math.inf else None  # NaN and inf are no wait hints
    if now is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(raw.strip())
        return max(0.0, when.timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None


def error_message(payload: Mapping[str, Any], secret: Secret | str | None, *, plain_message: bool) -> str | None:
    """The server's error text: ``error`` (string or object), ``detail``, and, when
    ``plain_message`` (error statuses only), a top-level ``message``."""
    error = payload.get("error")
    if isinstance(error, str) and error.strip():
        return clip(scrub(error.strip(), secret))
    if isinstance(error, Mapping):
        for key in ("message", "detail", "msg"):
            value = error.get(key)
            if isinstance(value, str) and value.strip():
                return clip(scrub(value.strip(), secret))
        return scrub(dumps(error)[:300], secret)
    keys = ("detail", "message") if plain_message else ("detail",)
    for key in keys:
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return clip(scrub(value.strip(), secret))
    return None


def _error_type_code(payload: Mapping[str, Any]) -> tuple[str | None, str | None]:
    error = payload.get("error")
    if not isinstance(error, Mapping):
        return None, None
    etype = error.get("type")
    code = error.get("code")
    return (
        etype if isinstance(etype, str) else None,
        str(code) if isinstance(code, str | int) and not isinstance(code, bool) else None,
    )


# --- secrets -----------------------------------------------------------------------------


def scrub(text: str, secret: Secret | str | None) -> str:
    """``text`` with the API key (and anything key-shaped) replaced by ``[redacted]``.

    ``secret`` may be the :class:`Secret` itself: it is revealed here, in a function that
    never awaits, so the key is not left in a local variable of a suspended coroutine.
    """
    key = secret.reveal() if isinstance(secret, Secret) else secret
    if key:
        text = text.replace(key, _REDACTED)
    return _KEY_PATTERN.sub(_REDACTED, text)


def scrub_json(value: object, secret: Secret | str | None) -> Any:
    """A copy of a decoded JSON value with every string scrubbed."""
    if isinstance(value, str):
        return scrub(value, secret)
    if isinstance(value, Mapping):
        return {scrub(str(k), secret): scrub_json(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_json(v, secret) for v in value]
    return value


def json_preview(value: object, secret: Secret | str | None) -> str:
    """A decoded JSON value as short, scrubbed text for a message."""
    return scrub(dumps(value)[:200], secret)
