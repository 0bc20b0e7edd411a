"""Against the real FastRouter API: opt-in only, because every run is billed.

Run with ``FASTROUTER_LIVE_API_KEY=sk-v1-... pytest -m live tests/test_live.py``.
``FASTROUTER_LIVE_MODEL`` (default ``google/veo3-fast``) and
``FASTROUTER_LIVE_BASE_URL`` (default FastRouter's) may be set too.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from fastrouter_async import AuthenticationError, FastRouterSession, JobState

LIVE_KEY = os.environ.get("FASTROUTER_LIVE_API_KEY")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not LIVE_KEY, reason="set FASTROUTER_LIVE_API_KEY to run the billed live tests"),
]


def live_session(api_key: str | None = LIVE_KEY) -> FastRouterSession:
    return FastRouterSession(api_key, base_url=os.environ.get("FASTROUTER_LIVE_BASE_URL"), max_concurrent_jobs=1)


async def test_live_generate_and_download(tmp_path: Path) -> None:
    """One real video: submit, poll, download; the file is an MP4."""
    model = os.environ.get("FASTROUTER_LIVE_MODEL", "google/veo3-fast")
    async with live_session() as session:
        job = await session.submit(model=model, prompt="a paper boat on a calm lake, soft morning light")
        first = await job.status()
        assert first.state in (JobState.PENDING, JobState.RUNNING, JobState.SUCCEEDED)
        video = await job.result(timeout=30 * 60)
        path = (await video.download(tmp_path / "live.mp4")).path
    assert path.stat().st_size > 10_000
    assert path.read_bytes()[4:8] == b"ftyp"


async def test_live_same_key_twice_is_one_unbilled_task() -> None:
    """The ground of exactly-once submits: the same request sent twice with one cache_key is one task,
    and FastRouter's second answer is a cache hit, not billed (cached, or no credits / 0 credits)."""
    model = os.environ.get("FASTROUTER_LIVE_MODEL", "google/veo3-fast")
    key = f"live-test-{uuid.uuid4().hex}"  # new for every run: only this run's two submits share it
    async with live_session() as session:
        first = await session.submit(model=model, prompt="a red kite over a green hill, one take", cache_key=key)
        second = await session.submit(model=model, prompt="a red kite over a green hill, one take", cache_key=key)
        assert second.task_id == first.task_id
        assert first.found_again is not True  # False, or None when the answer does not say
        estimate = second.submit_estimate
        unbilled = estimate is None or not estimate.credits
        assert second.found_again is True or unbilled, f"the second answer looks billed: {estimate}"
        assert (await second.result(timeout=30 * 60)).task_id == first.task_id


async def test_live_bad_key_is_authentication_error() -> None:
    """A wrong key is refused with AuthenticationError before any job is created."""
    async with live_session("sk-v1-not-a-real-key-0000000000") as session:
        with pytest.raises(AuthenticationError):
            await session.submit(model="google/veo3-fast", prompt="never generated")
