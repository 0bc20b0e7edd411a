"""``session.watch()``: watchers follow the store's unwatched jobs, download each video once and record it.

These tests run the sessions of one process against one simulator, on a SQLite file and, where a
redis-server can be had, on Redis; the runs with real processes (a watcher killed by ``SIGKILL``, the
polls per job across processes, a web backend of several workers) are in
tests/test_watcher_processes.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
from pathlib import Path
from typing import Any

import anyio
import pytest

from fastrouter_async import FastRouterSession, InvalidRequestError, JobState, PollPolicy
from fastrouter_async.testing import FastRouterSimulator, JobPlan, sample_video
from tests._internals import engine_of

from .conftest import SessionFactory

POLL = PollPolicy.fixed(0.005, first_delay=0.0)
SCAN = 0.005


def completed_downloads(sim: FastRouterSimulator) -> dict[str, int]:
    """Task id -> how many downloads of its video the simulator answered in full."""
    counts: dict[str, int] = {}
    for request in sim.records.downloads:
        if request.task_id is not None and request.status in (200, None) and request.method == "GET":
            counts[request.task_id] = counts.get(request.task_id, 0) + 1
    return counts


async def submit_many(session: FastRouterSession, count: int) -> list[str]:
    """Submit ``count`` jobs without waiting for any: their task ids."""
    return [(await session.submit(model="google/veo3", prompt=f"watched {n}")).task_id for n in range(count)]


async def test_watch_needs_a_store(session: FastRouterSession) -> None:
    """Without a store, watch() raises InvalidRequestError naming the store and saying one is needed."""
    with pytest.raises(InvalidRequestError) as caught:
        await session.watch()
    assert caught.value.field == "store"
    assert "needs a store" in str(caught.value)


async def test_watch_refuses_a_bad_scan_interval(make_session: SessionFactory, tmp_path: Path) -> None:
    """scan_interval must be a finite number of seconds > 0."""
    session = make_session(store=f"sqlite:///{tmp_path / 's.sqlite'}")
    with pytest.raises(InvalidRequestError) as caught:
        await session.watch(scan_interval=0)
    assert caught.value.field == "scan_interval"


async def test_two_watchers_download_every_video_once(
    make_session: SessionFactory, sim: FastRouterSimulator, store_url: str, tmp_path: Path
) -> None:
    """Jobs submitted by one session are followed by two watchers; each video is written once and recorded."""
    sim.default_plan = JobPlan(polls=3)
    submitter = make_session(store=store_url, max_concurrent_jobs=None, poll_policy=POLL)
    task_ids = await submit_many(submitter, 8)
    out = tmp_path / "videos"
    watchers = [make_session(store=store_url, poll_policy=POLL) for _ in range(2)]
    async with anyio.create_task_group() as tg:
        for watcher in watchers:
            tg.start_soon(functools.partial(watcher.watch, out, until_idle=True, scan_interval=SCAN))
    assert completed_downloads(sim) == dict.fromkeys(task_ids, 1)
    for task_id in task_ids:
        record = await submitter.job_record(task_id)
        assert record is not None
        assert record.state is JobState.SUCCEEDED
        path = Path(record.details["file"])
        assert path.parent == out
        data = path.read_bytes()
        assert record.details["size"] == len(data)
        assert data == sample_video()
        assert record.details["sha256"] == hashlib.sha256(data).hexdigest()
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.mp4" for t in task_ids)


async def test_a_failed_job_is_recorded_and_nothing_is_downloaded(
    make_session: SessionFactory, sim: FastRouterSimulator, store_url: str, tmp_path: Path
) -> None:
    """A job that fails ends in the store as failed, with its error; the watcher downloads nothing for it."""
    sim.default_plan = JobPlan(polls=2, outcome="failed", error="upstream said no")
    submitter = make_session(store=store_url, max_concurrent_jobs=None, poll_policy=POLL)
    (task_id,) = await submit_many(submitter, 1)
    watcher = make_session(store=store_url, poll_policy=POLL)
    await watcher.watch(tmp_path / "videos", until_idle=True, scan_interval=SCAN)
    record = await submitter.job_record(task_id)
    assert record is not None
    assert record.state is JobState.FAILED
    assert record.details["error"] == "upstream said no"
    assert "file" not in record.details
    assert not sim.records.downloads


async def test_a_watcher_without_output_dir_only_follows(
    make_session: SessionFactory, sim: FastRouterSimulator, store_url: str
) -> None:
    """Without output_dir the watcher follows jobs to their end (links and cost recorded) and downloads nothing."""
    sim.default_plan = JobPlan(polls=2)
    submitter = make_session(store=store_url, max_concurrent_jobs=None, poll_policy=POLL)
    task_ids = await submit_many(submitter, 3)
    watcher = make_session(store=store_url, poll_policy=POLL)
    await watcher.watch(until_idle=True, scan_interval=SCAN)
    records = await submitter.jobs()
    assert sorted(r.task_id or "" for r in records) == sorted(task_ids)
    assert all(r.state is JobState.SUCCEEDED and r.details["urls"] for r in records)
    assert not sim.records.downloads
    assert len(sim.records.polls) == 2 * len(task_ids)  # one watcher polled each job, on its plan


async def test_closing_a_watcher_hands_its_jobs_over_at_once(
    make_session: SessionFactory, sim: FastRouterSimulator, store_url: str, tmp_path: Path
) -> None:
    """A watcher whose session closes mid-job gives its leases back: another watcher finishes the jobs at once."""
    sim.default_plan = JobPlan(polls=10_000)
    submitter = make_session(store=store_url, max_concurrent_jobs=None, poll_policy=POLL)
    task_ids = await submit_many(submitter, 3)
    first = make_session(store=store_url, poll_policy=POLL)  # the default lease: 30 s
    watching = asyncio.create_task(first.watch(tmp_path / "videos", scan_interval=SCAN))
    while {p.task_id for p in sim.records.polls} != set(task_ids):
        await asyncio.sleep(0.005)
    await first.aclose()
    await watching  # returns once the session is closed
    for task_id in task_ids:
        sim.jobs[task_id].plan = JobPlan(polls=1)
    second = make_session(store=store_url, poll_policy=POLL)
    with anyio.fail_after(10):  # far less than the 30 s lease the first watcher held
        await second.watch(tmp_path / "videos", until_idle=True, scan_interval=SCAN)
    assert completed_downloads(sim) == dict.fromkeys(task_ids, 1)


async def test_a_job_seen_to_succeed_is_downloaded_before_the_store_shows_its_end(
    make_session: SessionFactory,
    sim: FastRouterSimulator,
    store_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The watcher that saw a job succeed downloads it at once, even while the store still shows it running.

    A poll's news reaches the store on a task: here every end is held back until the video is
    downloaded, so a watcher that waited for the store to show the end would never download it.
    """
    sim.default_plan = JobPlan(polls=1)
    submitter = make_session(store=store_url, max_concurrent_jobs=None, poll_policy=POLL)
    task_ids = await submit_many(submitter, 2)
    watcher = make_session(store=store_url, poll_policy=POLL)
    sharing = engine_of(watcher).sharing
    assert sharing is not None
    write_state = sharing._record_state

    async def end_written_after_the_download(task_id: str, state: JobState, details: Any) -> None:
        while state.done and task_id not in completed_downloads(sim):
            await asyncio.sleep(0.001)
        await write_state(task_id, state, details)

    monkeypatch.setattr(sharing, "_record_state", end_written_after_the_download)
    with anyio.fail_after(5):  # the scan for videos nobody wrote comes only every 10 s
        await watcher.watch(tmp_path / "videos", until_idle=True, scan_interval=SCAN)
    assert completed_downloads(sim) == dict.fromkeys(task_ids, 1)
    for task_id in task_ids:
        record = await watcher.job_record(task_id)
        assert record is not None
        assert record.state is JobState.SUCCEEDED
        assert Path(record.details["file"]).stat().st_size == record.details["size"]


async def test_cancelling_watch_gives_the_jobs_back(
    make_session: SessionFactory, sim: FastRouterSimulator, store_url: str
) -> None:
    """A cancelled watch() leaves no watch lease behind: the jobs are unclaimed again, the session still open."""
    sim.default_plan = JobPlan(polls=10_000)
    submitter = make_session(store=store_url, max_concurrent_jobs=None, poll_policy=POLL)
    task_ids = await submit_many(submitter, 2)
    watcher = make_session(store=store_url, poll_policy=POLL)
    watching = asyncio.create_task(watcher.watch(scan_interval=SCAN))
    while {p.task_id for p in sim.records.polls} != set(task_ids):
        await asyncio.sleep(0.005)
    watching.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watching
    for _ in range(200):  # the release is written by a task of the session
        unfinished = await submitter.jobs(finished=False)
        if len(unfinished) == len(task_ids) and await _unclaimed(submitter) == sorted(task_ids):
            break
        await asyncio.sleep(0.005)
    assert await _unclaimed(submitter) == sorted(task_ids)
    assert not watcher.closed


async def _unclaimed(session: FastRouterSession) -> list[str]:
    from ._internals import engine_of  # noqa: PLC0415

    sharing = engine_of(session).sharing
    assert sharing is not None
    return sorted(await sharing.unclaimed())


async def test_watch_stops_when_cancelled_inside_a_store_call(
    make_session: SessionFactory, sim: FastRouterSimulator, store_url: str
) -> None:
    """Cancelled while the store's client is busy (redis-py may finish such a command and return), watch() ends."""
    sim.default_plan = JobPlan(polls=10_000)
    submitter = make_session(store=store_url, max_concurrent_jobs=None, poll_policy=POLL)
    await submit_many(submitter, 3)
    watcher = make_session(store=store_url, poll_policy=POLL)
    for round_ in range(30):
        watching = asyncio.create_task(watcher.watch(scan_interval=0.0001))
        for _ in range(round_ % 7 + 1):
            await asyncio.sleep(0)
        await asyncio.sleep(0.001)
        watching.cancel()
        done, _ = await asyncio.wait([watching], timeout=5)
        assert done, f"watch() went on after its cancellation (round {round_})"
        with contextlib.suppress(asyncio.CancelledError):
            await watching
