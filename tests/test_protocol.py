"""The wire protocol, table-driven with the real payloads documented for FastRouter (no network)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fastrouter_async import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    InsufficientCreditsError,
    JobState,
    NotFoundError,
    PermissionDeniedError,
    PollRoute,
    RateLimitError,
    ResultSource,
    ServerError,
    UnexpectedResponseError,
    VideoRequest,
)
from fastrouter_async._interpret import (
    classify_status_word,
    extract_task_id,
    extract_urls,
    is_media_response,
    parse_poll_response,
    parse_submit_response,
    usable_task_id,
)
from fastrouter_async._protocol import (
    Response,
    build_submit_body,
    error_for_status,
    is_retryable_status,
    poll_call,
    retry_after_seconds,
    scrub,
)
from fastrouter_async._untrusted import UnreadableJSON, salvage_task_id
from fastrouter_async._untrusted import loads as loads_untrusted
from fastrouter_async._urls import loggable

TASK = "fr_01M1Y389KN0KN28AT3733Q505H"
KEY = "sk-v1-0123456789abcdef0123456789abcdef"

# FastRouter docs, response caching page: the create answer (cache miss).
CREATE_DOCS = {
    "chat_id": "fr_abdbddc2-36f4-4b6f-b014-ecf60ed2cb9f",
    "model": "kling-ai/kling-v1-6",
    "code": "success",
    "message": "Video generation started",
    "data": {"taskId": TASK, "status": "processing"},
    "estimate_usage": {
        "chat_id": "fr_abdbddc2-36f4-4b6f-b014-ecf60ed2cb9f",
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "user_key_credits_used": 0.21,
        "credits_used": 0.21,
        "provider": "pollo",
    },
}

# FastRouter docs: a finished Kling v1.6 poll answer.
POLL_SUCCESS_DOCS = {
    "chat_id": "fr_6ca8b68f-5282-4409-9a7b-7f999a42ece6",
    "code": "SUCCESS",
    "message": "success",
    "data": {
        "costUsd": 0.21,
        "credit": 3.5,
        "generations": [
            {
                "createdDate": "2026-09-07T14:07:31.000Z",
                "failMsg": "",
                "id": "cmtrbet3h0jizn3inp6tqsh74",
                "mediaType": "video",
                "status": "succeed",
                "updatedDate": "2026-09-07T14:11:01.000Z",
                "url": "https://videocdn.pollo.ai/web-cdn/pollo/production/acct/ori/asset.mp4",
            }
        ],
        "status": "succeed",
        "taskId": TASK,
    },
    "fastrouter_assets": {
        "status": "ready",
        "urls": [f"https://api.fastrouter.ai/videos-content/{TASK}"],
        "expires_at": 1791382312,
        "cached_at": 1788790312,
    },
    "usage": {"api_key_credits_used": 0, "user_key_credits_used": 0.21, "credits_used": 0.21, "provider": "pollo"},
}

# The live failure observed by a public client (empty-prompt incident on openai/sora-2).
POLL_FAILED_LIVE = {
    "code": "failed",
    "data": {"taskId": "t3", "status": "failed", "generations": []},
    "error": "openai submit: upstream status 400",
}


def ok(payload: Any, status: int = 200, content_type: str = "application/json") -> Response:
    return Response(status=status, headers={"content-type": content_type}, body=json.dumps(payload).encode())


def raw(body: bytes, status: int, content_type: str = "text/plain", **headers: str) -> Response:
    return Response(status=status, headers={"content-type": content_type, **headers}, body=body)


def with_status(word: str | None, *, generations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(json.dumps(POLL_SUCCESS_DOCS))
    if word is None:
        del payload["data"]["status"]
    else:
        payload["data"]["status"] = word
    if generations is not None:
        payload["data"]["generations"] = generations
    return payload


# --- submit ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "task_id"),
    [
        (CREATE_DOCS, TASK),
        (
            {"chat_id": "fr_chat", "code": "success", "data": {"taskId": "fr_TASK123", "status": "processing"}},
            "fr_TASK123",
        ),
        (
            {"data": {"taskId": "cml7x8i3a03w544hj0futcxce"}, "usage": {"credits_used": 0.5}},
            "cml7x8i3a03w544hj0futcxce",
        ),
        (
            {"id": "video_697ea03bac9481989eea175d66ac2e4e0bb603f08ed02dc1", "model": "sora-2"},
            "video_697ea03bac9481989eea175d66ac2e4e0bb603f08ed02dc1",
        ),
        ({"data": {"id": "data-id"}}, "data-id"),
        ({"data": {"task_id": "snake"}}, "snake"),
        ({"taskId": "top"}, "top"),
        ({"task_id": "top_snake"}, "top_snake"),
        ({"data": {"taskId": 12345}}, "12345"),
        ({"data": {"taskId": "  spaced  "}}, "spaced"),
    ],
)
def test_task_id_found_in_every_documented_place(payload: dict[str, Any], task_id: str) -> None:
    """The task id is read from data.taskId and each documented fallback, as an opaque string."""
    assert extract_task_id(payload) == task_id
    assert parse_submit_response(ok(payload)).task_id == task_id


def test_submit_reads_credits_and_cache_flag() -> None:
    """Credits come from estimate_usage (or the older usage) and cached is read when present."""
    accepted = parse_submit_response(ok(CREATE_DOCS))
    assert (accepted.credits_used, accepted.cached, accepted.raw_status) == (0.21, False, "processing")
    older = parse_submit_response(ok({"data": {"taskId": "x"}, "usage": {"credits_used": 0.5}, "cached": True}))
    assert (older.credits_used, older.cached) == (0.5, True)


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"code": "success", "data": {"status": "processing"}}, UnexpectedResponseError),
        (["not", "an", "object"], UnexpectedResponseError),
        ({"code": "failed", "error": "model unavailable"}, APIStatusError),
        ({"error": {"message": "bad model", "type": "invalid_request_error"}}, APIStatusError),
    ],
)
def test_submit_without_task_id_is_an_error(payload: Any, error: type[Exception]) -> None:
    """A create answer without a task id is never taken for success."""
    with pytest.raises(error):
        parse_submit_response(ok(payload))


def test_submit_malformed_json_is_unexpected() -> None:
    """A 200 whose body is not JSON raises UnexpectedResponseError with a preview."""
    with pytest.raises(UnexpectedResponseError, match="not valid JSON"):
        parse_submit_response(raw(b'{"data": {"taskId": "fr_', 200, "application/json"))


def test_json_in_utf16_is_still_read() -> None:
    """UTF-8 is read directly; a body in UTF-16 (with its BOM) is still decoded, by sniffing."""
    body = json.dumps(CREATE_DOCS).encode("utf-16")
    assert parse_submit_response(raw(body, 200, "application/json")).task_id == TASK


def test_poll_call_body_is_serialized_once() -> None:
    """A poll's JSON body is serialized when the call is built, compact, and matches its json."""
    call = poll_call(PollRoute.GET_VIDEO_RESPONSE, "https://go.fastrouter.ai/api/v1", TASK, "google/veo3")
    assert call.encoded == b'{"taskId":"fr_01M1Y389KN0KN28AT3733Q505H","model":"google/veo3"}'
    assert json.loads(call.encoded) == call.json


def test_submit_body_uses_wire_names_and_passes_extra_through() -> None:
    """Python names become FastRouter's (aspectRatio, generateAudio); None is omitted; extra is unchanged."""
    request = VideoRequest(
        model="google/veo3",
        prompt="a cat",
        length=8,
        aspect_ratio="16:9",
        generate_audio=False,
        seed=0,
        extra={"negativePrompt": "blurry", "cache": {"expiration_time": 60}},
    )
    assert build_submit_body(request) == {
        "model": "google/veo3",
        "prompt": "a cat",
        "length": 8,
        "aspectRatio": "16:9",
        "generateAudio": False,
        "seed": 0,
        "negativePrompt": "blurry",
        "cache": {"expiration_time": 60},
    }


@pytest.mark.parametrize(
    ("route", "method", "path", "body"),
    [
        (PollRoute.GET_VIDEO_RESPONSE, "POST", "/getVideoResponse", {"taskId": "fr_1", "model": "google/veo3"}),
        (PollRoute.GET_ASYNC_RESPONSE, "POST", "/getAsyncResponse", {"taskId": "fr_1", "model": "google/veo3"}),
        (PollRoute.VIDEOS, "GET", "/videos/fr_1", None),
    ],
)
def test_poll_call_per_route(route: PollRoute, method: str, path: str, body: dict[str, str] | None) -> None:
    """Each configurable poll route builds its documented request."""
    call = poll_call(route, "https://go.fastrouter.ai/api/v1", "fr_1", "google/veo3")
    assert (call.method, call.url, call.json) == (method, "https://go.fastrouter.ai/api/v1" + path, body)


def test_poll_call_without_model_and_with_odd_task_id() -> None:
    """The model is omitted when unknown; a task id is escaped in the GET route's path."""
    assert poll_call(PollRoute.GET_VIDEO_RESPONSE, "https://h/api/v1", "t", None).json == {"taskId": "t"}
    assert poll_call(PollRoute.VIDEOS, "https://h/api/v1", "a/b c", None).url == "https://h/api/v1/videos/a%2Fb%20c"


# --- poll --------------------------------------------------------------------------------


def test_poll_success_documented_shape() -> None:
    """The documented finished answer is SUCCEEDED with the hosted copy first, cost and credits."""
    status = parse_poll_response(ok(POLL_SUCCESS_DOCS), task_id=TASK, model="kling-ai/kling-v1-6")
    assert status.state is JobState.SUCCEEDED
    assert status.urls == (
        f"https://api.fastrouter.ai/videos-content/{TASK}",
        "https://videocdn.pollo.ai/web-cdn/pollo/production/acct/ori/asset.mp4",
    )
    assert (status.cost_usd, status.credits_used, status.source) == (0.21, 0.21, ResultSource.URL)
    assert status.raw_status == "succeed"


def test_poll_live_failure_shape() -> None:
    """HTTP 200 with code 'failed' and a string error is a failed job carrying the server's message."""
    status = parse_poll_response(ok(POLL_FAILED_LIVE), task_id="t3", model="openai/sora-2")
    assert status.state is JobState.FAILED
    assert status.error == "openai submit: upstream status 400"
    assert "failed: openai submit" in status.describe()


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("succeed", JobState.SUCCEEDED),
        ("succeeded", JobState.SUCCEEDED),
        ("SUCCESS", JobState.SUCCEEDED),
        ("Completed", JobState.SUCCEEDED),
        ("complete", JobState.SUCCEEDED),
        ("failed", JobState.FAILED),
        ("ERROR", JobState.FAILED),
        ("cancelled", JobState.FAILED),
        ("canceled", JobState.FAILED),
        ("expired", JobState.FAILED),
        ("processing", JobState.RUNNING),
        ("waiting", JobState.RUNNING),
        ("queued", JobState.RUNNING),
        ("in_progress", JobState.RUNNING),
        ("something-new", JobState.RUNNING),
        (" Succeed ", JobState.SUCCEEDED),
    ],
)
def test_status_words_case_insensitive(word: str, state: JobState) -> None:
    """Status words map case-insensitively; unknown words mean still running."""
    assert classify_status_word(word) is state
    parsed = parse_poll_response(ok(with_status(word)), task_id=TASK, model=None)
    assert parsed.state is state


@pytest.mark.parametrize("word", [None, "", 3])
def test_no_status_word(word: object) -> None:
    """A missing or non-string status word classifies as nothing (to be derived elsewhere)."""
    assert classify_status_word(word) is None


GEN_OK = {"status": "succeed", "url": "https://cdn.example/a.mp4", "failMsg": ""}
GEN_RUN = {"status": "processing", "url": "", "failMsg": ""}
GEN_FAIL = {"status": "failed", "url": "", "failMsg": "content policy violation"}


@pytest.mark.parametrize(
    ("generations", "state", "error"),
    [
        ([GEN_OK], JobState.SUCCEEDED, None),
        ([GEN_OK, GEN_OK], JobState.SUCCEEDED, None),
        ([GEN_OK, GEN_RUN], JobState.RUNNING, None),
        ([GEN_RUN, GEN_FAIL], JobState.FAILED, "content policy violation"),
        ([], JobState.RUNNING, None),
    ],
)
def test_state_derived_from_generations(generations: list[dict[str, Any]], state: JobState, error: str | None) -> None:
    """Without data.status, any failed generation fails the job and all succeeded means done."""
    payload = with_status(None, generations=generations)
    del payload["fastrouter_assets"]
    parsed = parse_poll_response(ok(payload), task_id=TASK, model=None)
    assert (parsed.state, parsed.error) == (state, error)


def test_success_without_any_url_is_an_error() -> None:
    """'Done' without a URL or inline video is an error, never a success."""
    payload = with_status("succeed", generations=[{"status": "succeed", "url": ""}])
    del payload["fastrouter_assets"]
    with pytest.raises(UnexpectedResponseError, match="no video URL"):
        parse_poll_response(ok(payload), task_id=TASK, model=None)


def test_inline_base64_success() -> None:
    """An inline bytesBase64Encoded video is a success whose source is INLINE_BASE64."""
    payload = with_status("succeed", generations=[{"status": "succeed", "bytesBase64Encoded": "AAAA"}])
    del payload["fastrouter_assets"]
    parsed = parse_poll_response(ok(payload), task_id=TASK, model=None)
    assert (parsed.state, parsed.source, parsed.urls) == (JobState.SUCCEEDED, ResultSource.INLINE_BASE64, ())


def test_media_body_is_a_finished_job() -> None:
    """A poll answer whose body is the video itself is SUCCEEDED with source POLL_BODY."""
    media = Response(status=200, headers={"content-type": "video/mp4"}, body=None, media=True)
    parsed = parse_poll_response(media, task_id="video_1", model="openai/sora-2")
    assert (parsed.state, parsed.source) == (JobState.SUCCEEDED, ResultSource.POLL_BODY)


@pytest.mark.parametrize(
    ("content_type", "head", "media"),
    [
        ("video/mp4", b"", True),
        ("Video/MP4; charset=binary", b"", True),
        ("application/octet-stream", b"", True),
        ("application/json", b"\x00\x00\x00\x18ftypmp42", False),
        ("", b"\x00\x00\x00\x18ftypmp42", True),
        ("text/plain", b'{"a": 1}', False),
        ("application/json", b"", False),
    ],
)
def test_media_detection(content_type: str, head: bytes, media: bool) -> None:
    """Media is recognised by content type, or by an MP4 ftyp box when the type is not JSON."""
    assert is_media_response(content_type, head) is media


def test_hosted_copy_not_ready_puts_provider_first() -> None:
    """A fastrouter_assets block that is not 'ready' yields the provider URL before the hosted one."""
    payload = json.loads(json.dumps(POLL_SUCCESS_DOCS))
    payload["fastrouter_assets"]["status"] = "uploading"
    urls = extract_urls(payload)
    assert urls[0].startswith("https://videocdn.pollo.ai/")
    assert urls[1].startswith("https://api.fastrouter.ai/videos-content/")


def test_url_fallbacks_and_dedup() -> None:
    """Undocumented url fields are used last, duplicates dropped, non-http values ignored."""
    payload = {
        "data": {"generations": [{"url": "https://a/x.mp4"}, {"url": "ftp://no"}], "url": "https://a/x.mp4"},
        "video_url": "https://b/y.mp4",
    }
    assert extract_urls(payload) == ("https://a/x.mp4", "https://b/y.mp4")


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"'])
def test_poll_non_object_is_unexpected(body: bytes) -> None:
    """A poll answer that is not a JSON object is UnexpectedResponseError (retried by waiters)."""
    with pytest.raises(UnexpectedResponseError):
        parse_poll_response(raw(body, 200, "application/json"), task_id=TASK, model=None)


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, InsufficientCreditsError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (418, APIStatusError),
    ],
)
def test_status_codes_map_to_error_classes(status: int, cls: type[APIStatusError]) -> None:
    """Each documented status maps to its class, all under APIStatusError with status_code."""
    error = error_for_status(ok({"error": {"message": "m", "type": "t", "code": "c", "status": status}}, status))
    assert type(error) is cls
    assert (error.status_code, error.message, error.error_type, error.error_code) == (status, "m", "t", "c")


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (
            b'{"error": {"message": "Invalid Credentials", "type": "auth", "code": 401}}',
            "application/json",
            "Invalid Credentials",
        ),
        (b'{"error": "upstream status 400"}', "application/json", "upstream status 400"),
        (b'{"message": "Bad Request - Invalid parameters"}', "application/json", "Bad Request - Invalid parameters"),
        (b'{"detail": "model not found"}', "application/json", "model not found"),
        (b'"plain json string"', "application/json", "plain json string"),
        (b"Bad Gateway", "text/html", "Bad Gateway"),
        (b"", "text/plain", "bad request: invalid parameters, model or task id"),
    ],
)
def test_error_bodies_object_or_string(body: bytes, content_type: str, message: str) -> None:
    """Error bodies may be an object, a JSON string or plain text; empty bodies get a default message."""
    assert error_for_status(raw(body, 400, content_type)).message == message


def test_rate_limit_carries_retry_after() -> None:
    """A 429's Retry-After is parsed onto RateLimitError.retry_after."""
    error = error_for_status(raw(b"", 429, **{"retry-after": "7"}))
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:27:00 GMT"}, 0.0),
        ({"retry-after": "-4"}, None),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_seconds_or_http_date(headers: dict[str, str], expected: float | None) -> None:
    """Retry-After is read as seconds, milliseconds or an HTTP date relative to now."""
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    assert retry_after_seconds(headers, now=now) == expected


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (408, True),
        (409, True),
        (425, True),
        (429, True),
        (500, True),
        (599, True),
        (400, False),
        (401, False),
        (404, False),
    ],
)
def test_retryable_statuses(status: int, retry: bool) -> None:
    """Polls retry on 408, 409, 425, 429 and 5xx only."""
    assert is_retryable_status(status) is retry


# --- secrets -----------------------------------------------------------------------------


def test_error_echoing_the_key_is_scrubbed() -> None:
    """A server that echoes the key in an error body does not put it in our message or body."""
    body = json.dumps({"error": {"message": f"Invalid key {KEY}", "type": "auth", "hint": KEY}}).encode()
    error = error_for_status(raw(body, 401, "application/json"), scrub_secret=KEY)
    assert KEY not in str(error)
    assert KEY not in json.dumps(error.body)
    assert "[redacted]" in error.message


@pytest.mark.parametrize(
    "text",
    ["sk-v1-abcdefgh12345678", "Authorization: Bearer abcdefghijkl", "key=sk-other-key-value-here"],
)
def test_scrub_masks_key_shaped_text(text: str) -> None:
    """Anything shaped like a FastRouter key or a bearer credential is masked, even if not ours."""
    assert "[redacted]" in scrub(text, None)
    assert "abcdefgh" not in scrub(text, None)


# --- untrusted answers: bounded decoding, task id checks and salvage, shown URLs ------------------------


def test_json_nesting_is_bounded_before_decoding() -> None:
    """64 levels decode; 65 (or 100,000) are refused without RecursionError; brackets in strings do not count."""
    assert loads_untrusted(b"[" * 64 + b"]" * 64) is not None
    for depth in (65, 1_000, 100_000):
        with pytest.raises(UnreadableJSON, match="nests deeper than 64"):
            loads_untrusted(b"[" * depth + b"]" * depth)
    assert loads_untrusted(json.dumps({"prompt": "[" * 500 + "{" * 500}).encode()) == {"prompt": "[" * 500 + "{" * 500}


def test_huge_numbers_decode_without_overflow() -> None:
    """A 400-digit or 5,000-digit integer and 1e999 decode (as floats) instead of raising."""
    value = loads_untrusted(b'{"a": ' + b"9" * 400 + b', "b": ' + b"9" * 5000 + b', "c": 1e999, "d": 12}')
    assert value == {"a": float("inf"), "b": float("inf"), "c": float("inf"), "d": 12}
    payload = {"data": {"taskId": TASK}, "estimate_usage": {"credits_used": float("inf")}}
    accepted = parse_submit_response(Response(status=200, headers={}, body=json.dumps(payload).encode()))
    assert (accepted.task_id, accepted.credits_used) == (TASK, None)


def test_unreadable_json_error_keeps_no_body() -> None:
    """The decoding error carries a reason, no body (unlike JSONDecodeError.doc) and no chained exception."""
    body = f'{{"echo": "{KEY}", "cut": '.encode()
    with pytest.raises(UnexpectedResponseError) as caught:
        parse_submit_response(Response(status=200, headers={}, body=body), scrub_secret=KEY)
    assert (caught.value.__cause__, caught.value.__context__) == (None, None)
    assert KEY not in str(caught.value) + repr(caught.value.body)


@pytest.mark.parametrize(
    ("raw", "task_id"),
    [
        (b'{"data": {"taskId": "fr_01ABC", "status": "proc', "fr_01ABC"),
        (b'{"id": "x1", "task_id": "t2", "taskId": "t3"}', "t3"),
        (b'{"id": "x1", "task_id": "t2"', "t2"),
        (b'{"chat_id": "fr_abdbddc2-36f4", "note": "created fr_01M1Y389KN0KN28AT3733Q505H"', TASK),
        (b'{"chat_id": "fr_abdbddc2abdbddc2"}', None),
        (b"<html>Bad Gateway</html>", None),
        (b"", None),
        (None, None),
        (b'{"taskId": "has space"}', None),
    ],
)
def test_task_id_salvage(raw: bytes | None, task_id: str | None) -> None:
    """The salvage scan finds taskId, then task_id, then id, then a bare fr_ id (never the chat_id)."""
    assert salvage_task_id(raw) == task_id


@pytest.mark.parametrize(
    ("value", "usable"),
    [
        (TASK, True),
        ("12345", True),
        ("", False),
        ("x" * 257, False),
        ("fr_\x1b[2J", False),
        ("\ud800", False),
        (KEY, False),
        (f"Bearer {KEY}", False),
    ],
)
def test_usable_task_ids(value: str, usable: bool) -> None:
    """A task id is printable, at most 256 characters, and never key-shaped."""
    assert (usable_task_id(value, KEY) is not None) is usable


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://go.fastrouter.ai/api/v1/videos", "https://go.fastrouter.ai/api/v1/videos"),
        ("https://cdn.example/v.mp4?X-Amz-Signature=abc#frag", "https://cdn.example/v.mp4"),
        ("https://user:pw@go.fastrouter.ai:8443/api", "https://[redacted]@go.fastrouter.ai:8443/api"),
        ("http://[bad", "<unparsable URL>"),
        ("http://127.0.0.1:99999/x", "<unparsable URL>"),
        ("/relative/path?q=1", "/relative/path"),
        ("https://x.example/" + "a" * 1000, "https://x.example/" + "a" * 279 + "..."),
        ("https://x.example/\x1b[2J", "https://x.example/?[2J"),
    ],
)
def test_loggable_urls(url: str, shown: str) -> None:
    """URLs in messages lose user-info, query and fragment, never raise, and stay short and printable."""
    assert loggable(url) == shown


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", "Mon, 01 Jan 99999 00:00:00 GMT"])
def test_retry_after_ignores_values_that_are_no_wait(value: str) -> None:
    """NaN, infinite and out-of-range Retry-After values are no hint at all."""
    assert retry_after_seconds({"retry-after": value}, now=0.0) is None
    assert retry_after_seconds({"retry-after-ms": value}) is None


def test_answer_repr_shows_no_body_or_header_values() -> None:
    """An answer's repr (kept in tracebacks' locals) shows neither its body nor its header values."""
    response = Response(status=200, headers={"x-echo": KEY}, body=KEY.encode())
    assert KEY not in repr(response)
