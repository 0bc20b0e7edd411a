"""FastRouter's answers to submits and polls, interpreted as pure functions.

Nothing here does I/O. Every function takes plain values (a :class:`Response`:
status, headers, body bytes), so the interpretation is tested table-driven with
the real payloads documented for FastRouter. Requests, error statuses and scrubbing
are in :mod:`._protocol`.

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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from ._config import Secret
from ._errors import APIStatusError, UnexpectedResponseError
from ._models import JobState, JobStatus, ResultSource
from ._protocol import Response, SubmitAccepted, decode_json, error_message, json_preview, scrub, scrub_json
from ._untrusted import (
    as_list,
    as_mapping,
    clip,
    finite_number,
    first_str,
    is_http_url,
    is_mapping,
    is_usable_task_id,
    word,
)

__all__ = [
    "FAILURE_WORDS",
    "SUCCESS_WORDS",
    "classify_status_word",
    "extract_task_id",
    "extract_urls",
    "inline_video_base64",
    "is_media_response",
    "parse_poll_response",
    "parse_submit_response",
    "usable_task_id",
]

SUCCESS_WORDS = frozenset({"succeed", "succeeded", "success", "completed", "complete"})
FAILURE_WORDS = frozenset({"failed", "fail", "error", "cancelled", "canceled", "expired"})

_MEDIA_PREFIXES = ("video/", "application/octet-stream", "binary/octet-stream")
_NO_DATA: Mapping[str, Any] = MappingProxyType({})  # an answer without a "data" object
_EMPTY_RUNNING_STATUSES = frozenset({202, 204})  # "accepted, nothing to show yet": the job is still running


def is_media_response(content_type: str, head: bytes = b"") -> bool:
    """True when a body is a video rather than JSON: by content type, or by an MP4 ``ftyp`` box."""
    if "json" in content_type:
        return False  # the common case, decided without parsing
    ctype = content_type.split(";", maxsplit=1)[0].strip().lower()
    if ctype.startswith(_MEDIA_PREFIXES):
        return True
    return len(head) >= 8 and head[4:8] == b"ftyp" and "json" not in ctype


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
        hosted = [u for u in as_list(assets.get("urls")) if is_http_url(u)]
        if ready:
            found += hosted
    else:
        hosted, ready = [], True
    data = as_mapping(payload.get("data"))
    for generation in _generations(data):
        url = generation.get("url")
        if is_http_url(url):
            found.append(url)
    for fallback in (data.get("url"), data.get("video_url"), payload.get("url"), payload.get("video_url")):
        if is_http_url(fallback):
            found.append(fallback)
    if not ready:
        found += hosted
    return tuple(dict.fromkeys(found))


def inline_video_base64(payload: Mapping[str, Any] | None) -> str | None:
    """The base64 text of an inline video (``generations[].bytesBase64Encoded``), if any."""
    if payload is None:
        return None
    for generation in _generations(as_mapping(payload.get("data"))):
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
        message = error_message(payload, scrub_secret, plain_message=False)
        if message is not None or word(payload.get("code")) in FAILURE_WORDS:
            raise APIStatusError(
                message or "the create answer reports a failure",
                status_code=response.status,
                body=scrub_json(payload, scrub_secret),
            )
        raise UnexpectedResponseError(
            f"the create answer has no usable task id: {json_preview(payload, scrub_secret)}",
            body=scrub_json(payload, scrub_secret),
            status_code=response.status,
        )
    data = as_mapping(payload.get("data"))
    raw_status = first_str(data.get("status"))
    model = first_str(payload.get("model"))
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
    if not is_mapping(data):
        data = _NO_DATA
    raw_status = first_str(data.get("status"), payload.get("status"))
    state = _job_state(payload, data, raw_status)
    cost_usd = finite_number(data.get("costUsd"))
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


def _json_object(response: Response, what: str | Callable[[], str], secret: Secret | str | None) -> Mapping[str, Any]:
    """The decoded answer, a JSON object; ``what`` names it in the error (a callable: only then)."""
    payload = decode_json(response, scrub_secret=secret)
    if not is_mapping(payload):
        what = what if isinstance(what, str) else what()
        raise UnexpectedResponseError(
            f"{what} is JSON but not an object: {json_preview(payload, secret)}",
            body=scrub_json(payload, secret),
            status_code=response.status,
        )
    return payload


def _job_state(payload: Mapping[str, Any], data: Mapping[str, Any], raw_status: str | None) -> JobState:
    if word(payload.get("code")) in FAILURE_WORDS or _has_error(payload):
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
    return is_mapping(error) and bool(error)


def _failure_message(payload: Mapping[str, Any], data: Mapping[str, Any], secret: Secret | str | None) -> str:
    message = error_message(payload, secret, plain_message=False)
    if message:
        return message
    for generation in _generations(data):
        fail = generation.get("failMsg")
        if isinstance(fail, str) and fail.strip():
            return clip(scrub(fail.strip(), secret))
    for key in ("error", "failMsg", "message"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return clip(scrub(value.strip(), secret))
    word = first_str(data.get("status"), payload.get("status")) or "failed"
    return f"the job ended with status {word!r} and no message"


def _credits_used(payload: Mapping[str, Any]) -> float | None:
    for key in ("usage", "estimate_usage"):
        block = payload.get(key)
        if is_mapping(block):
            value = finite_number(block.get("credits_used"))
            if value is not None:
                return value
    return None


def _generations(data: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for item in as_list(data.get("generations")):
        if is_mapping(item):
            yield item
