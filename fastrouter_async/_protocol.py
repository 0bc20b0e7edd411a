"""FastRouter's wire protocol as pure functions: build request bodies, interpret answers.

Nothing here does I/O or imports aiohttp. Every function takes plain values
(status, headers, body bytes) so the whole protocol is tested table-driven with
the real payloads documented for FastRouter.

Interpretation rules (defensive, because the API has changed shape several times):

* task id: ``data.taskId``, then ``data.task_id``, ``data.id``, top-level ``taskId``,
  ``task_id``, ``id``; always an opaque string.
* status words are compared case-insensitively: ``succeed``/``succeeded``/``success``/
  ``completed``/``complete`` are done; ``failed``/``fail``/``error``/``cancelled``/
  ``canceled``/``expired`` are failed; anything else (``processing``, ``waiting``,
  ``queued``, ...) is still running. ``expired`` counts as failed because an expired
  task never finishes, and treating it as running would poll until a deadline.
* without ``data.status`` the state is derived from ``data.generations[].status``:
  any failed generation fails the job; all succeeded means done.
* HTTP 200 with a top-level ``error`` (string or object) or ``code: "failed"`` is a
  failed job, not a transport error.
* success without any URL or inline video is an error, never a success.
* URL priority: ``fastrouter_assets.urls`` (FastRouter's hosted copy, kept 30 days) when
  that block is ready, then ``data.generations[].url`` (provider CDN, expires sooner),
  then undocumented fallbacks (``data.url``, ``url``, ``video_url``).
* a body that is the video itself is a finished job only on positive evidence: a media
  content type (``video/*``, ``application/octet-stream``) AND the bytes of a video container
  (the transport sniffs them, see ``_sniff``). A ``202``/``204`` without a body is "still
  running"; any other answer that is neither JSON nor a video is an unexpected answer.
* every answer is untrusted: JSON is decoded with bounded depth and no number overflow
  (``_untrusted``), numbers must be finite, a task id must be a printable string of at most
  256 characters, a URL must parse.
* error bodies may be ``{"error": {"message", "type", "code", "status"}}``,
  ``{"error": "text"}``, ``{"message": ...}``, ``{"detail": ...}`` or plain text.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, TypeGuard
from urllib.parse import quote, urlsplit

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
from ._models import JobState, JobStatus, ResultSource, SubmitEstimate, VideoRequest
from ._sniff import describe_bytes
from ._untrusted import UnreadableJSON, is_usable_task_id
from ._untrusted import loads as loads_untrusted

__all__ = [
    "FAILURE_WORDS",
    "RETRYABLE_STATUSES",
    "SUCCESS_WORDS",
    "WIRE_NAMES",
    "HttpCall",
    "Response",
    "SubmitAccepted",
    "body_preview",
    "build_submit_body",
    "classify_status_word",
    "decode_json",
    "error_for_status",
    "extract_task_id",
    "extract_urls",
    "inline_video_base64",
    "is_media_response",
    "is_retryable_status",
    "parse_poll_response",
    "parse_submit_response",
    "poll_call",
    "retry_after_seconds",
    "scrub",
    "scrub_json",
    "submit_call",
    "submit_estimate",
    "usable_task_id",
]

SUCCESS_WORDS = frozenset({"succeed", "succeeded", "success", "completed", "complete"})
FAILURE_WORDS = frozenset({"failed", "fail", "error", "cancelled", "canceled", "expired"})

# Transient answers: a poll may always be retried on these (plus any 5xx); a submit only
# on 429, where the server refused before creating anything.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})


def is_retryable_status(status: int) -> bool:
    """True for answers worth retrying an idempotent request on: 408, 409, 425, 429 and 5xx."""
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


WIRE_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "model": "model",
        "prompt": "prompt",
        "image": "image",
        "length": "length",
        "seconds": "seconds",
        "resolution": "resolution",
        "aspect_ratio": "aspectRatio",
        "size": "size",
        "mode": "mode",
        "seed": "seed",
        "generate_audio": "generateAudio",
    }
)
"""``VideoRequest`` field name -> the name FastRouter's JSON body uses."""

_MEDIA_PREFIXES = ("video/", "application/octet-stream", "binary/octet-stream")
_REDACTED = "[redacted]"
_MAX_URL_LENGTH = 8192  # longer "URLs" in an answer are not links any server or proxy would serve
_NO_DATA: Mapping[str, Any] = MappingProxyType({})  # an answer without a "data" object
_MAX_TEXT = 1000  # characters kept of a server's status word or message: enough to explain, not to flood
_BINARY_KINDS = frozenset({"unknown binary", "gzip data", "a ZIP archive", "an image", "a PDF document"})
_EMPTY_RUNNING_STATUSES = frozenset({202, 204})  # "accepted, nothing to show yet": the job is still running
# Anything shaped like a FastRouter key (sk-v1-...) or a bearer credential is masked too,
# in case a server echoes a different or partial key.
_KEY_PATTERN = re.compile(r"sk-[A-Za-z0-9][A-Za-z0-9_\-]{7,}|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{8,}")


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


def is_media_response(content_type: str, head: bytes = b"") -> bool:
    """True when a body is a video rather than JSON: by content type, or by an MP4 ``ftyp`` box."""
    if "json" in content_type:
        return False  # the common case, decided without parsing
    ctype = content_type.split(";", maxsplit=1)[0].strip().lower()
    if ctype.startswith(_MEDIA_PREFIXES):
        return True
    return len(head) >= 8 and head[4:8] == b"ftyp" and "json" not in ctype


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


def extract_task_id(payload: Mapping[str, Any], secret: Secret | str | None = None) -> str | None:
    """The task id from a create (or poll) answer, trying every documented location.

    Only a usable id counts (see :func:`usable_task_id`): never one that carries the key.
    """
    data = payload.get("data")
    candidates: list[Any] = []
    if isinstance(data, Mapping):
        candidates += [data.get("taskId"), data.get("task_id"), data.get("id")]
    candidates += [payload.get("taskId"), payload.get("task_id"), payload.get("id")]
    for value in candidates:
        if isinstance(value, str) and usable_task_id(value.strip(), secret):
            return value.strip()
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return str(value)  # at most 40 digits: longer numbers are decoded as floats
    return None


def usable_task_id(value: str | None, secret: Secret | str | None) -> str | None:
    """``value`` if it can be a task id: printable, at most 256 characters, and nothing key-shaped.

    A server that echoes the key as the "task id" must not get it logged, journaled and shown.
    """
    if value is None or not is_usable_task_id(value) or scrub(value, secret) != value:
        return None
    return value


def classify_status_word(word: object) -> JobState | None:
    """SUCCEEDED, FAILED or RUNNING for a status word; None when there is no word."""
    if not isinstance(word, str) or not word.strip():
        return None
    normal = word.strip().lower()
    if normal in SUCCESS_WORDS:
        return JobState.SUCCEEDED
    if normal in FAILURE_WORDS:
        return JobState.FAILED
    return JobState.RUNNING


def extract_urls(payload: Mapping[str, Any]) -> tuple[str, ...]:
    """Every video URL in the answer, best first, without duplicates."""
    found: list[str] = []
    assets = payload.get("fastrouter_assets")
    if isinstance(assets, Mapping):
        asset_status = assets.get("status")
        # Only a ready hosted copy is used first; an unknown status (the copy may still be
        # uploading) puts the provider's URLs first and the hosted ones after them.
        ready = asset_status is None or (isinstance(asset_status, str) and asset_status.lower() == "ready")
        hosted = [u for u in _as_list(assets.get("urls")) if _is_http_url(u)]
        if ready:
            found += hosted
    else:
        hosted, ready = [], True
    data = _as_mapping(payload.get("data"))
    for generation in _generations(data):
        url = generation.get("url")
        if _is_http_url(url):
            found.append(url)
    for fallback in (data.get("url"), data.get("video_url"), payload.get("url"), payload.get("video_url")):
        if _is_http_url(fallback):
            found.append(fallback)
    if not ready:
        found += hosted
    return tuple(dict.fromkeys(found))


def inline_video_base64(payload: Mapping[str, Any] | None) -> str | None:
    """The base64 text of an inline video (``generations[].bytesBase64Encoded``), if any."""
    if payload is None:
        return None
    for generation in _generations(_as_mapping(payload.get("data"))):
        value = generation.get("bytesBase64Encoded")
        if isinstance(value, str) and value.strip():
            return value
    return None


def parse_submit_response(response: Response, *, scrub_secret: Secret | str | None = None) -> SubmitAccepted:
    """Interpret a 2xx answer to ``POST /videos``.

    Raises UnexpectedResponseError when no task id can be found, and
    APIStatusError when the body itself reports an error without a task id
    (the server refused the job).
    """
    payload = _json_object(response, "the create answer", scrub_secret)
    task_id = extract_task_id(payload, scrub_secret)
    if task_id is None:
        message = _error_message(payload, scrub_secret, plain_message=False)
        if message is not None or _word(payload.get("code")) in FAILURE_WORDS:
            raise APIStatusError(
                message or "the create answer reports a failure",
                status_code=response.status,
                body=scrub_json(payload, scrub_secret),
            )
        raise UnexpectedResponseError(
            f"the create answer has no usable task id: {_preview(payload, scrub_secret)}",
            body=scrub_json(payload, scrub_secret),
            status_code=response.status,
        )
    data = _as_mapping(payload.get("data"))
    raw_status = _first_str(data.get("status"))
    model = _first_str(payload.get("model"))
    return SubmitAccepted(
        task_id=task_id,
        model=model,
        raw_status=raw_status,
        credits_used=_credits_used(payload),
        cached=payload.get("cached") is True,
        payload=payload,
    )


def parse_poll_response(
    response: Response, *, task_id: str, model: str | None, scrub_secret: Secret | str | None = None
) -> JobStatus:
    """Interpret a 2xx answer of a poll route as a JobStatus.

    ``response.media`` (set by the transport only for a media content type carrying video
    bytes) is a finished job; a ``202``/``204`` without a body is a running one. Raises
    UnexpectedResponseError for a body that is not a JSON object, and for a success that
    carries no video (no URL, no inline bytes).
    """
    if not response.body and not response.media and response.status in _EMPTY_RUNNING_STATUSES:
        return JobStatus(task_id=task_id, model=model, state=JobState.RUNNING)
    if response.media:
        return JobStatus(
            task_id=task_id,
            model=model,
            state=JobState.SUCCEEDED,
            raw_status="video body",
            source=ResultSource.POLL_BODY,
        )
    payload = _json_object(response, lambda: f"the status answer for task {task_id}", scrub_secret)
    data = payload.get("data")
    if not _is_mapping(data):
        data = _NO_DATA
    raw_status = _first_str(data.get("status"), payload.get("status"))
    state = _job_state(payload, data, raw_status)
    cost_usd = _number(data.get("costUsd"))
    credits_used = _credits_used(payload)
    if state is JobState.RUNNING:  # the usual answer: built without a dictionary of arguments
        return JobStatus(
            task_id=task_id,
            model=model,
            state=state,
            raw_status=raw_status,
            cost_usd=cost_usd,
            credits_used=credits_used,
            payload=payload,
        )
    common: dict[str, Any] = {
        "task_id": task_id,
        "model": model,
        "raw_status": raw_status,
        "cost_usd": cost_usd,
        "credits_used": credits_used,
        "payload": payload,
    }
    if state is JobState.FAILED:
        message = _failure_message(payload, data, scrub_secret)
        return JobStatus(state=state, error=message, **common)
    if state is JobState.SUCCEEDED:
        urls = extract_urls(payload)
        if urls:
            return JobStatus(state=state, urls=urls, source=ResultSource.URL, **common)
        if inline_video_base64(payload) is not None:
            return JobStatus(state=state, source=ResultSource.INLINE_BASE64, **common)
        raise UnexpectedResponseError(
            f"task {task_id} reports success ({raw_status or 'from its generations'}) but the answer "
            "carries no video URL or inline video",
            body=scrub_json(payload, scrub_secret),
            status_code=response.status,
        )
    return JobStatus(state=JobState.RUNNING, **common)


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
            message = _error_message(decoded, scrub_secret, plain_message=True)
            error_type, error_code = (None if v is None else scrub(v, scrub_secret) for v in _error_type_code(decoded))
        elif isinstance(decoded, str):
            body = message = scrub(decoded, scrub_secret)
        else:
            body = scrub(text[:2000], scrub_secret)
            message = _clip(scrub(_printable(text.strip()[:300]), scrub_secret)) or None
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


# --- helpers -----------------------------------------------------------------------------


def _json_object(response: Response, what: str | Callable[[], str], secret: Secret | str | None) -> Mapping[str, Any]:
    """The decoded answer, a JSON object; ``what`` names it in the error (a callable: only then)."""
    payload = decode_json(response, scrub_secret=secret)
    if not _is_mapping(payload):
        what = what if isinstance(what, str) else what()
        raise UnexpectedResponseError(
            f"{what} is JSON but not an object: {_preview(payload, secret)}",
            body=scrub_json(payload, secret),
            status_code=response.status,
        )
    return payload


def _job_state(payload: Mapping[str, Any], data: Mapping[str, Any], raw_status: str | None) -> JobState:
    if _word(payload.get("code")) in FAILURE_WORDS or _has_error(payload):
        return JobState.FAILED
    state = classify_status_word(raw_status)
    if state is not None:
        return state
    generation_states = [classify_status_word(g.get("status")) for g in _generations(data)]
    if JobState.FAILED in generation_states:
        return JobState.FAILED
    if generation_states and all(s is JobState.SUCCEEDED for s in generation_states):
        return JobState.SUCCEEDED
    return JobState.RUNNING


def _has_error(payload: Mapping[str, Any]) -> bool:
    error = payload.get("error")
    if isinstance(error, str):
        return bool(error.strip())
    return _is_mapping(error) and bool(error)


def _failure_message(payload: Mapping[str, Any], data: Mapping[str, Any], secret: Secret | str | None) -> str:
    message = _error_message(payload, secret, plain_message=False)
    if message:
        return message
    for generation in _generations(data):
        fail = generation.get("failMsg")
        if isinstance(fail, str) and fail.strip():
            return _clip(scrub(fail.strip(), secret))
    for key in ("error", "failMsg", "message"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return _clip(scrub(value.strip(), secret))
    word = _first_str(data.get("status"), payload.get("status")) or "failed"
    return f"the job ended with status {word!r} and no message"


def _error_message(payload: Mapping[str, Any], secret: Secret | str | None, *, plain_message: bool) -> str | None:
    """The server's error text: ``error`` (string or object), ``detail``, and, when
    ``plain_message`` (error statuses only), a top-level ``message``."""
    error = payload.get("error")
    if isinstance(error, str) and error.strip():
        return _clip(scrub(error.strip(), secret))
    if isinstance(error, Mapping):
        for key in ("message", "detail", "msg"):
            value = error.get(key)
            if isinstance(value, str) and value.strip():
                return _clip(scrub(value.strip(), secret))
        return scrub(_dumps(error)[:300], secret)
    keys = ("detail", "message") if plain_message else ("detail",)
    for key in keys:
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return _clip(scrub(value.strip(), secret))
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


def submit_estimate(payload: Mapping[str, Any]) -> SubmitEstimate | None:
    """The cost a create answer states in ``estimate_usage`` (``usage`` in older answers), or None.

    A cache hit states no credits (or 0): it is the same job, not a second cost.
    """
    for key in ("estimate_usage", "usage"):
        block = payload.get(key)
        if isinstance(block, Mapping):
            credits = _number(block.get("credits_used"))
            if credits is None:
                credits = _number(block.get("user_key_credits_used"))
            usd = _number(block.get("cost_usd"))
            if usd is None:
                usd = _number(block.get("costUsd"))
            return SubmitEstimate(credits=credits, usd=usd)
    return None


def _credits_used(payload: Mapping[str, Any]) -> float | None:
    for key in ("usage", "estimate_usage"):
        block = payload.get(key)
        if _is_mapping(block):
            value = _number(block.get("credits_used"))
            if value is not None:
                return value
    return None


def _generations(data: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for item in _as_list(data.get("generations")):
        if _is_mapping(item):
            yield item


_NOT_MAPPINGS = frozenset({str, int, float, bool, list, type(None)})  # what else JSON decodes to


def _is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    """``isinstance(value, Mapping)``, without the ABC check for what JSON decodes to (a few per poll)."""
    kind = type(value)
    if kind is dict:
        return True
    if kind in _NOT_MAPPINGS:
        return False
    return isinstance(value, Mapping)


def _as_mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_http_url(value: object) -> TypeGuard[str]:
    if not (isinstance(value, str) and 8 < len(value) <= _MAX_URL_LENGTH):
        return False
    if not value.lower().startswith(("https://", "http://")) or not value.isprintable() or " " in value:
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises for a port that is not a number in range
    except ValueError:  # "http://[bad": not a URL anything could fetch
        return False
    return bool(parts.hostname)


def _number(value: object) -> float | None:
    """A finite number from an answer, else ``None`` (huge, NaN or infinite: an unknown amount)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    return None


def _word(value: object) -> str | None:
    return value.strip().lower() if isinstance(value, str) else None


def _first_str(*values: object) -> str | None:
    for value in values:
        if isinstance(value, str) and value.strip():
            return _clip(value.strip(), 200)
    return None


def _clip(text: str, limit: int = _MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text)


def _dumps(value: object) -> str:
    """JSON text of a decoded value for a message; never raises (depth is bounded at decoding)."""
    try:
        return json.dumps(value, default=str)
    except (ValueError, TypeError, RecursionError):
        return "<unprintable>"


def _preview(value: object, secret: Secret | str | None) -> str:
    return scrub(_dumps(value)[:200], secret)
