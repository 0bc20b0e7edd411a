"""The API key appears in no repr, str, log record or exception, whatever goes wrong."""

from __future__ import annotations

import asyncio
import logging
import pickle
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from fastrouter_async import (
    APIConnectionError,
    APITimeoutError,
    FastRouterError,
    FastRouterSession,
    InvalidRequestError,
    RetryPolicy,
    Timeouts,
)
from fastrouter_async._config import Secret
from fastrouter_async._transport import Transport
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan

from ._hostile import Answer, Received, serve
from .conftest import API_KEY, FAST_RETRY, SessionFactory

VEO: dict[str, Any] = {"model": "google/veo3", "prompt": "a cat surfing"}


async def test_key_appears_nowhere(
    make_session: SessionFactory, sim: FastRouterSimulator, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """A run with successes, failures, retries and a server echoing the key leaks it nowhere."""
    caplog.set_level(logging.DEBUG)  # every logger, aiohttp's included
    session = make_session()
    seen: list[object] = [session]
    errors: list[BaseException] = []

    job = await session.submit(**VEO)
    seen += [job, await job.status()]
    video = await job
    seen += [video, job, await video.download(tmp_path / "v.mp4")]

    echo = {"error": {"message": f"Invalid API key {API_KEY}", "type": "auth", "code": API_KEY, "status": 401}}
    sim.inject(Fault.status(401, route="submit", body=echo))
    # The first attempt and every replay with the same cache key (5 by default) crash, echoing the key.
    sim.inject(Fault.status(500, route="submit", body=f"crashed handling Bearer {API_KEY}", times=6))
    sim.inject(Fault.rate_limit(route="poll", retry_after=0, times=2))
    sim.plan_next(JobPlan(outcome="failed", error=f"upstream said no to {API_KEY}"))
    for _ in range(2):
        try:
            await session.submit(**VEO)
        except FastRouterError as exc:
            errors.append(exc)
    failing = await session.submit(**VEO)
    try:
        await failing
    except FastRouterError as exc:
        errors.append(exc)
    try:
        await session.job("fr_UNKNOWN", model="google/veo3")
    except FastRouterError as exc:
        errors.append(exc)
    assert len(errors) == 4

    texts = [repr(x) for x in seen] + [str(x) for x in seen]
    for error in errors:
        texts += ["".join(traceback.format_exception(error)), repr(error), repr(vars(error))]
    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(vars(session))]
    leaks = [t for t in texts if API_KEY in t or API_KEY[6:] in t]
    assert leaks == []
    assert any("[redacted]" in t for t in texts)  # the echoed key really was there, masked


def test_secret_is_masked_and_not_picklable() -> None:
    """The key holder shows no key in repr/str and refuses to be pickled."""
    secret = Secret(API_KEY)
    assert API_KEY not in repr(secret) + str(secret)
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(secret)


@pytest.mark.parametrize("bad_key", [f" {API_KEY}", f"{API_KEY}\n", "sk-v1-with space"])
def test_malformed_key_error_does_not_echo_it(bad_key: str) -> None:
    """A key with stray whitespace is refused without printing the key."""
    with pytest.raises(InvalidRequestError) as caught:
        FastRouterSession(bad_key)
    assert bad_key.strip() not in str(caught.value)


# --- the key in every form: exception chains of hostile answers ------------------------------------------


def exposures(error: BaseException, *, frames: bool = True) -> list[str]:
    """Every text an error carries: args, str, repr, attributes, notes, its chain, a traceback with locals."""
    texts: list[str] = []
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        exc = pending.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        texts += [str(exc), repr(exc), repr(exc.args), *map(str, getattr(exc, "__notes__", []))]
        for value in vars(exc).values():
            texts.append(repr(value))
            if isinstance(value, BaseException):
                pending.append(value)
        pending += [linked for linked in (exc.__cause__, exc.__context__) if linked is not None]
    if frames:
        texts.append("".join(traceback.TracebackException.from_exception(error, capture_locals=True).format()))
    return texts


async def failure_of(call: Awaitable[object]) -> FastRouterError:
    """The library error ``call`` raises, caught here so that its traceback holds no test's locals."""
    try:
        await call
    except FastRouterError as exc:
        return exc
    raise AssertionError("no FastRouterError was raised")


def assert_keyless(error: BaseException, *, frames: bool = True) -> None:
    leaks = [text for text in exposures(error, frames=frames) if API_KEY in text or API_KEY[6:] in text]
    assert leaks == []


def echoing(body: bytes, *, bare: bool = False, **answer: Any) -> Callable[[Received], Answer]:
    """A handler answering ``body`` with the request's Authorization (``bare``: only the key) at ``KEY``."""

    def handler(request: Received) -> Answer:
        sent = request.headers["authorization"].removeprefix("Bearer " if bare else "")
        return Answer(body=body.replace(b"KEY", sent.encode()), **answer)

    return handler


HOSTILE_ANSWERS = {
    "truncated-json-with-key": echoing(b'{"data": {"taskId": "fr_01ECHO", "note": "KEY", "status": "proc'),
    "not-utf8-with-key": echoing(b'{"error": "KEY"}\xff', headers=(("Content-Type", "application/json"),)),
    "nested-with-key": echoing(b'{"note": "KEY", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"),
    "html-500-with-key": echoing(b"<html>KEY</html>", status=500, headers=(("Content-Type", "text/html"),)),
    "cut-short": echoing(b'{"data": {"note": "KEY"', declared_length=4096),
    "bad-content-length": echoing(b"KEY", headers=(("Content-Length", "abc"),)),
    "unparsable-location": echoing(b"KEY", status=307, headers=(("Location", "http://[bad"),)),
    "redirect-with-key": echoing(b"KEY", status=308, headers=(("Location", "/elsewhere?KEY"),)),
    "key-as-task-id": echoing(b'{"data": {"taskId": "KEY", "status": "succeed"}}', bare=True),
    "key-as-salvaged-task-id": echoing(b'"taskId":"KEY"', bare=True),
}


@pytest.mark.parametrize("name", list(HOSTILE_ANSWERS))
@pytest.mark.parametrize("route", ["submit", "poll"])
async def test_no_error_of_a_hostile_answer_carries_the_key(name: str, route: str) -> None:
    """Whatever a server answers, the error raised carries the key nowhere in its chain, attributes or locals."""
    async with serve() as server:
        setattr(server, route, HOSTILE_ANSWERS[name])
        async with FastRouterSession(API_KEY, base_url=server.base_url, retry_policy=FAST_RETRY) as session:
            if route == "submit":
                error = await failure_of(session.submit(**VEO))
            else:
                error = await failure_of(session.job("fr_01ECHO", model="google/veo3").status())
    assert any(API_KEY in r.headers.get("authorization", "") for r in server.received)
    assert_keyless(error)


async def test_connection_refused_error_carries_no_key() -> None:
    """A connection that fails carries no aiohttp exception (whose frames hold the request headers)."""
    async with FastRouterSession(
        API_KEY, base_url="http://127.0.0.1:9/api/v1", retry_policy=RetryPolicy(max_attempts=1)
    ) as session:
        error = await failure_of(session.job("fr_1", model="google/veo3").status())
    assert isinstance(error, APIConnectionError)
    assert (error.__cause__, error.__context__) == (None, None)
    assert_keyless(error)


@pytest.mark.parametrize(
    "base_url",
    [
        f"https://go.fastrouter.ai/api/v1?key={API_KEY}",
        f"https://user:{API_KEY}@go.fastrouter.ai/api/v1",
        f"https://{API_KEY}@go.fastrouter.ai/api/v1",
        f"https://go.fastrouter.ai/api/v1#{API_KEY}",
        f"http://[{API_KEY}/api/v1",
        f"https://go.fastrouter.ai:{API_KEY}/api/v1",
    ],
)
def test_base_url_with_a_secret_is_refused_without_echoing_it(base_url: str) -> None:
    """A base URL carrying the key (query, user-info, fragment, broken host) is refused; the error never shows it.

    (The frames' locals are not checked: they hold the caller's own argument.)
    """
    with pytest.raises(InvalidRequestError) as caught:
        FastRouterSession(API_KEY, base_url=base_url)
    assert caught.value.field == "base_url"
    assert_keyless(caught.value, frames=False)


def test_request_headers_hide_the_key_in_their_repr() -> None:
    """The headers the transport sends with the key show it masked in a repr (tracebacks with locals)."""
    transport = Transport(base_url="https://go.fastrouter.ai/api/v1", secret=Secret(API_KEY), timeouts=Timeouts())
    headers = transport._json_api_headers
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert API_KEY not in repr(headers)
    assert API_KEY not in str(headers)


async def test_timeout_error_carries_no_key() -> None:
    """A request that times out raises APITimeoutError with no aiohttp exception chained and no key anywhere."""

    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)  # takes the request, never answers; closed below
        await reader.read()

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with FastRouterSession(
            API_KEY,
            base_url=f"http://127.0.0.1:{port}/api/v1",
            retry_policy=RetryPolicy(max_attempts=1),
            timeouts=Timeouts(connect=1.0, request=0.05),
        ) as session:
            error = await failure_of(session.job("fr_1", model="google/veo3").status())
    finally:
        listener.close()
        for writer in writers:
            writer.close()
            await writer.wait_closed()
        await listener.wait_closed()
    assert isinstance(error, APITimeoutError)
    assert (error.__cause__, error.__context__) == (None, None)
    assert_keyless(error)
