"""Hostile download answers: nothing but a verified video ever reaches a final path, and the key stays home."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fastrouter_async import (
    DownloadError,
    FastRouterSession,
    InvalidRequestError,
    RetryPolicy,
    Timeouts,
    VideoResult,
)
from fastrouter_async._config import DEFAULT_MAX_DOWNLOAD_BYTES
from fastrouter_async._hosts import name_problem
from fastrouter_async._sniff import SNIFF_BYTES, sniff_video
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan, sample_video

from ._aioserver import serve_handler
from .conftest import API_KEY, FAST_POLL, FAST_RETRY, FAST_TIMEOUTS, SessionFactory

VIDEO = sample_video()
TASK = "fr_01HOSTILEDOWNLOAD0000000000"
Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.define
class Seen:
    """One request the hostile server received."""

    method: str
    path: str
    headers: dict[str, str]


class HostileServer:
    """A tiny FastRouter look-alike whose poll says "done" and whose download link answers as told.

    ``answer`` makes the download answer; ``link`` is the video URL the poll hands out (by default
    this server's ``/dl/`` route, or anything else: a link-local address, a redirect).
    """

    def __init__(self) -> None:
        self.origin = ""
        self.answer: Answer = serve(VIDEO)
        self.link: str | None = None
        self.seen: list[Seen] = []

    @property
    def base_url(self) -> str:
        return f"{self.origin}/api/v1"

    @property
    def downloads(self) -> list[Seen]:
        return [s for s in self.seen if not s.path.startswith("/api/")]

    @property
    def polls(self) -> list[Seen]:
        return [s for s in self.seen if s.path.startswith("/api/")]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen(request.method, request.path_qs, dict(request.headers)))
        if request.path.startswith("/api/v1/"):
            link = self.link if self.link is not None else f"{self.origin}/dl/{TASK}.mp4?sig=abc"
            return web.json_response(success(link))
        return await self.answer(request)


def success(link: str) -> dict[str, Any]:
    """A finished-job poll answer whose only video link is ``link``."""
    generation = {"id": "g1", "mediaType": "video", "status": "succeed", "url": link, "failMsg": ""}
    return {
        "code": "SUCCESS",
        "message": "success",
        "data": {"taskId": TASK, "status": "succeed", "generations": [generation]},
    }


def serve(
    body: bytes, *, status: int = 200, content_type: str | None = "video/mp4", headers: dict[str, str] | None = None
) -> Answer:
    """A download answer with this body, status and content type (``None``: no content type at all)."""

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.Response(status=status, body=body if status != 204 else None, headers=headers or {})
        if content_type is None:
            response.headers.popall("Content-Type", None)
        else:
            response.headers["Content-Type"] = content_type
        return response

    return answer


@pytest.fixture
async def hostile() -> AsyncIterator[HostileServer]:
    state = HostileServer()
    async with serve_handler(state.handle) as state.origin:
        yield state


@pytest.fixture
async def hostile_session(hostile: HostileServer) -> AsyncIterator[FastRouterSession]:
    async with FastRouterSession(
        API_KEY, base_url=hostile.base_url, poll_policy=FAST_POLL, retry_policy=FAST_RETRY, timeouts=FAST_TIMEOUTS
    ) as session:
        yield session


async def result_of(session: FastRouterSession) -> VideoResult:
    return await session.job(TASK, model="google/veo3")


def nothing_written(folder: Path) -> bool:
    """No final file and no temporary file left in ``folder``."""
    return sorted(p.name for p in folder.iterdir()) == []


ZEROS_BOMB = gzip.compress(bytes(16 * 1024 * 1024), compresslevel=9)  # ~16 KiB that decode to 16 MiB

NOT_VIDEOS: dict[str, Answer] = {
    "html link-expired page": serve(b"<!DOCTYPE html><html><body>Link expired</body></html>", content_type="text/html"),
    "json error body": serve(b'{"error": "AccessDenied", "message": "expired"}', content_type="application/json"),
    "empty 204": serve(b"", status=204, content_type=None),
    "empty 200": serve(b"", content_type="video/mp4"),
    "html under video/mp4": serve(b"<html><head><title>Expired</title></head></html>"),
    "wrong magic (png)": serve(b"\x89PNG\r\n\x1a\n" + os.urandom(4000), content_type="application/octet-stream"),
    "random bytes without a type": serve(os.urandom(4000), content_type=None),
    "xml error from a bucket": serve(b"<?xml version='1.0'?><Error>Denied</Error>", content_type="application/xml"),
    "gzip bomb of zeros": serve(ZEROS_BOMB, headers={"Content-Encoding": "gzip"}),
    "plain text": serve(b"Forbidden", content_type="text/plain"),
}


@pytest.mark.parametrize("case", list(NOT_VIDEOS))
async def test_a_body_that_is_not_a_video_is_never_written(
    hostile: HostileServer, hostile_session: FastRouterSession, tmp_path: Path, case: str
) -> None:
    """Error pages, JSON, empty bodies, wrong magic bytes and bombs end in DownloadError, with fresh links asked for."""
    hostile.answer = NOT_VIDEOS[case]
    video = await result_of(hostile_session)
    with pytest.raises(DownloadError, match=r"not a video|empty") as caught:
        await video.download(tmp_path / "v.mp4")
    assert nothing_written(tmp_path)
    assert TASK in str(caught.value)
    assert len(hostile.polls) >= 2  # treated like an expired link: the task was polled for fresh links
    assert API_KEY not in str(caught.value)


async def test_error_names_the_content_type_and_what_the_bytes_look_like(
    hostile: HostileServer, hostile_session: FastRouterSession, tmp_path: Path
) -> None:
    """The DownloadError says the answer's content type and a safe description of its bytes, never the bytes."""
    hostile.answer = serve(b"<html><body>sk-v1-LEAKED secret page</body></html>", content_type="video/mp4")
    video = await result_of(hostile_session)
    with pytest.raises(DownloadError) as caught:
        await video.download(tmp_path / "v.mp4")
    message = str(caught.value)
    assert "video/mp4" in message
    assert "HTML text" in message
    assert "LEAKED" not in message


async def test_a_real_video_without_a_content_type_is_accepted(
    hostile: HostileServer, hostile_session: FastRouterSession, tmp_path: Path
) -> None:
    """A storage host that sends no content type (or a generic binary one) still delivers a real video."""
    for content_type in (None, "binary/octet-stream", "application/octet-stream"):
        hostile.answer = serve(VIDEO, content_type=content_type)
        written = await (await result_of(hostile_session)).download(tmp_path / "v.mp4")
        assert written.path.read_bytes() == VIDEO


async def test_gzip_bomb_is_counted_after_decoding(
    hostile: HostileServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    """A gzip-encoded body that starts like a video is stopped at the limit counted in decoded bytes."""
    bomb = gzip.compress(VIDEO[:64] + bytes(8 * 1024 * 1024))
    hostile.answer = serve(bomb, headers={"Content-Encoding": "gzip"})
    async with FastRouterSession(
        API_KEY,
        base_url=hostile.base_url,
        poll_policy=FAST_POLL,
        retry_policy=FAST_RETRY,
        max_download_bytes=1024 * 1024,
    ) as session:
        with pytest.raises(DownloadError, match="max_bytes"):
            await (await result_of(session)).download(tmp_path / "v.mp4")
    assert nothing_written(tmp_path)
    assert len(bomb) < 64 * 1024


async def test_default_download_limit_refuses_an_endless_announcement(
    hostile: HostileServer, hostile_session: FastRouterSession, tmp_path: Path
) -> None:
    """With no limit given, a body announced larger than DEFAULT_MAX_DOWNLOAD_BYTES is refused at once."""
    assert hostile_session.max_download_bytes == DEFAULT_MAX_DOWNLOAD_BYTES

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.content_length = DEFAULT_MAX_DOWNLOAD_BYTES + 1
        await response.prepare(request)
        await response.write(VIDEO[:4096])
        return response

    hostile.answer = huge
    with pytest.raises(DownloadError, match="max_bytes"):
        await (await result_of(hostile_session)).download(tmp_path / "v.mp4")
    assert nothing_written(tmp_path)
    assert len(hostile.downloads) == 1  # refused, not retried


async def test_inline_base64_that_is_not_a_video_is_refused(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """An inline base64 result whose bytes are an HTML page raises DownloadError and writes nothing."""
    sim.default_plan = JobPlan(outcome="inline_base64", video=b"<html><body>quota exceeded</body></html>")
    session = make_session()
    video = await (await session.submit(model="google/veo3", prompt="a cat surfing"))
    with pytest.raises(DownloadError, match="not a video"):
        await video.download(tmp_path / "v.mp4")
    assert nothing_written(tmp_path)


async def test_poll_body_that_turns_into_a_page_is_refused(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A poll route that answered with the video, then serves an HTML page as video/mp4, writes nothing."""
    sim.default_plan = JobPlan(outcome="video_body")
    session = make_session()
    video = await (await session.submit(model="google/veo3", prompt="a cat surfing"))
    sim.inject(Fault.serve(b"<html><body>temporarily unavailable</body></html>", route="poll", times=None))
    with pytest.raises(DownloadError):
        await video.download(tmp_path / "v.mp4")
    assert nothing_written(tmp_path)


# --- where downloads may go ----------------------------------------------------------------------

REFUSED_LINKS = {
    "aws/gcp/azure metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "ecs task metadata": "http://169.254.170.2/v2/credentials",
    "ipv6 link-local": "http://[fe80::1]/v.mp4",
    "ipv4-mapped ipv6": "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "nat64": "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
    "aws ipv6 metadata": "http://[fd00:ec2::254]/latest/meta-data/",
    "alibaba metadata": "http://100.100.100.200/latest/meta-data/",
    "gcp metadata name": "http://metadata.google.internal/computeMetadata/v1/",
    "gcp short name": "http://metadata.goog/computeMetadata/v1/",
    "decimal spelling": "http://2852039166/latest/meta-data/",
}


@pytest.mark.parametrize("case", list(REFUSED_LINKS))
async def test_links_to_metadata_addresses_are_refused(
    hostile: HostileServer, hostile_session: FastRouterSession, tmp_path: Path, case: str
) -> None:
    """A video link to a link-local or cloud-metadata host is refused before connecting, naming host and rule."""
    hostile.link = REFUSED_LINKS[case]
    with pytest.raises(DownloadError, match="refusing to download") as caught:
        await (await result_of(hostile_session)).download(tmp_path / "v.mp4")
    message = str(caught.value)
    assert "allow_link_local_downloads" in message
    assert ("link-local" in message) or ("metadata" in message)
    assert nothing_written(tmp_path)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_to_a_metadata_address_is_refused(
    hostile: HostileServer, hostile_session: FastRouterSession, tmp_path: Path, status: int
) -> None:
    """A download link that redirects to 169.254.169.254 is refused at the redirect; only the first hop is sent."""
    hostile.answer = serve(b"", status=status, headers={"Location": "http://169.254.169.254/latest/user-data"})
    with pytest.raises(DownloadError, match=r"169\.254\.169\.254 is a link-local address"):
        await (await result_of(hostile_session)).download(tmp_path / "v.mp4")
    assert len(hostile.downloads) == 1
    assert nothing_written(tmp_path)


async def test_link_local_downloads_can_be_allowed(hostile: HostileServer, tmp_path: Path) -> None:
    """allow_link_local_downloads=True lifts the rule: the link is tried (and here fails to connect, quickly)."""
    hostile.link = "http://169.254.0.1:9/v.mp4"
    async with FastRouterSession(
        API_KEY,
        base_url=hostile.base_url,
        poll_policy=FAST_POLL,
        retry_policy=RetryPolicy(max_attempts=1),
        timeouts=Timeouts(connect=0.05, request=5.0, read=5.0),
        allow_link_local_downloads=True,
    ) as session:
        with pytest.raises(DownloadError) as caught:
            await (await result_of(session)).download(tmp_path / "v.mp4")
    assert "refusing" not in str(caught.value)
    for bad in ("yes", 1, None):
        with pytest.raises(InvalidRequestError, match="allow_link_local_downloads"):
            FastRouterSession(API_KEY, allow_link_local_downloads=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "refused"),
    [
        ("169.254.169.254", True),
        ("169.254.0.1", True),
        ("[fe80::1%eth0]", True),
        ("::ffff:a9fe:a9fe", True),
        ("::a9fe:a9fe", True),
        ("2002:a9fe:a9fe::1", True),
        ("fd00:ec2::254", True),
        ("100.100.100.200", True),
        ("168.63.129.16", True),
        ("METADATA.Google.Internal.", True),
        ("metadata", True),
        ("instance-data.ec2.internal", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("localhost", False),
        ("10.0.0.5", False),
        ("192.168.1.10", False),
        ("cdn.example.com", False),
        ("metadata.example.com", False),
        ("100.100.100.201", False),
    ],
)
def test_host_rule(host: str, refused: bool) -> None:
    """Which hosts the rule refuses before resolving: link-local, metadata addresses and names; never loopback."""
    assert (name_problem(host) is not None) is refused


# --- property: whatever the download host answers ------------------------------------------------

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
EXAMPLES = {"default": 40, "thorough": 1000}.get(PROFILE, 40)  # HYPOTHESIS_PROFILE=thorough for a larger run

BODIES: dict[str, bytes] = {
    "the video": VIDEO,
    "the video, cut": VIDEO[: len(VIDEO) // 2],
    "the video, one byte flipped": VIDEO[:500] + bytes([VIDEO[500] ^ 0xFF]) + VIDEO[501:],
    "another mp4": VIDEO[:32] + bytes(range(256)) * 8,
    "empty": b"",
    "html": b"<!DOCTYPE html><html><body>Link expired</body></html>",
    "json": b'{"error": {"code": 403, "message": "expired"}}',
    "zeros": bytes(4096),
    "png": b"\x89PNG\r\n\x1a\n" + bytes(200),
}
LOCATIONS = [
    None,
    "",
    "http://[bad",
    "/dl/again",
    "ftp://127.0.0.1/x",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://metadata.google.internal/",
    "//",
    "http://127.0.0.1:1/refused",
    "../../../../etc/passwd",
    "http://user:pass@127.0.0.1:1/x",
    "\u00e9\u00e9",
]


@attrs.frozen
class Scripted:
    """One answer of the download host: status, headers, body and whether the connection is cut."""

    status: int
    content_type: str | None
    body: str
    length: str  # "exact", "none" (chunked), "cut" (announced whole, connection closed midway)
    content_range: str | None
    etag: str | None
    encoding: str  # "identity", "gzip" (really gzipped), "gzip-lie" (says gzip, is not)
    location: str | None
    digest: str | None


answers = st.builds(
    Scripted,
    status=st.sampled_from(
        [200, 200, 200, 206, 204, 301, 302, 303, 307, 308, 400, 401, 403, 404, 410, 416, 429, 500, 503]
    ),
    content_type=st.one_of(
        st.just("video/mp4"),
        st.none(),
        st.sampled_from(
            ["video/mp4", "application/octet-stream", "text/html", "application/json", "", "video/mp4; x=1"]
        ),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
    ),
    body=st.one_of(st.just("the video"), st.sampled_from(sorted(BODIES))),
    length=st.sampled_from(["exact", "exact", "none", "cut"]),
    content_range=st.one_of(
        st.none(),
        st.sampled_from(
            ["bytes 0-{last}/{size}", "bytes 5-{last}/{size}", "bytes */{size}", "nonsense", "bytes 0-{last}/*"]
        ),
    ),
    etag=st.sampled_from([None, '"v1"', 'W/"weak"', '"' + "x" * 40 + '"']),
    encoding=st.sampled_from(["identity", "identity", "gzip", "gzip-lie"]),
    location=st.sampled_from(LOCATIONS),
    digest=st.sampled_from(
        [None, "sha-256=:AAAA:", "sha-256=:" + base64.b64encode(hashlib.sha256(VIDEO).digest()).decode() + ":"]
    ),
)


async def scripted_answer(request: web.Request, answer: Scripted) -> web.StreamResponse:
    body = BODIES[answer.body]
    if answer.encoding == "gzip":
        body = gzip.compress(body)
    headers: dict[str, str] = {}
    if answer.content_type is not None:
        headers["Content-Type"] = answer.content_type
    if answer.content_range is not None:
        headers["Content-Range"] = answer.content_range.format(last=max(len(body) - 1, 0), size=len(body))
    if answer.etag is not None:
        headers["ETag"] = answer.etag
    if answer.encoding != "identity":
        headers["Content-Encoding"] = "gzip"
    if answer.location is not None:
        headers["Location"] = answer.location
    if answer.digest is not None:
        headers["Repr-Digest"] = answer.digest
    response = web.StreamResponse(status=answer.status, headers=headers)
    if answer.content_type is None:
        response.headers.popall("Content-Type", None)
    if answer.status in (204, 304):
        await response.prepare(request)
        return response
    if answer.length == "none":
        response.enable_chunked_encoding()
    else:
        response.content_length = len(body)
    await response.prepare(request)
    sent = body[: len(body) // 2] if answer.length == "cut" else body
    if sent:
        await response.write(sent)
    if answer.length == "cut" and request.transport is not None:
        request.transport.close()
        return response
    await response.write_eof()
    return response


@contextlib.asynccontextmanager
async def serving(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    """Serve ``handler`` on a free loopback port; yields the origin."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def run_scripted_download(script: list[Scripted], folder: Path) -> None:
    seen: list[Seen] = []
    cdn_origin: list[str] = []

    async def cdn(request: web.Request) -> web.StreamResponse:
        seen.append(Seen(request.method, request.path_qs, dict(request.headers)))
        return await scripted_answer(request, script[min(len(seen), len(script)) - 1])

    async def api(request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/api/v1/"):
            return web.json_response(success(f"{cdn_origin[0]}/dl/{TASK}.mp4?sig=s3cr3t"))
        return web.json_response({"error": "not found"}, status=404)

    target = folder / "v.mp4"
    failure: DownloadError | None = None
    written = None
    async with serving(cdn) as origin, serving(api) as api_origin:
        cdn_origin.append(origin)
        async with FastRouterSession(
            API_KEY, base_url=f"{api_origin}/api/v1", poll_policy=FAST_POLL, retry_policy=FAST_RETRY
        ) as session:
            video = await result_of(session)
            try:
                written = await video.download(target)
            except DownloadError as exc:
                failure = exc
    if failure is not None:
        event("DownloadError")
        assert not target.exists()
        assert API_KEY not in repr(failure)
        assert API_KEY not in str(failure)
    else:
        event("a video")
        assert written is not None
        data = target.read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (written.size, written.sha256)
        assert sniff_video(data[:SNIFF_BYTES]) is not None
    for part in folder.glob("*.part"):
        assert part.with_name(part.name + ".json").exists(), part.name  # only a resumable leftover stays
    for request in seen:
        assert "authorization" not in {name.lower() for name in request.headers}, request
        assert API_KEY not in repr(request)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=st.lists(answers, min_size=1, max_size=4))
def test_any_download_answer_ends_in_a_verified_video_or_download_error(script: list[Scripted]) -> None:
    """Whatever the download host answers: a verified video at the path, or DownloadError and nothing there."""
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(run_scripted_download(script, Path(folder)))
