"""Property-based: whatever the submit or a poll route answers, only documented outcomes follow.

Each example serves one generated answer from a raw loopback server (``tests/_hostile.py``):
any status, headers (odd ``Location``, ``Retry-After``, encodings, lengths), content types,
JSON of any shape, depth and size, huge and non-finite numbers, non-UTF-8, truncated bodies,
video bytes, and answers that echo the key. The properties:

* the outcome is a correct result or a documented :class:`FastRouterError`, never another exception;
* a paid submit body is sent once (again only after a 429, when the server refused it);
* a create answer that showed a task id and arrived whole ends with that id, on the job or on
  the :class:`SubmitUncertainError`;
* a poll is SUCCEEDED from the body itself only for a media type carrying video bytes;
* no error carries the key, in its chain, attributes or formatted locals;
* in a batch, one job's hostile submit or poll answers end that job only: the others succeed.

The default profile runs 50 examples per test; ``HYPOTHESIS_PROFILE=thorough`` runs 2,000.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastrouter_async import (
    BatchOutcome,
    FastRouterError,
    FastRouterSession,
    JobState,
    JobStatus,
    OutcomeStatus,
    PollRoute,
    ReplayPolicy,
    ResultSource,
    RetryPolicy,
    SubmitUncertainError,
    Timeouts,
    VideoJob,
)
from fastrouter_async._models import VideoRequest
from fastrouter_async._protocol import build_submit_body
from fastrouter_async._sniff import is_video_content_type, sniff_video

from ._hostile import Answer, HostileServer, Received, json_answer, serve
from .conftest import API_KEY, FAST_POLL
from .test_secrets import assert_keyless

REQUEST = VideoRequest(model="google/veo3", prompt="a hostile answer")
PAID_BODY = build_submit_body(REQUEST)
PLANTED = "fr_01PLANTED000000000000000A"
TOKEN = "@@KEY@@"  # replaced by the key the request carried: a server echoing it back
RETRY = RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.001, max_retry_after=0.001)
TIMEOUTS = Timeouts(connect=2.0, request=3.0, read=3.0)
MP4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00"
WEBM = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81"
_FRAMING_HEADERS = {"content-length", "transfer-encoding", "content-encoding"}

# --- strategies ------------------------------------------------------------------------------------------

words = st.sampled_from(
    ["processing", "succeed", "SUCCESS", "completed", "failed", "error", "expired", "queued", "", " ", "[/red]"]
)
strings = st.one_of(
    st.text(max_size=20),
    words,
    st.sampled_from([TOKEN, f"Bearer {TOKEN}", PLANTED, "https://cdn.example/v.mp4", "http://[bad", "\ud800x"]),
)
numbers = st.one_of(
    st.integers(min_value=-(10**500), max_value=10**500),
    st.floats(allow_nan=True, allow_infinity=True),
    st.just(int("9" * 400)),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)
keys = st.one_of(
    st.sampled_from(["data", "status", "taskId", "task_id", "id", "url", "generations", "error", "code", "usage"]),
    st.sampled_from(["estimate_usage", "credits_used", "costUsd", "message", "detail", "fastrouter_assets"]),
    st.text(max_size=8),
)
any_json = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)


def dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


@st.composite
def fastrouter_shaped(draw: st.DrawFn) -> bytes:
    """A body shaped like FastRouter's answers, with any values in its fields."""
    data = draw(st.dictionaries(st.sampled_from(["status", "taskId", "generations", "costUsd", "url"]), any_json))
    if draw(st.booleans()):
        data["generations"] = draw(st.lists(st.dictionaries(keys, any_json, max_size=4), max_size=3))
    top = draw(st.dictionaries(keys, any_json, max_size=4))
    top["data"] = data
    return dumps(top)


@st.composite
def planted_create_answer(draw: st.DrawFn) -> bytes:
    """A create answer showing the task id PLANTED first, with anything after it (which may be unreadable)."""
    head = f'{{"data": {{"taskId": "{PLANTED}", "status": "processing"'.encode()
    tail = draw(
        st.one_of(
            st.just(b"}}"),
            any_json.map(lambda v: b'}, "estimate_usage": {"credits_used": ' + dumps(v) + b"}}"),
            st.integers(60, 3000).map(lambda n: b', "x": ' + b"[" * n + b"]" * n + b"}}"),
            st.just(b', "credits": ' + b"9" * 400 + b"}}"),
            st.binary(max_size=40),
        )
    )
    return head + tail


bodies = st.one_of(
    any_json.map(dumps),
    fastrouter_shaped(),
    planted_create_answer(),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.binary(max_size=300),
    any_json.map(lambda v: dumps(v) + b"\xff\xfe"),
    any_json.map(lambda v: dumps(v)[: max(0, len(dumps(v)) // 2)]),
    st.binary(max_size=200).map(lambda b: MP4 + b),
    st.binary(max_size=200).map(lambda b: WEBM + b),
    st.sampled_from([b"", b"<!doctype html><html>expired</html>", f"<html>{TOKEN}</html>".encode()]),
    st.just(b'{"data": {"status": "succeed", "costUsd": ' + b"9" * 5000 + b"}}"),  # past int()'s digit limit
)
content_types = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-16",
            "text/html",
            "text/plain",
            "video/mp4",
            "video/webm",
            "application/octet-stream",
            "application/problem+json",
            "multipart/mixed",
            "",
        ]
    ),
)
header_values = st.one_of(
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=30),
    st.sampled_from(["http://[bad", "", "ftp://x/y", "//elsewhere.example/x", "/api/v1/videos", f"/x?k={TOKEN}"]),
    st.sampled_from(["http://127.0.0.1:1/x", "nan", "inf", "-1", "1e999", "Mon, 01 Jan 99999 00:00:00 GMT", "gzip"]),
)
extra_headers = st.lists(
    st.tuples(
        st.sampled_from(
            ["Location", "Retry-After", "Retry-After-Ms", "Content-Encoding", "Transfer-Encoding", "X-Echo", "Location"]
        ),
        header_values,
    ),
    max_size=3,
)


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    status = draw(
        st.one_of(
            st.sampled_from([200, 201, 202, 204, 301, 302, 303, 307, 308, 400, 404, 429, 500, 502]),
            st.integers(200, 599),
        )
    )
    headers = list(draw(extra_headers))
    ctype = draw(content_types)
    if ctype is not None:
        headers.append(("Content-Type", ctype))
    body = draw(bodies)
    cut = draw(st.one_of(st.none(), st.integers(1, 5000)))
    return Answer(
        status=status, headers=tuple(headers), body=body, declared_length=None if cut is None else len(body) + cut
    )


def echoing(answer: Answer) -> Callable[[Received], Answer]:
    """A handler serving ``answer`` with every TOKEN replaced by the key the request carried."""

    def handler(request: Received) -> Answer:
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        headers = tuple((name, value.replace(TOKEN, key)) for name, value in answer.headers)
        body = answer.body.replace(TOKEN.encode(), key.encode())
        declared = None if answer.declared_length is None else answer.declared_length + len(body) - len(answer.body)
        return Answer(status=answer.status, headers=headers, body=body, declared_length=declared)

    return handler


def arrives_whole(answer: Answer) -> bool:
    """Whether the client reads the body exactly as generated (no cut, no framing or encoding games)."""
    names = {name.lower() for name, _ in answer.headers}
    return answer.declared_length is None and not names & _FRAMING_HEADERS and answer.status not in (204, 304)


async def outcome_of(base_url: str, route: PollRoute | None) -> object:
    """One submit (``route=None``) or one status poll: its result, or the exception it raised.

    The exception is caught here, in a frame whose locals hold nothing of the server's (its record of
    requests holds the key), so that a traceback formatted with locals shows only the library's.
    """
    # Submits without replays: the property is about one answer, and the paid body is sent exactly once.
    options: dict[str, Any] = {"replay_policy": ReplayPolicy(enabled=False)} if route is None else {"poll_route": route}
    async with FastRouterSession(
        API_KEY, base_url=base_url, poll_policy=FAST_POLL, retry_policy=RETRY, timeouts=TIMEOUTS, **options
    ) as session:
        try:
            if route is None:
                return await session.submit(REQUEST)
            return await session.job(PLANTED, model="google/veo3").status()
        except Exception as exc:
            return exc


def check_error(outcome: object) -> None:
    if isinstance(outcome, BaseException):
        assert isinstance(outcome, FastRouterError), f"undocumented {type(outcome).__name__}: {outcome!r}"
        assert_keyless(outcome)


# --- properties ------------------------------------------------------------------------------------------


@given(answer=answers())
def test_any_create_answer_ends_in_a_documented_outcome(answer: Answer) -> None:
    """A submit answered with anything: a job or a documented error; sent once; a shown task id kept."""

    async def run() -> tuple[object, int]:
        async with serve(HostileServer(submit=echoing(answer))) as server:
            outcome = await outcome_of(server.base_url, None)
            return outcome, server.times_sent(PAID_BODY)

    outcome, sent = asyncio.run(run())
    check_error(outcome)
    if answer.status != 429:
        assert sent == 1, f"the paid body was sent {sent} times"
    if isinstance(outcome, VideoJob):
        assert 200 <= answer.status < 300
    shows_planted = answer.body.startswith(f'{{"data": {{"taskId": "{PLANTED}"'.encode())
    if shows_planted and arrives_whole(answer) and not 400 <= answer.status < 500:
        kept = outcome.task_id if isinstance(outcome, VideoJob | SubmitUncertainError) else None
        assert kept == PLANTED, f"task id lost: {outcome!r}"


@pytest.mark.parametrize("route", list(PollRoute))
@given(answer=answers())
def test_any_status_answer_ends_in_a_documented_outcome(route: PollRoute, answer: Answer) -> None:
    """A poll answered with anything: a status or a documented error; "done" from the body only for a video."""

    async def run() -> object:
        async with serve(HostileServer(poll=echoing(answer))) as server:
            return await outcome_of(server.base_url, route)

    outcome = asyncio.run(run())
    check_error(outcome)
    if isinstance(outcome, JobStatus) and outcome.source is ResultSource.POLL_BODY:
        ctype = {k.lower(): v for k, v in answer.headers}.get("content-type")
        assert outcome.state is JobState.SUCCEEDED
        assert 200 <= answer.status < 300
        assert is_video_content_type(ctype)
        assert sniff_video(answer.body) is not None
    if isinstance(outcome, JobStatus) and outcome.state is JobState.SUCCEEDED and outcome.source is ResultSource.URL:
        assert outcome.urls
        assert all(url.startswith(("http://", "https://")) for url in outcome.urls)


@pytest.mark.parametrize("where", ["submit", "poll"])
@given(answer=answers())
def test_one_hostile_job_never_ends_a_batch(where: str, answer: Answer) -> None:
    """A batch in which one job's submit or polls get a hostile answer: every job has its own outcome."""
    hostile = echoing(answer)
    normal = HostileServer()

    def submit(request: Received) -> Answer:
        if where == "submit" and b"hostile" in request.body:
            return hostile(request)
        if b"hostile" in request.body:
            return json_answer({"data": {"taskId": PLANTED, "status": "processing"}})
        return normal.submit(request)

    hostile_polls = 0

    def poll(request: Received) -> Answer:
        nonlocal hostile_polls
        if where != "poll" or request.task_id != PLANTED:
            return normal.poll(request)
        hostile_polls += 1  # three hostile answers, then the job fails: no wait depends on the clock
        return hostile(request) if hostile_polls <= 3 else json_answer({"data": {"status": "failed"}})

    async def run() -> list[BatchOutcome]:
        async with (
            serve(HostileServer(submit=submit, poll=poll)) as server,
            FastRouterSession(
                API_KEY, base_url=server.base_url, poll_policy=FAST_POLL, retry_policy=RETRY, timeouts=TIMEOUTS
            ) as session,
        ):
            requests = [VideoRequest(model="google/veo3", prompt=p) for p in ("one", "hostile", "two")]
            async with session.generate_many(requests, timeout=30.0) as batch:  # a guard, never reached
                return [outcome async for outcome in batch]

    outcomes = {o.request.prompt: o for o in asyncio.run(run())}
    assert sorted(outcomes) == ["hostile", "one", "two"]
    assert [outcomes[p].status for p in ("one", "two")] == [OutcomeStatus.SUCCEEDED] * 2
    if outcomes["hostile"].error is not None:
        assert_keyless(outcomes["hostile"].error)
