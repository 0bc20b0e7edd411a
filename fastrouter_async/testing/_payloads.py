"""Pure builders for the JSON bodies the simulator answers with.

Every shape here copies one documented or live-observed FastRouter answer
(see ``shared/fastrouter-api.md`` sections 2.2, 2.3 and 3.4). Nothing here
does I/O or knows about aiohttp, so the shapes are easy to read and check.
"""

from __future__ import annotations

import datetime
import secrets
import uuid
from http import HTTPStatus
from typing import Any

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"

ASSET_RETENTION = 30 * 24 * 3600  # FastRouter keeps its hosted copy for 30 days (expires_at - cached_at)
PROVIDER = "pollo"  # every documented video answer names Pollo as the provider

# (message, type, code) of the standard error object, per HTTP status. The
# messages are FastRouter's own wording from the OpenAPI and error-code pages.
_STANDARD_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("Bad Request - Invalid parameters or model", "invalid_request_error", "invalid_request"),
    401: (
        "Invalid Credentials - Your API key is invalid, disabled, or your OAuth session has expired. "
        "Check your credentials.",
        "authentication_error",
        "invalid_api_key",
    ),
    402: (
        "Insufficient Credits - Your account or API key has run out of credits.",
        "insufficient_credits",
        "insufficient_credits",
    ),
    403: (
        "Moderation Blocked - The input was flagged by the model's content moderation system.",
        "moderation_blocked",
        "moderation_blocked",
    ),
    404: ("Not Found - Invalid taskId or expired result", "not_found", "task_not_found"),
    429: (
        "Rate Limited - You have exceeded your request limits (TPM/RPM). Slow down or increase your limits.",
        "rate_limit_error",
        "rate_limit_exceeded",
    ),
    500: ("Internal Server Error", "server_error", "internal_error"),
    502: (
        "Model Down / Invalid Response - The selected model is currently unavailable or returned an invalid "
        "response. Retry or use fallback models.",
        "server_error",
        "model_down",
    ),
}


def new_task_id() -> str:
    """``fr_`` + 26 upper-case Crockford base32 characters (a ULID: 48-bit ms time, 80 random bits)."""
    millis = int(datetime.datetime.now(datetime.UTC).timestamp() * 1000) & (2**48 - 1)
    value = (millis << 80) | secrets.randbits(80)
    chars = [_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5)]
    return "fr_" + "".join(chars)


def new_link_sig() -> str:
    """A random signature for a download link's ``sig`` query parameter (16 hex digits)."""
    return secrets.token_hex(8)


def new_chat_id() -> str:
    """``fr_`` + a UUID4, new for every answer."""
    return f"fr_{uuid.uuid4()}"


def new_generation_id() -> str:
    """A Pollo-style cuid such as ``cmtrbet3h0jizn3inp6tqsh74`` (25 characters)."""
    return "cm" + "".join(secrets.choice(_BASE36) for _ in range(23))


def non_empty_str(value: object) -> bool:
    """Whether ``value`` is a string with something besides whitespace (what a required field must be)."""
    return isinstance(value, str) and bool(value.strip())


def iso_timestamp(moment: datetime.datetime | None = None) -> str:
    """``2026-09-07T14:07:31.000Z``: UTC with milliseconds, as Pollo writes dates."""
    moment = moment or datetime.datetime.now(datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def error_body(status: int, message: str | None = None, *, type_: str | None = None, code: str | None = None) -> Any:
    """The documented error object ``{"error": {"message", "type", "code", "status"}}``.

    Missing parts come from FastRouter's standard wording for ``status``.
    """
    default_message, default_type, default_code = _STANDARD_ERRORS.get(status, _fallback_error(status))
    return {
        "error": {
            "message": message or default_message,
            "type": type_ or default_type,
            "code": code or default_code,
            "status": status,
        }
    }


def _fallback_error(status: int) -> tuple[str, str, str]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return phrase, kind, phrase.lower().replace(" ", "_").replace("-", "_")


def create_body(*, task_id: str, model: str, cost_usd: float | None) -> dict[str, Any]:
    """The 200 answer to ``POST /videos`` (section 2.2, cache miss)."""
    chat_id = new_chat_id()
    return {
        "chat_id": chat_id,
        "model": model,
        "code": "success",
        "message": "Video generation started",
        "data": {"taskId": task_id, "status": "processing"},
        "estimate_usage": {
            "chat_id": chat_id,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "total_tokens": 0,
            "user_key_credits_used": cost_usd,
            "credits_used": cost_usd,
            "provider": PROVIDER,
        },
    }


def generation(
    *,
    generation_id: str,
    status: str,
    created: str,
    updated: str,
    url: str = "",
    fail_msg: str = "",
) -> dict[str, Any]:
    """One ``data.generations[]`` record (Pollo's generation object)."""
    return {
        "createdDate": created,
        "failMsg": fail_msg,
        "id": generation_id,
        "mediaType": "video",
        "status": status,
        "updatedDate": updated,
        "url": url,
    }


def running_body(*, task_id: str, word: str, gen: dict[str, Any], with_status: bool) -> dict[str, Any]:
    """A poll answer while the job runs."""
    data: dict[str, Any] = {"taskId": task_id, "status": word, "generations": [gen]}
    if not with_status:
        del data["status"]
    return {"chat_id": new_chat_id(), "code": "processing", "message": "processing", "data": data}


def success_body(
    *,
    task_id: str,
    word: str,
    gen: dict[str, Any],
    with_status: bool,
    cost_usd: float | None,
    credits: float,
    asset_url: str | None,
    cached_at: int,
) -> dict[str, Any]:
    """The finished-job answer (section 3.4); no ``fastrouter_assets`` when ``asset_url`` is None."""
    data: dict[str, Any] = {
        "costUsd": cost_usd,
        "credit": credits,
        "generations": [gen],
        "status": word,
        "taskId": task_id,
    }
    if not with_status:
        del data["status"]
    body: dict[str, Any] = {"chat_id": new_chat_id(), "code": "SUCCESS", "message": "success", "data": data}
    if asset_url is not None:
        body["fastrouter_assets"] = {
            "status": "ready",
            "urls": [asset_url],
            "expires_at": cached_at + ASSET_RETENTION,
            "cached_at": cached_at,
        }
    body["usage"] = {
        "api_key_credits_used": 0,
        "user_key_credits_used": cost_usd,
        "credits_used": cost_usd,
        "provider": PROVIDER,
    }
    return body


def failed_body(*, task_id: str, error: str, with_status: bool) -> dict[str, Any]:
    """The live-observed failure: HTTP 200, ``code: "failed"``, a top-level string ``error``."""
    data: dict[str, Any] = {"taskId": task_id, "status": "failed", "generations": []}
    if not with_status:
        del data["status"]
    return {"code": "failed", "data": data, "error": error}


def failed_generation_body(*, task_id: str, gen: dict[str, Any], with_status: bool) -> dict[str, Any]:
    """A failure reported only through the data: ``data.status`` and ``generations[].failMsg``."""
    data: dict[str, Any] = {"taskId": task_id, "status": "failed", "generations": [gen]}
    if not with_status:
        del data["status"]
    return {"chat_id": new_chat_id(), "code": "failed", "message": "failed", "data": data}


# A JSON document cut off in the middle of a string: what a client sees when a
# proxy truncates an answer but still labels it application/json.
MALFORMED_JSON = b'{"chat_id": "fr_6ca8b68f-5282-4409", "code": "SUCCESS", "data": {"taskId": "fr_01M1Y3'
