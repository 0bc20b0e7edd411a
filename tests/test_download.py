"""Downloads: streamed, atomic, retried as downloads, and the key kept away from other hosts."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from fastrouter_async import DownloadError, FastRouterSession, ResultSource, VideoResult
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan, SimulatorServer, sample_video

from .conftest import API_KEY, SessionFactory

VEO: dict[str, Any] = {"model": "google/veo3", "prompt": "a cat surfing"}


@pytest.fixture
async def cdn() -> AsyncIterator[tuple[FastRouterSimulator, SimulatorServer]]:
    """A second simulator instance on another port: another host as far as origins go."""
    other = FastRouterSimulator()
    async with other.serve() as running:
        yield other, running


def has_auth(headers: dict[str, str]) -> bool:
    return any(name.lower() == "authorization" for name in headers)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


async def finished(session: FastRouterSession, **kwargs: object) -> VideoResult:
    return await (await session.submit(**{**VEO, **kwargs}))


async def test_cdn_host_never_sees_authorization(
    session: FastRouterSession,
    sim: FastRouterSimulator,
    cdn: tuple[FastRouterSimulator, SimulatorServer],
    tmp_path: Path,
) -> None:
    """The download route on a second host (another simulator) never receives an Authorization header."""
    other, other_server = cdn
    sim.asset_origin = other_server.origin
    video = await finished(session)
    assert video.url is not None
    assert video.url.startswith(other_server.origin)
    path = (await video.download(tmp_path / "v.mp4")).path
    assert path.read_bytes() == sample_video()
    assert other.records.downloads
    assert not any(has_auth(h) for h in other.records.headers_seen("any"))
    assert all(has_auth(r.headers) for r in sim.records.submits + sim.records.polls)


async def test_cdn_demanding_a_key_does_not_get_it(
    session: FastRouterSession,
    sim: FastRouterSimulator,
    cdn: tuple[FastRouterSimulator, SimulatorServer],
    tmp_path: Path,
) -> None:
    """A foreign host answering 401 is not given the key; the next URL (provider copy) is used instead."""
    other, other_server = cdn
    other.assets_require_auth = True
    sim.asset_origin = other_server.origin
    video = await finished(session)
    await video.download(tmp_path / "v.mp4")
    assert not any(has_auth(h) for h in other.records.headers_seen("any"))
    assert sim.records.downloads[-1].path.startswith("/cdn/")


async def test_hosted_copy_gets_the_key_only_after_refusing(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A hosted copy on the API origin is first asked without the key, and given it only after a 401."""
    sim.assets_require_auth = True
    video = await finished(session)
    await video.download(tmp_path / "v.mp4")
    first, second = sim.records.downloads
    assert (has_auth(first.headers), first.status) == (False, 401)
    assert (has_auth(second.headers), second.status) == (True, 200)


async def test_redirect_to_another_host_drops_authorization(
    session: FastRouterSession,
    sim: FastRouterSimulator,
    cdn: tuple[FastRouterSimulator, SimulatorServer],
    tmp_path: Path,
) -> None:
    """When the API host redirects a download to another host, the key does not follow the redirect."""
    other, other_server = cdn
    sim.assets_require_auth = True
    sim.redirect_assets_to = other_server.origin
    video = await finished(session)
    path = (await video.download(tmp_path / "v.mp4")).path
    assert path.read_bytes() == sample_video()
    assert any(r.status == 302 and has_auth(r.headers) for r in sim.records.downloads)
    assert other.records.downloads
    assert not any(has_auth(h) for h in other.records.headers_seen("any"))


async def test_truncated_download_is_retried_to_a_complete_file(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A connection cut mid-body is retried; the final path only ever holds the complete file."""
    sim.inject(Fault.truncate(1000, times=2))
    video = await finished(session)
    path = (await video.download(tmp_path / "v.mp4")).path
    assert path.read_bytes() == sample_video()
    assert leftovers(tmp_path) == []
    assert len(sim.records.downloads) == 3


async def test_download_failure_never_resubmits(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A download that keeps failing raises DownloadError, writes nothing, and never submits again."""
    sim.inject(Fault.server_error(503, route="download", times=None))
    video = await finished(session)
    with pytest.raises(DownloadError, match=video.task_id):
        await video.download(tmp_path / "v.mp4")
    assert sim.records.submit_count == 1
    assert not (tmp_path / "v.mp4").exists()
    assert leftovers(tmp_path) == []
    sim.clear_faults()
    assert (await video.download(tmp_path / "v.mp4")).exists()  # the same result downloads later


async def test_expired_link_falls_back_to_the_next_url(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A 404/410 from the first URL moves on to the provider URL."""
    sim.inject(Fault.status(410, route="download"))
    video = await finished(session)
    await video.download(tmp_path / "v.mp4")
    assert [r.status for r in sim.records.downloads] == [410, 200]


async def test_video_as_poll_body(session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path) -> None:
    """A poll answered with the video itself is a finished job whose download streams that route again."""
    sim.default_plan = JobPlan(outcome="video_body")
    video = await finished(session)
    assert (video.source, video.url, video.urls) == (ResultSource.POLL_BODY, None, ())
    path = (await video.download(tmp_path / "v.mp4")).path
    assert path.read_bytes() == sample_video()


async def test_inline_base64_video(session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path) -> None:
    """An inline bytesBase64Encoded video is decoded in pieces to a verified file."""
    payload = os.urandom(3 * 1024 * 1024 + 7)
    sim.default_plan = JobPlan(outcome="inline_base64", video=payload)
    video = await finished(session)
    assert video.source is ResultSource.INLINE_BASE64
    path = (await video.download(tmp_path / "v.mp4")).path
    assert path.read_bytes() == payload
    assert base64.b64encode(payload)  # the simulator really sent base64 (sanity)


async def test_large_video_streams_with_progress(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A multi-megabyte video arrives byte-exact, with progress reported as it streams."""
    payload = os.urandom(5 * 1024 * 1024 + 123)
    sim.default_plan = JobPlan(video=payload)
    seen: list[tuple[int, int | None]] = []

    async def progress(received: int, total: int | None) -> None:
        seen.append((received, total))

    video = await finished(session)
    path = (await video.download(tmp_path / "deep" / "folder" / "v.mp4", progress=progress)).path
    assert path.read_bytes() == payload
    assert len(seen) >= 5
    assert seen[-1] == (len(payload), len(payload))
    assert [r for r, _ in seen] == sorted(r for r, _ in seen)


async def test_overwrite_false_keeps_an_existing_file(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """With overwrite=False an existing file is an error, left untouched, and nothing is downloaded."""
    target = tmp_path / "v.mp4"
    target.write_bytes(b"mine")
    video = await finished(session)
    with pytest.raises(DownloadError, match="already exists"):
        await video.download(target, overwrite=False)
    assert target.read_bytes() == b"mine"
    assert sim.records.downloads == []
    await video.download(target)  # the default replaces it
    assert target.read_bytes() == sample_video()


async def test_download_to_a_directory_is_an_error(session: FastRouterSession, tmp_path: Path) -> None:
    """A destination that is a directory is refused with a suggestion of a file path."""
    video = await finished(session)
    with pytest.raises(DownloadError, match="is a directory"):
        await video.download(tmp_path)


async def test_cancelled_download_keeps_a_resumable_part(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A cancelled download leaves no destination, only .part + sidecar, and the next call resumes them with Range."""
    payload = os.urandom(8 * 1024 * 1024)
    sim.default_plan = JobPlan(video=payload)
    video = await finished(session)
    started = asyncio.Event()

    def progress(received: int, total: int | None) -> None:
        started.set()

    task = asyncio.create_task(video.download(tmp_path / "v.mp4", progress=progress))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(p.name for p in tmp_path.iterdir()) == [".v.mp4.part", ".v.mp4.part.json"]
    kept = (tmp_path / ".v.mp4.part").stat().st_size
    assert 0 < kept < len(payload)
    written = await video.download(tmp_path / "v.mp4")
    assert written.sha256 == hashlib.sha256(payload).hexdigest()
    assert (tmp_path / "v.mp4").read_bytes() == payload
    assert list(tmp_path.iterdir()) == [tmp_path / "v.mp4"]
    resumed = sim.records.downloads[-1]
    assert resumed.headers.get("Range") == f"bytes={kept}-"
    assert resumed.status == 206


async def test_unbound_result_cannot_download(tmp_path: Path) -> None:
    """A VideoResult built by hand (not from a session) says how to get a downloadable one."""
    with pytest.raises(RuntimeError, match="not bound"):
        await VideoResult(task_id="t", model=None, url="https://x/v.mp4").download(tmp_path / "v.mp4")


async def test_download_after_close_is_a_runtime_error(make_session: SessionFactory, tmp_path: Path) -> None:
    """Downloading through a closed session raises the precise closed-session error."""
    session = make_session()
    video = await finished(session)
    await session.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await video.download(tmp_path / "v.mp4")


async def test_auth_header_value_to_api(session: FastRouterSession, sim: FastRouterSimulator) -> None:
    """The API itself receives exactly 'Bearer <key>'."""
    await finished(session)
    assert {r.headers.get("Authorization") for r in sim.records.submits + sim.records.polls} == {f"Bearer {API_KEY}"}


async def test_many_downloads_in_parallel(session: FastRouterSession, tmp_path: Path) -> None:
    """Many results download concurrently over the session's one connection pool."""
    videos = await asyncio.gather(*(finished(session, prompt=f"v{i}") for i in range(20)))
    async with anyio.create_task_group() as tg:
        for i, video in enumerate(videos):
            tg.start_soon(video.download, tmp_path / f"{i}.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{i}.mp4" for i in range(20))


async def test_download_reports_size_and_sha256(session: FastRouterSession, tmp_path: Path) -> None:
    """download() answers with the file's path, size and the sha256 of the bytes written."""
    video = await finished(session)
    written = await video.download(tmp_path / "v.mp4")
    data = sample_video()
    assert written.path == tmp_path / "v.mp4"
    assert written.size == len(data)
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    assert written.task_id == video.task_id
    assert os.fspath(written) == str(tmp_path / "v.mp4")
    assert written.exists()
