"""Two processes downloading one task to one path: never an interleaved file, never a wrong file reported as success."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from fastrouter_async.testing import sample_video

from ._aioserver import serve_handler
from .conftest import API_KEY

TASK = "fr_01TWOPROCESSES000000000000"
SIZE = 8 * 1024 * 1024 + 17
_CHUNK = 128 * 1024

CHILD = """
import asyncio, json, sys
from fastrouter_async import FastRouterError, FastRouterSession, PollPolicy, RetryPolicy

async def main() -> None:
    base_url, path, overwrite = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    policy = PollPolicy(first_delay=0.0, interval=0.001, max_interval=0.002, jitter=0.0)
    retry = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.002)
    async with FastRouterSession(base_url=base_url, poll_policy=policy, retry_policy=retry) as session:
        try:
            video = await session.job(sys.argv[4], model="google/veo3")
            written = await video.download(path, overwrite=overwrite)
        except FastRouterError as exc:
            print(json.dumps({"ok": False, "error": str(exc)}))
        else:
            print(json.dumps({"ok": True, "sha256": written.sha256, "size": written.size}))

asyncio.run(main())
"""


class TwoAtOnce:
    """A FastRouter look-alike whose video link lets a second download start while the first is in flight.

    The first download is sent three quarters of the file, then held until the second download's
    request has arrived (the second process has opened its temporary file by then), then finished.
    The second is answered only once the test says so (after the first process has ended).
    No ETag: nothing can be resumed, so a second process that shares the temporary file starts it
    over under the first one's feet. Events, not timing, make the two overlap.
    """

    def __init__(self, video: bytes) -> None:
        self.video = video
        self.origin = ""
        self.downloads = 0
        self.first_paused = asyncio.Event()
        self.second_arrived = asyncio.Event()
        self.release_second = asyncio.Event()

    def new_round(self) -> None:
        self.downloads = 0
        self.first_paused = asyncio.Event()
        self.second_arrived = asyncio.Event()
        self.release_second = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/api/v1/"):
            link = f"{self.origin}/dl/{TASK}.mp4"
            generation = {"id": "g1", "mediaType": "video", "status": "succeed", "url": link, "failMsg": ""}
            data = {"taskId": TASK, "status": "succeed", "generations": [generation]}
            return web.json_response({"code": "SUCCESS", "message": "success", "data": data})
        self.downloads += 1
        first = self.downloads == 1
        if not first:
            self.second_arrived.set()
            await asyncio.wait_for(self.release_second.wait(), timeout=60)
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.content_length = len(self.video)
        await response.prepare(request)
        pause_at = len(self.video) * 3 // 4 if first else -1
        for start in range(0, len(self.video), _CHUNK):
            if start >= pause_at >= 0:
                self.first_paused.set()
                await asyncio.wait_for(self.second_arrived.wait(), timeout=60)
                pause_at = -1
            await response.write(self.video[start : start + _CHUNK])
        return response


@pytest.fixture
async def two_at_once() -> AsyncIterator[TwoAtOnce]:
    rng = random.Random(11)
    head = sample_video()[:64]
    state = TwoAtOnce(head + rng.randbytes(SIZE - len(head)))
    async with serve_handler(state.handle) as state.origin:
        yield state


async def run_child(base_url: str, path: Path, *, overwrite: bool) -> dict[str, Any]:
    env = {**os.environ, "FASTROUTER_API_KEY": API_KEY}
    env.pop("FASTROUTER_BASE_URL", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        base_url,
        str(path),
        "1" if overwrite else "0",
        TASK,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode(errors="replace")
    outcome: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return outcome


@pytest.mark.parametrize("overwrite", [True, False])
async def test_two_processes_never_interleave_one_destination(
    two_at_once: TwoAtOnce, tmp_path: Path, overwrite: bool
) -> None:
    """Two processes streaming one task to one path at once end with the right file or a clear error, every round."""
    expected = hashlib.sha256(two_at_once.video).hexdigest()
    base_url = f"{two_at_once.origin}/api/v1"
    for round_number in range(3):
        two_at_once.new_round()
        target = tmp_path / f"round{round_number}" / "v.mp4"
        first = asyncio.ensure_future(run_child(base_url, target, overwrite=overwrite))
        await asyncio.wait_for(two_at_once.first_paused.wait(), timeout=60)
        second = asyncio.ensure_future(run_child(base_url, target, overwrite=overwrite))
        outcomes = [await first]
        # The first process has ended: what it left at the path must be the video it reported.
        assert hashlib.sha256(target.read_bytes()).hexdigest() == expected, (round_number, outcomes)
        two_at_once.release_second.set()
        outcomes.append(await second)
        assert two_at_once.downloads >= 2
        assert hashlib.sha256(target.read_bytes()).hexdigest() == expected, (round_number, outcomes)
        for outcome in outcomes:
            if outcome["ok"]:
                assert (outcome["sha256"], outcome["size"]) == (expected, SIZE), outcomes
            else:
                assert "already exists" in outcome["error"], outcomes
        assert any(outcome["ok"] for outcome in outcomes), outcomes
        if overwrite:
            assert all(outcome["ok"] for outcome in outcomes), outcomes
        assert sorted(p.name for p in target.parent.iterdir()) == ["v.mp4"]
