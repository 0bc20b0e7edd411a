"""The download body path: a writer thread per download, the raw read path and aiohttp's path as its fallback."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from fastrouter_async import FastRouterSession
from fastrouter_async._config import Secret
from fastrouter_async._protocol import HttpCall
from fastrouter_async._rawbody import BUFFER_BYTES
from fastrouter_async._transport import Transport
from fastrouter_async._writer import WRITER_NICENESS, ChunkWriter
from fastrouter_async.testing import FastRouterSimulator, JobPlan, sample_video

from .conftest import API_KEY, FAST_POLL, FAST_RETRY, FAST_TIMEOUTS

SIZE = 6 * 1024 * 1024 + 321
_PIECE = 64 * 1024
ETAG = '"v1"'


def video_bytes(size: int = SIZE) -> bytes:
    head = sample_video()[:32]
    return head + os.urandom(size - len(head))


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "fastrouter-download-writer"]


class VideoHost:
    """A file server for one video: Content-Length or chunked, byte ranges, and a pause mid-body on request."""

    def __init__(self, video: bytes) -> None:
        self.video = video
        self.origin = ""
        self.chunked = False
        self.hold_after: int | None = None  # bytes sent before waiting for ``release``
        self.cut_after: int | None = None  # bytes sent before the connection is dropped (first answer only)
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self.ranges: list[str | None] = []
        self.peers: list[int] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.ranges.append(request.headers.get("Range"))
        if request.transport is not None:
            self.peers.append(request.transport.get_extra_info("peername")[1])
        start = 0
        status = 200
        headers = {"Content-Type": "video/mp4", "ETag": ETAG, "Accept-Ranges": "bytes"}
        wanted = request.headers.get("Range")
        if wanted and wanted.startswith("bytes=") and request.headers.get("If-Range") in (None, ETAG):
            start = int(wanted[len("bytes=") :].rstrip("-"))
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(self.video) - 1}/{len(self.video)}"
        body = self.video[start:]
        response = web.StreamResponse(status=status, headers=headers)
        if self.chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(body)
        await response.prepare(request)
        for offset in range(0, len(body), _PIECE):
            if self.hold_after is not None and start == 0 and offset >= self.hold_after:
                self.holding.set()
                await self.release.wait()
            if self.cut_after is not None and start == 0 and offset >= self.cut_after:
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write(body[offset : offset + _PIECE])
        await response.write_eof()
        return response


@pytest.fixture
async def host() -> AsyncIterator[VideoHost]:
    state = VideoHost(video_bytes())
    app = web.Application()
    app.router.add_get("/{tail:.*}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.origin = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield state
    state.release.set()
    await runner.cleanup()


@pytest.fixture
async def hosted_session(host: VideoHost) -> AsyncIterator[FastRouterSession]:
    """A session whose finished jobs' hosted copy lives on ``host``."""
    sim = FastRouterSimulator(api_key=API_KEY, default_plan=JobPlan(polls=1), asset_origin=host.origin)
    async with (
        sim.serve() as server,
        FastRouterSession(
            API_KEY,
            base_url=server.base_url,
            poll_policy=FAST_POLL,
            retry_policy=FAST_RETRY,
            timeouts=FAST_TIMEOUTS,
        ) as session,
    ):
        yield session


async def download(session: FastRouterSession, path: Path) -> str:
    video = await (await session.submit(model="google/veo3", prompt="a video"))
    return (await video.download(path)).sha256


@pytest.mark.parametrize("chunked", [False, True], ids=["raw path", "aiohttp path"])
async def test_both_body_paths_write_the_exact_bytes(
    host: VideoHost, hosted_session: FastRouterSession, tmp_path: Path, chunked: bool
) -> None:
    """A multi-MiB video arrives byte-exact through the raw path (Content-Length) and aiohttp's (chunked)."""
    host.chunked = chunked
    digest = await download(hosted_session, tmp_path / "v.mp4")
    assert digest == hashlib.sha256(host.video).hexdigest()
    assert (tmp_path / "v.mp4").read_bytes() == host.video
    assert writer_threads() == []


async def test_raw_path_reads_into_reused_megabyte_buffers(host: VideoHost) -> None:
    """A plain-HTTP answer of known length comes as 1 MiB views of a few reused buffers; a chunked one as bytes."""
    transport = Transport(base_url=f"{host.origin}/api", secret=Secret("sk-x"), timeouts=FAST_TIMEOUTS)
    try:
        for chunked in (False, True):
            host.chunked = chunked
            received = bytearray()
            kinds: set[type] = set()
            owners: set[int] = set()
            async with transport.stream(HttpCall("GET", f"{host.origin}/v.mp4"), auth=False) as resp:
                async for piece in resp.iter_received():
                    received += piece
                    kinds.add(type(piece))
                    if isinstance(piece, memoryview):
                        assert len(piece) <= BUFFER_BYTES
                        owners.add(id(piece.obj))
                    resp.recycle(piece)
            assert bytes(received) == host.video
            if chunked:
                assert kinds == {bytes}
            else:
                assert memoryview in kinds
                assert len(owners) <= 2  # recycled at once: the same buffers serve the whole body
    finally:
        await transport.aclose()


async def test_raw_path_never_reuses_its_connection(
    host: VideoHost, hosted_session: FastRouterSession, tmp_path: Path
) -> None:
    """After a raw read the connection is closed (aiohttp never gets it back half-read): each download connects anew."""
    await download(hosted_session, tmp_path / "a.mp4")
    await download(hosted_session, tmp_path / "b.mp4")
    assert len(host.peers) == 2
    assert host.peers[0] != host.peers[1]


async def test_cut_connection_on_the_raw_path_resumes(
    host: VideoHost, hosted_session: FastRouterSession, tmp_path: Path
) -> None:
    """A connection that closes mid-body keeps the bytes received; the retry asks for the rest with Range."""
    host.cut_after = 3 * 1024 * 1024
    digest = await download(hosted_session, tmp_path / "v.mp4")
    assert digest == hashlib.sha256(host.video).hexdigest()
    assert host.ranges[0] is None
    resumed = host.ranges[-1]
    assert resumed is not None
    assert 0 < int(resumed[len("bytes=") : -1]) <= 3 * 1024 * 1024


async def test_cancelling_mid_download_leaves_a_resumable_part_and_no_thread(
    host: VideoHost, hosted_session: FastRouterSession, tmp_path: Path
) -> None:
    """Cancelled mid-body: no writer thread, no open handle; the .part keeps what was received and is resumed."""
    host.hold_after = 2 * 1024 * 1024
    target = tmp_path / "v.mp4"
    video = await (await hosted_session.submit(model="google/veo3", prompt="a video"))
    received = asyncio.Event()

    def progress(done: int, total: int | None) -> None:
        if done >= 1024 * 1024:
            received.set()

    task = asyncio.ensure_future(video.download(target, progress=progress))
    await asyncio.wait_for(received.wait(), timeout=30)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert writer_threads() == []
    assert [p for p in open_files() if p.startswith(str(tmp_path))] == []
    part = tmp_path / ".v.mp4.part"
    assert part.exists()
    assert (tmp_path / ".v.mp4.part.json").exists()
    kept = part.read_bytes()
    assert 1024 * 1024 <= len(kept) <= 2 * 1024 * 1024  # everything handed to the writer was written
    assert kept == host.video[: len(kept)]
    host.hold_after = None
    host.release.set()
    written = await video.download(target)
    assert written.sha256 == hashlib.sha256(host.video).hexdigest()
    assert host.ranges[-1] == f"bytes={len(kept)}-"
    assert not part.exists()


def open_files() -> list[str]:
    found = []
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                found.append(os.readlink(f"/proc/self/fd/{fd}"))
    return found


async def test_writer_error_is_raised_in_the_event_loop(tmp_path: Path) -> None:
    """A write the file system refuses (here: a descriptor opened read-only) comes back as OSError from the writer."""
    path = tmp_path / "f"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)
    try:
        writer = ChunkWriter(fd, 0, [hashlib.sha256()])
        await writer.put(b"x" * 1024)
        with pytest.raises(OSError):
            await writer.close()
        with pytest.raises(OSError):
            await writer.put(b"x")  # and on any later put
        assert not writer.running
    finally:
        os.close(fd)
    assert writer_threads() == []


CHILD = """
import asyncio, json, resource, signal, sys
from fastrouter_async import DownloadError, FastRouterSession, PollPolicy, RetryPolicy

async def main() -> None:
    base_url, path = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, resource.RLIM_INFINITY))
    policy = PollPolicy(first_delay=0.0, interval=0.001, max_interval=0.002, jitter=0.0)
    retry = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.002)
    async with FastRouterSession(base_url=base_url, poll_policy=policy, retry_policy=retry) as session:
        video = await (await session.submit(model="google/veo3", prompt="a video"))
        try:
            await video.download(path)
        except DownloadError as exc:
            print(json.dumps({"error": str(exc), "cause": type(exc.__cause__).__name__}))
        else:
            print(json.dumps({"error": None}))

asyncio.run(main())
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
async def test_disk_full_in_the_writer_thread_is_a_download_error(host: VideoHost, tmp_path: Path) -> None:
    """A file-size limit hit by the writer thread mid-download (as a full disk would) surfaces as DownloadError."""
    sim = FastRouterSimulator(api_key=API_KEY, default_plan=JobPlan(polls=1), asset_origin=host.origin)
    async with sim.serve() as server:
        env = {**os.environ, "FASTROUTER_API_KEY": API_KEY}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            server.base_url,
            str(tmp_path / "v.mp4"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode(errors="replace")
    outcome = json.loads(out.decode().strip().splitlines()[-1])
    assert outcome["error"] is not None
    assert "could not write the video" in outcome["error"]
    assert "File too large" in outcome["error"]
    assert outcome["cause"] == "OSError"
    assert not (tmp_path / "v.mp4").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
async def test_writer_thread_yields_the_cpu_to_the_event_loop(tmp_path: Path) -> None:
    """The writer thread runs WRITER_NICENESS nicer than the event loop's thread, so hashing never starves the loop."""
    written = asyncio.Event()
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        writer = ChunkWriter(fd, 0, [hashlib.sha256()], on_written=lambda chunk: written.set())
        await writer.put(b"x" * 1024)
        await asyncio.wait_for(written.wait(), timeout=30)
        (thread,) = writer_threads()
        assert thread.native_id is not None
        mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == min(19, mine + WRITER_NICENESS)
        await writer.close()
    finally:
        os.close(fd)
    assert writer_threads() == []
