"""Downloads: streamed, atomic, retried as downloads, and the key kept away from other hosts."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import gc
import hashlib
import json
import os
import sys
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from fastrouter_async import DownloadError, FastRouterSession, InvalidRequestError, ResultSource, VideoResult
from fastrouter_async._config import (
    DEFAULT_MAX_CONCURRENT_DOWNLOADS,
    DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_MAX_LINK_REFRESHES,
)
from fastrouter_async.testing import (
    FastRouterSimulator,
    Fault,
    JobPlan,
    RecordedRequest,
    SimulatorServer,
    sample_video,
)
from tests._internals import engine_of

from .conftest import API_KEY, SessionFactory

VEO: dict[str, Any] = {"model": "google/veo3", "prompt": "a cat surfing"}


@pytest.fixture
async def cdn() -> AsyncIterator[tuple[FastRouterSimulator, SimulatorServer]]:
    """A second simulator instance on another port: another host as far as origins go."""
    other = FastRouterSimulator()
    async with other.serve() as running:
        yield other, running


def fake_mp4(size: int) -> bytes:
    """``size`` bytes that start like an MP4 (an ``ftyp`` box) and go on at random."""
    head = sample_video()[:32]
    return head + os.urandom(size - len(head))


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
    payload = fake_mp4(3 * 1024 * 1024 + 7)
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
    payload = fake_mp4(5 * 1024 * 1024 + 123)
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
    payload = fake_mp4(8 * 1024 * 1024)
    sim.default_plan = JobPlan(video=payload)
    video = await finished(session)
    task: asyncio.Task[object] | None = None

    def progress(received: int, total: int | None) -> None:
        # Cancelled from the download's own progress report: the transfer stops part-way, whatever the load.
        if task is not None and received > 0:
            task.cancel()

    task = asyncio.create_task(video.download(tmp_path / "v.mp4", progress=progress))
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


# --- resume --------------------------------------------------------------------------------------

BIG = fake_mp4(3 * 1024 * 1024 + 17)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_resume_after_truncation_uses_range(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A cut download continues with Range + If-Range from the byte it stopped at and ends with the file's sha256."""
    sim.default_plan = JobPlan(video=BIG)
    sim.inject(Fault.truncate(1_500_000))
    video = await finished(session)
    written = await video.download(tmp_path / "v.mp4")
    first, second = sim.records.downloads
    assert (first.dropped, "Range" in first.headers) == (True, False)
    assert 0 < resumed_from(second) <= 1_500_000  # what arrived before the cut (aiohttp may drop its last buffer)
    assert second.headers["If-Range"] == f'"{sha(BIG)}"'
    assert second.status == 206
    assert (written.size, written.sha256) == (len(BIG), sha(BIG))
    assert (tmp_path / "v.mp4").read_bytes() == BIG
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("etag", "if_range"), [("strong", True), ("weak", False), ("none", False)])
async def test_resume_sends_if_range_only_with_a_strong_etag(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path, etag: Any, if_range: bool
) -> None:
    """Within one call a cut download resumes whatever the ETag; If-Range is sent only for a strong one."""
    sim.default_plan = JobPlan(video=BIG)
    sim.download_etag = etag
    sim.inject(Fault.truncate(1_000_000))
    video = await finished(session)
    written = await video.download(tmp_path / "v.mp4")
    resumed = sim.records.downloads[1]
    assert 0 < resumed_from(resumed) <= 1_000_000
    assert ("If-Range" in resumed.headers) is if_range
    assert resumed.status == 206
    assert written.sha256 == sha(BIG)


async def test_server_without_ranges_restarts_from_zero(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A server that ignores Range sends the whole file again; the kept bytes are dropped, not spliced."""
    sim.default_plan = JobPlan(video=BIG)
    sim.download_ranges = False
    sim.inject(Fault.truncate(1_000_000))
    video = await finished(session)
    seen: list[int] = []
    written = await video.download(tmp_path / "v.mp4", progress=lambda received, total: seen.append(received))
    assert [r.status for r in sim.records.downloads] == [200, 200]
    assert "Accept-Ranges" not in sim.records.downloads[1].headers
    assert written.sha256 == sha(BIG)
    assert (tmp_path / "v.mp4").read_bytes() == BIG
    assert seen[-1] == len(BIG)


async def test_changed_file_with_if_range_restarts(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """If the file changed (new ETag), If-Range makes the server send it whole and the download starts over."""
    changed = fake_mp4(len(BIG) + 1000)
    sim.default_plan = JobPlan(video=BIG)
    sim.inject(Fault.truncate(1_000_000))
    sim.inject(Fault.serve(changed, times=None))
    video = await finished(session)
    written = await video.download(tmp_path / "v.mp4")
    assert [r.status for r in sim.records.downloads] == [200, 200]
    assert sim.records.downloads[1].headers["If-Range"] == f'"{sha(BIG)}"'
    assert written.sha256 == sha(changed)
    assert (tmp_path / "v.mp4").read_bytes() == changed


async def test_content_range_total_mismatch_restarts(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Without an ETag, a 206 whose Content-Range total differs from the first answer's length starts over."""
    changed = fake_mp4(len(BIG) - 1000)
    sim.default_plan = JobPlan(video=BIG)
    sim.download_etag = "none"
    sim.inject(Fault.truncate(1_000_000))
    sim.inject(Fault.serve(changed, times=None))
    video = await finished(session)
    written = await video.download(tmp_path / "v.mp4")
    statuses = [(r.status, "Range" in r.headers) for r in sim.records.downloads]
    assert statuses == [(200, False), (206, True), (200, False)]
    assert written.sha256 == sha(changed)
    assert (tmp_path / "v.mp4").read_bytes() == changed


async def test_content_length_shortfall_is_resumed(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A body that ends before its Content-Length is never taken for the file: the rest is fetched."""
    sim.default_plan = JobPlan(video=BIG)
    sim.inject(Fault.truncate(len(BIG) - 1, times=3))
    video = await finished(session)
    written = await video.download(tmp_path / "v.mp4")
    assert written.size == len(BIG)
    assert written.sha256 == sha(BIG)
    assert all("Range" in r.headers for r in sim.records.downloads[1:])


async def test_leftover_part_with_sidecar_resumes_in_a_later_call(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A .part left by an earlier call (its sidecar names the task, link and ETag) is resumed, its prefix hashed."""
    sim.default_plan = JobPlan(video=BIG)
    video = await finished(session)
    assert video.url is not None
    write_leftover(
        tmp_path, "v.mp4", BIG[:2_000_000], total=len(BIG), task_id=video.task_id, url=video.url, etag=f'"{sha(BIG)}"'
    )
    written = await video.download(tmp_path / "v.mp4")
    [resumed] = sim.records.downloads
    assert (resumed.headers["Range"], resumed.status) == ("bytes=2000000-", 206)
    assert written.sha256 == sha(BIG)
    assert (tmp_path / "v.mp4").read_bytes() == BIG
    assert list(tmp_path.iterdir()) == [tmp_path / "v.mp4"]


async def test_leftover_part_that_is_complete_is_finished_after_416(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A kept .part that already holds every byte gets 416 for its Range and is verified and moved into place."""
    video = await finished(session)
    assert video.url is not None
    data = sample_video()
    write_leftover(
        tmp_path, "v.mp4", data, total=len(data), task_id=video.task_id, url=video.url, etag=f'"{sha(data)}"'
    )
    written = await video.download(tmp_path / "v.mp4")
    assert [r.status for r in sim.records.downloads] == [416]
    assert written.sha256 == sha(data)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("sidecar", ["missing", "other task", "other etag", "garbage"])
async def test_leftover_part_without_a_matching_sidecar_starts_over(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path, sidecar: str
) -> None:
    """A .part whose sidecar is missing or names something else is never resumed blindly."""
    video = await finished(session)
    assert video.url is not None
    data = sample_video()
    task_id = "fr_OTHER" if sidecar == "other task" else video.task_id
    etag = '"0-0"' if sidecar == "other etag" else f'"{sha(data)}"'
    write_leftover(tmp_path, "v.mp4", b"\x00" * 100, total=len(data), task_id=task_id, url=video.url, etag=etag)
    if sidecar == "missing":
        (tmp_path / ".v.mp4.part.json").unlink()
    elif sidecar == "garbage":
        (tmp_path / ".v.mp4.part.json").write_text("{not json")
    written = await video.download(tmp_path / "v.mp4")
    assert written.sha256 == sha(data)
    assert (tmp_path / "v.mp4").read_bytes() == data
    assert leftovers(tmp_path) == []
    if sidecar == "other etag":  # the sidecar matched the link: If-Range with the stale ETag got the whole file
        assert sim.records.downloads[0].headers["If-Range"] == '"0-0"'
        assert sim.records.downloads[0].status == 200
    else:
        assert "Range" not in sim.records.downloads[0].headers


def resumed_from(record: RecordedRequest) -> int:
    """The offset of a ``Range: bytes=N-`` request."""
    value = record.headers["Range"]
    assert value.startswith("bytes=")
    assert value.endswith("-")
    return int(value[len("bytes=") : -1])


def write_leftover(folder: Path, name: str, data: bytes, *, total: int, task_id: str, url: str, etag: str) -> None:
    """What an interrupted earlier call leaves: the bytes kept and the sidecar describing them."""
    (folder / f".{name}.part").write_bytes(data)
    meta = {"format": 1, "task_id": task_id, "source": url.split("?", 1)[0], "etag": etag, "total": total}
    (folder / f".{name}.part.json").write_text(json.dumps(meta))


# --- verification --------------------------------------------------------------------------------

CHECKSUMS = ["content-md5", "content-digest", "repr-digest", "digest", "x-goog-hash"]


@pytest.mark.parametrize("header", CHECKSUMS)
async def test_checksum_mismatch_is_retried(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path, header: str
) -> None:
    """A body that does not match the server's checksum header is dropped and downloaded again."""
    sim.download_checksums = (header,)
    sim.inject(Fault.corrupt())
    video = await finished(session)
    written = await video.download(tmp_path / "v.mp4")
    assert [r.fault is not None for r in sim.records.downloads] == [True, False]
    assert "Range" not in sim.records.downloads[1].headers  # a corrupt file is never resumed
    assert written.sha256 == sha(sample_video())
    assert leftovers(tmp_path) == []


async def test_checksum_mismatch_after_retries_is_raised_and_final_path_untouched(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A checksum that never matches raises DownloadError saying what differed; the old file stays in place."""
    sim.download_checksums = ("repr-digest",)
    sim.inject(Fault.corrupt(times=None))
    target = tmp_path / "v.mp4"
    target.write_bytes(b"the previous version")
    video = await finished(session)
    with pytest.raises(DownloadError) as caught:
        await video.download(target)
    error = caught.value
    assert error.task_id == video.task_id
    assert error.url is not None
    assert "failed verification" in str(error)
    assert "sha256" in str(error)
    assert "repr-digest" in str(error)
    assert target.read_bytes() == b"the previous version"
    assert leftovers(tmp_path) == []
    assert len(sim.records.downloads) == 2 * 4  # both links, FAST_RETRY.max_attempts each
    assert sim.records.submit_count == 1


@pytest.mark.parametrize("header", ["content-md5", "content-digest"])
async def test_body_checksums_of_a_range_are_not_taken_for_the_file(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path, header: str
) -> None:
    """Content-MD5/Content-Digest of a 206 describe the range only; a resumed download still succeeds."""
    sim.default_plan = JobPlan(video=BIG)
    sim.download_checksums = (header,)
    sim.inject(Fault.truncate(1_000_000))
    video = await finished(session)
    written = await video.download(tmp_path / "v.mp4")
    assert [r.status for r in sim.records.downloads] == [200, 206]
    assert written.sha256 == sha(BIG)


async def test_chunked_download_without_length_is_verified_by_digest(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A body without Content-Length (chunked) is still checked against the server's digest."""
    sim.download_content_length = False
    sim.download_checksums = ("digest",)
    sim.inject(Fault.corrupt())
    video = await finished(session)
    written = await video.download(tmp_path / "v.mp4")
    assert "content-length" not in {k.lower() for k in sim.records.downloads[0].headers}  # (request headers)
    assert len(sim.records.downloads) == 2
    assert written.sha256 == sha(sample_video())


# --- expired links -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [403, 404, 410])
async def test_expired_links_are_refreshed_by_polling(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path, status: int
) -> None:
    """403/404/410 from every link re-polls the task once for fresh links; the job is never submitted again."""
    video = await finished(session)
    polls_before = len(sim.records.polls)
    sim.expire_links(status, hosted=True)
    written = await video.download(tmp_path / "v.mp4")
    assert written.sha256 == sha(sample_video())
    assert sim.records.submit_count == 1
    assert len(sim.records.polls) == polls_before + 1
    old_link, *_, final = [r for r in sim.records.downloads if r.path.startswith("/cdn/")]
    assert video.urls[1].endswith(f"{old_link.path}?{old_link.query}")  # the expired link was tried first
    assert (final.status, final.query != old_link.query) == (200, True)  # then the fresh one
    assert {r.status for r in sim.records.downloads[:-1]} == {status}


async def test_link_refreshes_are_bounded(session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path) -> None:
    """Links that stay dead after refreshing end in DownloadError after DEFAULT_MAX_LINK_REFRESHES polls."""
    video = await finished(session)
    polls_before = len(sim.records.polls)
    sim.inject(Fault.status(410, route="download", times=None))
    with pytest.raises(DownloadError, match="410") as caught:
        await video.download(tmp_path / "v.mp4")
    assert caught.value.task_id == video.task_id
    assert len(sim.records.polls) == polls_before + DEFAULT_MAX_LINK_REFRESHES
    assert sim.records.submit_count == 1
    assert leftovers(tmp_path) == []


async def test_refresh_that_finds_the_task_gone_raises_download_error(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """When the re-poll itself answers 404 (the result expired), DownloadError says so and nothing is submitted."""
    video = await finished(session)
    sim.expire_links(410, hosted=True)
    sim.inject(Fault.status(404, route="poll", times=None))
    with pytest.raises(DownloadError, match="fresh links failed") as caught:
        await video.download(tmp_path / "v.mp4")
    assert caught.value.task_id == video.task_id
    assert sim.records.submit_count == 1


# --- result forms --------------------------------------------------------------------------------


async def test_poll_body_form_is_verified_and_retried(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A video sent as the poll answer's body is re-requested after a cut and written with its sha256."""
    sim.default_plan = JobPlan(outcome="video_body", video=BIG)
    sim.download_checksums = ("repr-digest",)
    video = await finished(session)
    sim.inject(Fault.truncate(500_000, route="poll"))
    sim.inject(Fault.corrupt(route="poll"))
    written = await video.download(tmp_path / "v.mp4")
    assert (written.size, written.sha256) == (len(BIG), sha(BIG))
    assert (tmp_path / "v.mp4").read_bytes() == BIG
    assert leftovers(tmp_path) == []
    assert sim.records.downloads == []
    assert all(has_auth(r.headers) for r in sim.records.polls)


async def test_inline_base64_form_reports_sha256(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """An inline base64 video ends as a verified file with its size and sha256, no temporary file left."""
    sim.default_plan = JobPlan(outcome="inline_base64", video=BIG)
    video = await finished(session)
    written = await video.download(tmp_path / "v.mp4")
    assert (written.size, written.sha256) == (len(BIG), sha(BIG))
    assert leftovers(tmp_path) == []


async def test_invalid_inline_base64_is_an_error(session: FastRouterSession, tmp_path: Path) -> None:
    """Inline text that is not base64 raises DownloadError and leaves nothing behind."""
    payload = {"data": {"status": "succeed", "generations": [{"status": "succeed", "bytesBase64Encoded": "QQ"}]}}
    result = VideoResult(
        task_id="fr_X",
        model=None,
        url=None,
        source=ResultSource.INLINE_BASE64,
        payload=payload,
        fetcher=engine_of(session).fetcher,
    )
    with pytest.raises(DownloadError, match="not valid base64"):
        await result.download(tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []


# --- limits --------------------------------------------------------------------------------------


async def test_max_bytes_refused_early_from_content_length(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A video announced larger than max_download_bytes is refused before any body byte is kept."""
    session = make_session(max_download_bytes=1000)
    video = await finished(session)
    with pytest.raises(DownloadError, match="more than max_bytes=1000") as caught:
        await video.download(tmp_path / "v.mp4")
    assert caught.value.task_id == video.task_id
    assert len(sim.records.downloads) == 1  # no retry, no other link
    assert list(tmp_path.iterdir()) == []
    assert (await video.download(tmp_path / "v.mp4", max_bytes=10**9)).exists()  # a per-call limit wins


async def test_max_bytes_stops_mid_stream(session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path) -> None:
    """Without a Content-Length the download stops once max_bytes is passed, and the temporary file is removed."""
    sim.default_plan = JobPlan(video=BIG)
    sim.download_content_length = False
    video = await finished(session)
    with pytest.raises(DownloadError, match="larger than max_bytes=1048576"):
        await video.download(tmp_path / "v.mp4", max_bytes=1024 * 1024)
    assert len(sim.records.downloads) == 1
    assert list(tmp_path.iterdir()) == []


async def test_max_bytes_refuses_a_large_inline_video(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """An inline video's decoded size is known up front and refused before decoding."""
    sim.default_plan = JobPlan(outcome="inline_base64", video=BIG)
    video = await finished(session)
    with pytest.raises(DownloadError, match="max_bytes"):
        await video.download(tmp_path / "v.mp4", max_bytes=len(BIG) - 1)
    assert list(tmp_path.iterdir()) == []


async def test_download_concurrency_limit_is_never_exceeded(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """With max_concurrent_downloads=2 the server never sees more than two downloads at once."""
    session = make_session(max_concurrent_downloads=2)
    sim.default_plan = JobPlan(video=fake_mp4(1024 * 1024))
    videos = await asyncio.gather(*(finished(session, prompt=f"v{i}") for i in range(8)))
    client_side: list[int] = []

    def progress(received: int, total: int | None) -> None:
        client_side.append(session.downloads_in_flight)

    async with anyio.create_task_group() as tg:
        for i, video in enumerate(videos):
            tg.start_soon(functools.partial(video.download, tmp_path / f"{i}.mp4", progress=progress))
    assert len(sim.records.downloads) == 8
    assert 1 <= sim.records.max_downloads_active <= 2
    assert max(client_side) <= 2
    assert session.downloads_in_flight == 0
    assert session.max_concurrent_downloads == 2


async def test_download_limits_are_validated(make_session: SessionFactory, session: FastRouterSession) -> None:
    """Download limits must be positive integers or None; the defaults are documented constants."""
    for bad in (0, -1, True, "2", 1.5):
        with pytest.raises(InvalidRequestError, match="max_concurrent_downloads"):
            make_session(max_concurrent_downloads=bad)
        with pytest.raises(InvalidRequestError, match="max_download_bytes"):
            make_session(max_download_bytes=bad)
    assert session.max_concurrent_downloads == DEFAULT_MAX_CONCURRENT_DOWNLOADS
    assert session.max_download_bytes == DEFAULT_MAX_DOWNLOAD_BYTES == 8 * 1024**3
    assert make_session(max_concurrent_downloads=None).max_concurrent_downloads is None


async def test_download_max_bytes_argument_is_validated(session: FastRouterSession, tmp_path: Path) -> None:
    """download(max_bytes=...) takes a positive integer (or None for the session's limit)."""
    video = await finished(session)
    with pytest.raises(InvalidRequestError, match="max_bytes"):
        await video.download(tmp_path / "v.mp4", max_bytes=0)


async def test_downloads_to_one_path_take_turns(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Concurrent downloads to the same destination do not share a .part: the file ends complete."""
    sim.default_plan = JobPlan(video=BIG)
    video = await finished(session)
    results = await asyncio.gather(*(video.download(tmp_path / "v.mp4") for _ in range(3)))
    assert {r.sha256 for r in results} == {sha(BIG)}
    assert (tmp_path / "v.mp4").read_bytes() == BIG
    assert leftovers(tmp_path) == []


# --- auth ----------------------------------------------------------------------------------------


async def test_resumed_range_request_across_a_redirect_keeps_the_key_home(
    session: FastRouterSession,
    sim: FastRouterSimulator,
    cdn: tuple[FastRouterSimulator, SimulatorServer],
    tmp_path: Path,
) -> None:
    """A resumed Range request redirected from the API host to another host carries no Authorization there."""
    other, other_server = cdn
    other.videos_from = sim
    sim.default_plan = JobPlan(video=BIG)
    sim.assets_require_auth = True
    sim.redirect_assets_to = other_server.origin
    other.inject(Fault.truncate(1_000_000))
    video = await finished(session)
    written = await video.download(tmp_path / "v.mp4")
    assert written.sha256 == sha(BIG)
    first, resumed = other.records.downloads
    assert first.dropped
    assert (resumed.status, 0 < resumed_from(resumed) <= 1_000_000) == (206, True)
    assert not any(has_auth(h) for h in other.records.headers_seen("any"))
    redirected_range = [r for r in sim.records.downloads if r.status == 302 and "Range" in r.headers]
    assert redirected_range
    assert all(has_auth(r.headers) for r in redirected_range)


async def test_refreshed_links_on_another_host_never_get_the_key(
    session: FastRouterSession,
    sim: FastRouterSimulator,
    cdn: tuple[FastRouterSimulator, SimulatorServer],
    tmp_path: Path,
) -> None:
    """Links obtained by a refresh follow the same rule: a host other than the API never sees the key."""
    other, other_server = cdn
    sim.asset_origin = other_server.origin
    video = await finished(session)
    other.inject(Fault.status(410, route="download"))
    sim.expire_links(403)
    written = await video.download(tmp_path / "v.mp4")
    assert written.sha256 == sha(sample_video())
    assert [r.status for r in other.records.downloads] == [410, 200]  # the refreshed hosted link was served
    assert len(sim.records.polls) == 2  # the job's own poll, and the refresh
    assert not any(has_auth(h) for h in other.records.headers_seen("any"))
    # The provider link here is on the API host, so after its 403 it was asked again with the key (expected).
    assert [has_auth(r.headers) for r in sim.records.downloads] == [False, True]


# --- destination edge cases ----------------------------------------------------------------------


async def test_overwrite_false_never_replaces_a_file_that_appears_meanwhile(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """With overwrite=False a file created during the download is kept; the download fails and cleans up."""
    video = await finished(session)
    target = tmp_path / "v.mp4"

    def progress(received: int, total: int | None) -> None:
        if not target.exists():
            target.write_bytes(b"someone else's")

    with pytest.raises(DownloadError, match="already exists"):
        await video.download(target, overwrite=False, progress=progress)
    assert target.read_bytes() == b"someone else's"
    assert leftovers(tmp_path) == []
    other = await video.download(tmp_path / "new.mp4", overwrite=False)
    assert other.path.read_bytes() == sample_video()


async def test_range_past_a_shrunk_file_restarts_after_416(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A Range beyond a file that shrank (no ETag to notice) gets 416; the download starts over and completes."""
    shrunk = fake_mp4(100_000)
    sim.default_plan = JobPlan(video=BIG)
    sim.download_etag = "none"
    sim.inject(Fault.truncate(1_000_000))
    sim.inject(Fault.serve(shrunk, times=None))
    video = await finished(session)
    written = await video.download(tmp_path / "v.mp4")
    assert [r.status for r in sim.records.downloads] == [200, 416, 200]
    assert written.sha256 == sha(shrunk)


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
async def test_symlinked_part_file_is_refused(session: FastRouterSession, tmp_path: Path) -> None:
    """A .part that is a symlink is never written through (it could point anywhere)."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    (tmp_path / ".v.mp4.part").symlink_to(victim)
    video = await finished(session)
    with pytest.raises(DownloadError, match="not a regular file"):
        await video.download(tmp_path / "v.mp4")
    assert victim.read_bytes() == b"keep me"


async def test_long_destination_name_gets_a_short_part_name(session: FastRouterSession, tmp_path: Path) -> None:
    """A destination name near the 255-byte limit still gets a temporary file (named by a hash)."""
    name = "x" * 240 + ".mp4"
    video = await finished(session)
    written = await video.download(tmp_path / name)
    assert written.path.read_bytes() == sample_video()
    assert list(tmp_path.iterdir()) == [tmp_path / name]


async def test_disk_errors_are_download_errors(session: FastRouterSession, tmp_path: Path) -> None:
    """A destination the file system refuses (its folder is a file) raises DownloadError naming the path."""
    (tmp_path / "file").write_bytes(b"")
    video = await finished(session)
    with pytest.raises(DownloadError, match="temporary file beside") as caught:
        await video.download(tmp_path / "file" / "v.mp4")
    assert caught.value.task_id == video.task_id
    assert isinstance(caught.value.__cause__, OSError)


def open_files_under(folder: Path) -> list[str] | None:
    """The files under ``folder`` this process holds open (None where /proc is missing)."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    found = []
    for fd in fds:
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(folder)):
                found.append(target)
    return found


async def test_cancelling_at_every_step_leaks_no_file_and_no_handle(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Cancelled at increasing event-loop steps, download() leaves no open handle, no stray .part, no partial file."""
    payload = fake_mp4(2 * 1024 * 1024 + 5)
    sim.default_plan = JobPlan(video=payload)
    video = await finished(session)
    target = tmp_path / "v.mp4"
    for steps in range(0, 80, 2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            task = asyncio.ensure_future(video.download(target))
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            gc.collect()
        assert [w for w in caught if issubclass(w.category, ResourceWarning)] == [], steps
        assert open_files_under(tmp_path) in (None, []), steps
        if target.exists():
            assert target.read_bytes() == payload
            target.unlink()
        for part in tmp_path.glob(".*.part"):  # only a resumable leftover may stay, with its sidecar
            assert part.with_name(part.name + ".json").exists(), (steps, part.name)
    assert (await video.download(target)).sha256 == sha(payload)
    assert leftovers(tmp_path) == []
