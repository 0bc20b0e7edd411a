"""The transport's redirect handling, answer reading and event-loop binding, against real loopback servers."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from fastrouter_async import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    FastRouterSession,
    SubmitUncertainError,
    Timeouts,
    UnexpectedResponseError,
)
from fastrouter_async._config import MAX_JSON_BYTES, Secret
from fastrouter_async._protocol import HttpCall
from fastrouter_async._transport import Transport
from fastrouter_async.testing import FastRouterSimulator, SimulatorServer

from ._aioserver import serve_handler
from .conftest import API_KEY, FAST_POLL, FAST_RETRY

VEO: dict[str, Any] = {"model": "google/veo3", "prompt": "a cat surfing"}


class Redirector:
    """A tiny server whose /api/v1/* routes redirect as told, recording what it received."""

    def __init__(self) -> None:
        self.target = ""
        self.status = 307
        self.seen: list[tuple[str, str, bool]] = []
        self.origin = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path, "Authorization" in request.headers))
        if request.path.startswith("/loop"):
            return web.Response(status=302, headers={"Location": "/loop/again"})
        if request.path.startswith("/ftp"):
            return web.Response(status=302, headers={"Location": "ftp://127.0.0.1/file"})
        if request.path.startswith("/same/"):
            return web.Response(status=self.status, headers={"Location": "/api/v1" + request.path[len("/same") :]})
        if request.path.startswith("/api/v1/") and not self.target:
            return web.json_response({"data": {"taskId": "fr_SAMEORIGIN", "status": "processing"}})
        return web.Response(status=self.status, headers={"Location": self.target + request.path_qs})


@pytest.fixture
async def redirector() -> AsyncIterator[Redirector]:
    state = Redirector()
    async with serve_handler(state.handle) as state.origin:
        yield state


def session_at(base_url: str) -> FastRouterSession:
    return FastRouterSession(API_KEY, base_url=base_url, poll_policy=FAST_POLL, retry_policy=FAST_RETRY)


async def test_api_redirect_to_another_host_drops_the_key(
    redirector: Redirector, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """A poll redirected to another host reaches it without the key (which then refuses)."""
    redirector.target = server.origin
    async with session_at(redirector.origin + "/api/v1") as session:
        with pytest.raises(AuthenticationError):
            await session.job("fr_1", model="google/veo3").status()
    assert redirector.seen == [("POST", "/api/v1/getVideoResponse", True)]
    assert [("Authorization" in r.headers, r.method) for r in sim.records.polls] == [(False, "POST")]


@pytest.mark.parametrize(("status", "method"), [(307, "POST"), (308, "POST"), (303, "GET"), (302, "GET")])
async def test_same_origin_redirect_keeps_the_key(redirector: Redirector, status: int, method: str) -> None:
    """A poll's same-origin redirect keeps the key; 307/308 keep POST and its body, 302/303 become GET."""
    redirector.status = status
    async with session_at(redirector.origin + "/same") as session:
        snapshot = await session.job("fr_SAMEORIGIN", model="google/veo3").status()
    assert snapshot.raw_status == "processing"
    assert redirector.seen[1] == (method, "/api/v1/getVideoResponse", True)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("where", ["same", "other"])
async def test_submit_redirect_is_refused_never_resent(
    redirector: Redirector, server: SimulatorServer, sim: FastRouterSimulator, status: int, where: str
) -> None:
    """A redirect answering a submit is a clear APIStatusError; the paid body is sent once, never re-sent."""
    redirector.status = status
    if where == "other":
        redirector.target = server.origin
    base = redirector.origin + ("/same" if where == "same" else "/api/v1")
    async with session_at(base) as session:
        with pytest.raises(APIStatusError, match="never re-sent") as caught:
            await session.submit(**VEO)
    assert caught.value.status_code == status
    assert redirector.seen == [("POST", base[len(redirector.origin) :] + "/videos", True)]
    assert sim.records.submits == []


async def test_submit_see_other_is_uncertain_with_the_task_id_it_shows(redirector: Redirector) -> None:
    """A 303 See Other answering a submit may mean a created job: SubmitUncertainError keeps the id it shows."""
    redirector.status = 303
    redirector.target = redirector.origin + "/api/v1/videos/fr_01SEEOTHER0000000000000000"
    async with session_at(redirector.origin + "/api/v1") as session:
        with pytest.raises(SubmitUncertainError) as caught:
            await session.submit(**VEO)
    assert caught.value.task_id == "fr_01SEEOTHER0000000000000000"
    assert "fr_01SEEOTHER0000000000000000" in str(caught.value)
    assert len(redirector.seen) == 1


async def test_unparsable_location_is_an_unexpected_answer(redirector: Redirector) -> None:
    """A redirect to ``http://[bad`` is UnexpectedResponseError for a poll, a refusal for a submit; never ValueError."""
    redirector.target = "http://[bad"
    async with session_at(redirector.origin + "/api/v1") as session:
        with pytest.raises(UnexpectedResponseError, match="does not parse"):
            await session.job("fr_1", model="google/veo3").status()
        with pytest.raises(APIStatusError, match="unparsable URL"):
            await session.submit(**VEO)


async def test_redirect_loop_is_cut(redirector: Redirector) -> None:
    """Endless redirects end with APIConnectionError after a bounded number of hops."""
    async with session_at(redirector.origin + "/loop") as session:
        with pytest.raises(APIConnectionError, match="redirects"):
            await session.job("fr_1", model="google/veo3").status()
    assert len(redirector.seen) == 6


async def test_redirect_to_non_http_is_refused(redirector: Redirector) -> None:
    """A redirect to a non-HTTP URL is refused, never followed."""
    async with session_at(redirector.origin + "/ftp") as session:
        with pytest.raises(APIConnectionError, match="non-HTTP"):
            await session.job("fr_1", model="google/veo3").status()


@pytest.mark.parametrize(
    ("base_url", "url", "trusted"),
    [
        ("https://go.fastrouter.ai/api/v1", "https://go.fastrouter.ai/api/v1/videos", True),
        ("https://go.fastrouter.ai/api/v1", "https://api.fastrouter.ai/videos-content/fr_1", True),
        ("https://api.fastrouter.ai/api/v1", "https://go.fastrouter.ai/api/v1/videos", True),
        ("https://go.fastrouter.ai/api/v1", "https://videocdn.pollo.ai/x.mp4", False),
        ("https://go.fastrouter.ai/api/v1", "http://api.fastrouter.ai/videos-content/fr_1", False),
        ("https://go.fastrouter.ai/api/v1", "https://api.fastrouter.ai:8443/videos-content/fr_1", False),
        ("https://go.fastrouter.ai/api/v1", "https://evil.fastrouter.ai.example/x", False),
        ("https://proxy.example/api/v1", "https://api.fastrouter.ai/videos-content/fr_1", False),
        ("http://127.0.0.1:8000/api/v1", "http://127.0.0.1:8000/videos-content/fr_1", True),
        ("http://127.0.0.1:8000/api/v1", "http://127.0.0.1:8001/videos-content/fr_1", False),
        ("http://127.0.0.1:8000/api/v1", "http://localhost:8000/videos-content/fr_1", False),
    ],
)
def test_where_the_key_may_go(base_url: str, url: str, trusted: bool) -> None:
    """The key goes to the base URL's origin, and to FastRouter's other https gateway; nowhere else."""
    transport = Transport(base_url=base_url, secret=Secret(API_KEY), timeouts=Timeouts())
    assert transport.is_api_origin(url) is trusted
    assert transport.is_api_origin(URL(url)) is trusted


def test_session_bound_to_its_first_event_loop(server: SimulatorServer) -> None:
    """Using one session from a second event loop is a precise RuntimeError, not an aiohttp crash."""
    session = session_at("http://127.0.0.1:9/api/v1")

    async def use() -> None:
        await session.job("fr_1", model="google/veo3").status()

    with pytest.raises(APIConnectionError):  # port 9 refuses: the first loop binds the session anyway
        asyncio.run(use())
    with pytest.raises(RuntimeError, match="another event loop"):
        asyncio.run(use())

    async def close() -> None:
        await session.aclose()

    with pytest.raises(RuntimeError, match="another event loop"):
        asyncio.run(session.job("fr_1").status())
    asyncio.run(close())


# -- reading answers ------------------------------------------------------------------------------

ANSWER = json.dumps({"data": {"taskId": "fr_1", "status": "processing"}}).encode()
OVERSIZED = b'{"pad": "' + b" " * (MAX_JSON_BYTES + 1) + b'"}'


async def framed(request: web.Request) -> web.StreamResponse:
    """The same kinds of answer, framed with a length, chunked, or gzip-compressed."""
    body = OVERSIZED if request.query.get("size") == "over" else ANSWER
    framing = request.match_info["framing"]
    if framing == "length":
        return web.Response(body=body, content_type="application/json")
    if framing == "gzip":
        headers = {"Content-Encoding": "gzip"}
        return web.Response(body=gzip.compress(body), content_type="application/json", headers=headers)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for start in range(0, len(body), 1 << 20):
        await response.write(body[start : start + (1 << 20)])
    await response.write_eof()
    return response


@pytest.fixture
async def framing_origin() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/api/v1/{framing}", framed)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.mark.parametrize("framing", ["length", "chunked", "gzip"])
async def test_answers_are_read_whole_however_framed(framing_origin: str, framing: str) -> None:
    """An API answer is read whole whether it comes with a length, chunked, or compressed."""
    transport = Transport(base_url=f"{framing_origin}/api/v1", secret=Secret(API_KEY), timeouts=Timeouts())
    try:
        response = await transport.request(HttpCall("GET", f"{framing_origin}/api/v1/{framing}"))
    finally:
        await transport.aclose()
    assert (response.status, response.body, response.media) == (200, ANSWER, False)
    assert response.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("framing", ["length", "chunked", "gzip"])
async def test_oversized_answers_are_refused_however_framed(framing_origin: str, framing: str) -> None:
    """An answer over MAX_JSON_BYTES is refused, also when compression hides its size or no length is sent."""
    transport = Transport(base_url=f"{framing_origin}/api/v1", secret=Secret(API_KEY), timeouts=Timeouts())
    try:
        with pytest.raises(UnexpectedResponseError, match=r"too large|exceeds"):
            await transport.request(HttpCall("GET", f"{framing_origin}/api/v1/{framing}?size=over"))
    finally:
        await transport.aclose()


async def test_requests_are_logged_at_debug_level_without_their_query(
    framing_origin: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With debug logging on, each request is logged with its status and time, its URL without the query."""
    transport = Transport(base_url=f"{framing_origin}/api/v1", secret=Secret(API_KEY), timeouts=Timeouts())
    try:
        with caplog.at_level(logging.DEBUG, "fastrouter_async"):
            await transport.request(HttpCall("GET", f"{framing_origin}/api/v1/length?sig=secret"))
        await transport.request(HttpCall("GET", f"{framing_origin}/api/v1/length?sig=quiet"))
    finally:
        await transport.aclose()
    messages = [r.getMessage() for r in caplog.records if r.name == "fastrouter_async"]
    assert len(messages) == 1
    assert messages[0].startswith(f"GET {framing_origin}/api/v1/length -> 200 in ")
