"""Downloads from a real file server: nginx on loopback, a 100 MB file, connections cut mid-transfer.

The simulator plays the FastRouter API; with ``asset_origin`` pointed at nginx
(or at a cutting proxy in front of it), a finished job's hosted-copy URL
``/videos-content/<task id>`` is a static file nginx serves with ``sendfile``.
nginx comes from the distribution (``apt-get install nginx``); without it these
tests skip and say how to install it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import attrs
import pytest

from fastrouter_async import FastRouterSession, VideoResult
from fastrouter_async.testing import FastRouterSimulator

from ._nginx import NGINX_MISSING, NginxServer, find_nginx
from ._proxy import CuttingProxy

ROOT = Path(__file__).resolve().parent.parent
VEO: dict[str, Any] = {"model": "google/veo3", "prompt": "a cat surfing"}
BIG_SIZE = 100 * 1024 * 1024 + 12_345  # over 100 MB, and not a multiple of any buffer size
CUT_AT = 37 * 1024 * 1024 + 4_321  # body bytes delivered before the first connection is cut


@attrs.frozen
class SourceFile:
    """A file nginx serves, and what the client should end up with."""

    path: Path
    size: int
    sha256: str


def write_random_file(path: Path, size: int) -> SourceFile:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        # It must start like a video (an MP4 ftyp box): downloads refuse anything else.
        head = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"[:size]
        out.write(head)
        digest.update(head)
        left = size - len(head)
        while left:
            chunk = os.urandom(min(left, 4 * 1024 * 1024))
            out.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return SourceFile(path=path, size=size, sha256=digest.hexdigest())


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(4 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture(scope="session")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxServer]:
    """One nginx for the session: a ranged port and a max_ranges 0 port over one temporary root."""
    binary = find_nginx()
    if binary is None:
        pytest.skip(NGINX_MISSING)
    with NginxServer(binary, tmp_path_factory.mktemp("nginx")) as server:
        yield server


@pytest.fixture(scope="session")
def big_file(nginx: NginxServer, tmp_path_factory: pytest.TempPathFactory) -> SourceFile:
    """A random file of just over 100 MB, written once per session (after nginx is known to exist)."""
    return write_random_file(tmp_path_factory.mktemp("source") / "big.bin", BIG_SIZE)


async def finished_on(session: FastRouterSession, sim: FastRouterSimulator, asset_origin: str) -> VideoResult:
    sim.asset_origin = asset_origin
    return await (await session.submit(**VEO))


def published(nginx: NginxServer, video: VideoResult, source: SourceFile) -> str:
    """Put ``source`` where the result's hosted-copy URL points, and return that URL path."""
    return nginx.publish(f"videos-content/{video.task_id}", source.path)


async def logged(nginx: NginxServer, url_path: str, count: int) -> list[dict[str, Any]]:
    """nginx's log lines for ``url_path``, once there are ``count`` (it writes each as a request ends)."""
    with anyio.fail_after(5):
        while len(entries := [e for e in nginx.requests() if e["uri"] == url_path]) < count:
            await anyio.sleep(0.001)
    return entries


def leftovers(folder: Path) -> list[str]:
    """Temporary files of a download (``.NAME.part`` and its sidecar) still in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name)


def assert_no_key_reached(nginx: NginxServer, proxy: CuttingProxy | None = None) -> None:
    assert all(entry["authorization"] == "" for entry in nginx.requests())
    if proxy is not None:
        assert proxy.request_heads
        assert not any("authorization:" in head.lower() for head in proxy.request_heads)


async def test_nginx_serves_ranges_on_one_port_and_ignores_them_on_the_other(
    nginx: NginxServer, big_file: SourceFile
) -> None:
    """The fixture is what the tests assume: 206 with a strong ETag on one port, 200 despite Range on the other."""
    path = nginx.publish("probe/big.bin", big_file.path)
    async with aiohttp.ClientSession() as client:
        ranged_url, plain_url = nginx.origin + path, nginx.no_ranges_origin + path
        async with client.get(ranged_url, headers={"Range": "bytes=1000-"}) as resp:
            assert resp.status == 206
            assert resp.headers["Content-Range"] == f"bytes 1000-{big_file.size - 1}/{big_file.size}"
            assert resp.headers["ETag"].startswith('"')  # strong: no W/ prefix
        async with client.get(plain_url, headers={"Range": "bytes=1000-"}) as resp:
            assert resp.status == 200
            assert resp.content_length == big_file.size
            assert "Content-Range" not in resp.headers


async def test_download_from_nginx_is_complete_and_verified(
    nginx: NginxServer, big_file: SourceFile, sim: FastRouterSimulator, session: FastRouterSession, tmp_path: Path
) -> None:
    """An uncut 100 MB download from nginx arrives whole: size and sha256 match, no key sent, no temp file left."""
    video = await finished_on(session, sim, nginx.origin)
    path = published(nginx, video, big_file)
    written = await video.download(tmp_path / "v.mp4")
    assert (written.size, written.sha256) == (big_file.size, big_file.sha256)
    assert sha256_of(written.path) == big_file.sha256
    assert leftovers(tmp_path) == []
    assert [(e["status"], e["body_bytes_sent"]) for e in await logged(nginx, path, 1)] == [(200, big_file.size)]
    assert sim.records.downloads == []  # the provider URL on the simulator was never needed
    assert_no_key_reached(nginx)


async def test_cut_download_resumes_with_range(
    nginx: NginxServer, big_file: SourceFile, sim: FastRouterSimulator, session: FastRouterSession, tmp_path: Path
) -> None:
    """A connection cut mid-body is resumed with Range from the bytes kept, answered 206, and the sha256 matches."""
    async with CuttingProxy("127.0.0.1", nginx.port, cut_after={0: CUT_AT}) as proxy:
        video = await finished_on(session, sim, proxy.origin)
        path = published(nginx, video, big_file)
        written = await video.download(tmp_path / "v.mp4")
    assert len(proxy.connections) == 2
    first, second = proxy.connections
    assert (first.cut, first.status, first.body_bytes) == (True, 200, CUT_AT)
    assert "range" not in first.headers()
    asked = re.fullmatch(r"bytes=(\d+)-", second.headers().get("range", ""))
    assert asked is not None, f"the retry did not ask for a range: {second.request_heads[0]!r}"
    resumed_from = int(asked[1])
    # Every byte the client read before the cut was kept. aiohttp drops what it had buffered but
    # not yet handed over when the connection breaks, so the offset can be a little short of the cut.
    assert CUT_AT - 4 * 1024 * 1024 <= resumed_from <= CUT_AT
    assert second.status == 206
    assert second.body_bytes == big_file.size - resumed_from  # only the missing part crossed the wire
    assert sorted(e["status"] for e in await logged(nginx, path, 2)) == [200, 206]
    assert (written.size, written.sha256) == (big_file.size, big_file.sha256)
    assert sha256_of(written.path) == big_file.sha256
    assert leftovers(tmp_path) == []
    assert sim.records.downloads == []
    assert_no_key_reached(nginx, proxy)


async def test_cut_download_restarts_on_a_server_without_ranges(
    nginx: NginxServer, big_file: SourceFile, sim: FastRouterSimulator, session: FastRouterSession, tmp_path: Path
) -> None:
    """On a server that ignores Range (max_ranges 0), a cut download starts over with a 200 and ends verified."""
    async with CuttingProxy("127.0.0.1", nginx.no_ranges_port, cut_after={0: CUT_AT}) as proxy:
        video = await finished_on(session, sim, proxy.origin)
        path = published(nginx, video, big_file)
        written = await video.download(tmp_path / "v.mp4")
    assert len(proxy.connections) == 2
    first, second = proxy.connections
    assert (first.cut, first.status, first.body_bytes) == (True, 200, CUT_AT)
    assert second.status == 200  # whatever the client asked for (a range, here ignored), the whole file came...
    assert second.body_bytes == big_file.size
    assert (written.size, written.sha256) == (big_file.size, big_file.sha256)  # ...and was not spliced on
    assert sha256_of(written.path) == big_file.sha256
    assert leftovers(tmp_path) == []
    assert [e["status"] for e in await logged(nginx, path, 2)] == [200, 200]
    assert sim.records.downloads == []
    assert_no_key_reached(nginx, proxy)


async def test_file_changed_between_cut_and_retry_is_not_spliced(
    nginx: NginxServer, big_file: SourceFile, sim: FastRouterSimulator, session: FastRouterSession, tmp_path: Path
) -> None:
    """If the file on the server changes after a cut, the result is the new file whole, never old bytes + new."""
    replacement = write_random_file(tmp_path / "replacement.bin", 3 * 1024 * 1024 + 5)
    async with CuttingProxy("127.0.0.1", nginx.port, cut_after={0: 1024 * 1024 + 7}) as proxy:
        video = await finished_on(session, sim, proxy.origin)
        published(nginx, video, big_file)
        proxy.on_cut = lambda conn: published(nginx, video, replacement)  # another size and mtime: another ETag
        written = await video.download(tmp_path / "out" / "v.mp4")
    assert proxy.connections[0].cut
    assert (written.size, written.sha256) == (replacement.size, replacement.sha256)
    assert sha256_of(written.path) == replacement.sha256
    assert leftovers(tmp_path / "out") == []
    assert_no_key_reached(nginx, proxy)


def test_download_benchmark_runs(tmp_path: Path) -> None:
    """benchmarks/download.py --tiny runs end to end: the curl, curl-then-fsync and CPU table, and the no-stall case."""
    if find_nginx() is None:
        pytest.skip(NGINX_MISSING)
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed: apt-get install curl (Debian/Ubuntu); .ci/run installs it")
    out = tmp_path / "download.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "download.py"), "--tiny", "--repeat", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "curl+fsync MB/s" in done.stdout
    assert "CPU s/GB ours" in done.stdout
    assert re.search(r"^\s*1 MB \|", done.stdout, re.MULTILINE), done.stdout
    assert "no stall, loop lag while downloading and polling" in done.stdout
    results = json.loads(out.read_text())
    (row,) = results["rows"]
    assert row["ours_cpu_s_per_gb"] > 0
    assert len(row["vs_curl_fsync"]) == 1
    assert results["lag"]["downloads"] == 4
    assert results["lag"]["lag_ms"]["samples"] > 0
