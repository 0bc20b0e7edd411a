"""Events: the session's on_event callback (sync and async) and job.events(), against the simulator."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest

from fastrouter_async import (
    DownloadFinished,
    DownloadProgressed,
    Event,
    InvalidRequestError,
    JobEnded,
    JobState,
    JobSubmitted,
    PollRetried,
    RateLimited,
    StatusChanged,
    read_journal,
)
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan

from .conftest import API_KEY, SessionFactory

VEO: dict[str, Any] = {"model": "google/veo3", "prompt": "a cat surfing", "length": 8}


async def test_sync_callback_hears_a_job_from_submit_to_end(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """A sync on_event gets JobSubmitted (with an estimate), each status change, then JobEnded with the cost."""
    sim.default_plan = JobPlan(polls=2)
    events: list[Event] = []
    session = make_session(on_event=events.append)
    job = await session.submit(**VEO)
    await job
    kinds = [type(e) for e in events]
    assert kinds[0] is JobSubmitted
    assert kinds[-1] is JobEnded
    assert StatusChanged in kinds
    submitted, ended = events[0], events[-1]
    assert isinstance(submitted, JobSubmitted)
    assert isinstance(ended, JobEnded)
    assert submitted.task_id == job.task_id
    assert submitted.model == "google/veo3"
    assert submitted.estimated_seconds is not None
    assert submitted.estimated_seconds > 0
    assert ended.state is JobState.SUCCEEDED
    assert ended.cost_usd == pytest.approx(0.21)
    assert ended.polls == len(sim.records.polls)
    assert ended.error is None
    assert ended.seconds is not None


async def test_async_callback_sees_every_event_in_order_and_is_drained_at_close(
    make_session: SessionFactory,
) -> None:
    """An async on_event runs on the session's task, one event at a time, in order; aclose lets it finish."""
    seen: list[str] = []

    async def record(event: Event) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(type(event).__name__)

    session = make_session(on_event=record)
    await session.generate(**VEO)
    await session.aclose()
    assert seen[0] == "JobSubmitted"
    assert seen[-1] == "JobEnded"
    assert seen.count("JobEnded") == 1


async def test_a_blocked_async_callback_does_not_hold_up_the_job(make_session: SessionFactory) -> None:
    """The job ends while an async on_event is still stuck on its first event (it never blocks the poller)."""
    release = anyio.Event()
    seen: list[Event] = []

    async def slow(event: Event) -> None:
        await release.wait()
        seen.append(event)

    session = make_session(on_event=slow)
    video = await session.generate(**VEO)
    assert video.task_id
    assert not seen
    release.set()
    await session.aclose()
    assert isinstance(seen[-1], JobEnded)


async def test_a_failing_callback_is_logged_without_the_key_and_never_breaks_the_job(
    make_session: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback raising (with the key in its message) is logged scrubbed; the job still succeeds."""

    def broken(event: Event) -> None:
        raise ValueError(f"boom {API_KEY}")

    session = make_session(on_event=broken)
    with caplog.at_level(logging.ERROR, logger="fastrouter_async"):
        video = await session.generate(**VEO)
    assert video.cost_usd is not None
    assert "on_event failed" in caplog.text
    assert API_KEY not in caplog.text


async def test_on_event_must_be_callable(make_session: SessionFactory) -> None:
    """A non-callable on_event is refused at construction, naming the field."""

    with pytest.raises(InvalidRequestError, match="on_event"):
        make_session(on_event="print")


async def test_job_events_polls_the_job_without_anyone_awaiting_it(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """Iterating job.events() alone makes the job be polled, and ends after its JobEnded."""
    sim.default_plan = JobPlan(polls=3)
    session = make_session()
    job = await session.submit(**VEO)
    events = [event async for event in job.events()]
    assert isinstance(events[-1], JobEnded)
    assert all(isinstance(e, StatusChanged) for e in events[:-1])
    assert events[:-1]
    assert job.done
    assert sim.records.poll_count >= 3
    assert (await job).task_id == job.task_id


async def test_job_events_begun_after_the_end_yields_only_job_ended(session: Any) -> None:
    """job.events() on a job already seen to end yields just its JobEnded."""
    job = await session.submit(**VEO)
    await job
    events = [event async for event in job.events()]
    assert [type(e) for e in events] == [JobEnded]


async def test_job_events_of_a_failed_job_end_with_its_error(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """A failed job's iteration ends with a FAILED JobEnded carrying the error (no JobFailedError raised)."""
    sim.default_plan = JobPlan(polls=1, outcome="failed", error="moderation")
    session = make_session()
    job = await session.submit(**VEO)
    events = [event async for event in job.events()]
    ended = events[-1]
    assert isinstance(ended, JobEnded)
    assert ended.state is JobState.FAILED
    assert ended.error


async def test_job_events_is_cancel_safe(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """Cancelling a step of job.events() loses nothing: iterating again still reaches JobEnded."""
    sim.default_plan = JobPlan(polls=2)
    session = make_session()
    job = await session.submit(**VEO)
    stream = job.events()
    with anyio.move_on_after(0):
        await stream.__anext__()
    events = [event async for event in stream]
    assert isinstance(events[-1], JobEnded)


async def test_job_events_and_result_share_the_polls(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """Iterating events while awaiting the job polls it once per due time, not twice."""
    sim.default_plan = JobPlan(polls=3)
    session = make_session()
    job = await session.submit(**VEO)
    seen: list[Event] = []
    async with anyio.create_task_group() as tg:

        async def follow() -> None:
            seen.extend([event async for event in job.events()])

        tg.start_soon(follow)
        await job
    assert isinstance(seen[-1], JobEnded)
    assert sim.records.poll_count == 3


async def test_poll_retries_and_429s_are_events(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """A 503 on a poll sends PollRetried; a 429 sends RateLimited with the job's task id and the wait."""
    sim.inject(Fault.status(429, route="poll", headers={"Retry-After": "0"}))
    sim.inject(Fault.status(503, route="poll", body="busy"))
    events: list[Event] = []
    session = make_session(on_event=events.append)
    job = await session.submit(**VEO)
    followed = [event async for event in job.events()]
    retried = [e for e in followed if isinstance(e, PollRetried)]
    limited = [e for e in events if isinstance(e, RateLimited)]
    assert [e.attempt for e in retried] == [0, 1]  # a 429 does not count as a failed attempt
    assert all(e.task_id == job.task_id and API_KEY not in e.error for e in retried)
    assert limited
    assert limited[0].task_id == job.task_id
    assert limited[0].retry_after == 0.0
    assert "?" not in limited[0].url
    assert any(isinstance(e, RateLimited) for e in followed)


async def test_downloads_send_progress_and_finished_events(make_session: SessionFactory, tmp_path: Path) -> None:
    """A download sends DownloadProgressed up to the size, then DownloadFinished with its bytes."""
    events: list[Event] = []
    told: list[int] = []
    session = make_session(on_event=events.append)
    video = await session.generate(**VEO)
    file = await video.download(tmp_path / "v.mp4", progress=lambda received, total: told.append(received))
    progress = [e for e in events if isinstance(e, DownloadProgressed)]
    finished = [e for e in events if isinstance(e, DownloadFinished)]
    assert progress
    assert progress[-1].received == file.size
    assert told
    assert told[-1] == file.size
    assert len(finished) == 1
    assert finished[0].bytes == file.size
    assert finished[0].path == file.path


async def test_a_batch_journal_records_status_words_from_events(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A journaled batch records each job's running status word, heard through the session's events."""
    sim.default_plan = JobPlan(polls=3)
    events: list[Event] = []
    session = make_session(on_event=events.append)
    journal = tmp_path / "journal.sqlite"
    requests = [dict(VEO, prompt=f"cat {n}") for n in range(3)]
    async with session.generate_many(requests, journal=journal) as batch:
        outcomes = [outcome async for outcome in batch]
    assert len(outcomes) == 3
    assert all(record.state == "succeeded" for record in read_journal(journal))
    with contextlib.closing(sqlite3.connect(journal)) as db:
        recorded = [word for (word,) in db.execute("SELECT detail FROM events WHERE event = 'status'")]
    running = [e.status.raw_status or "" for e in events if isinstance(e, StatusChanged) and not e.status.done]
    # Every status word journaled was heard as an event (a change seen before the batch followed
    # its job, e.g. by a poll made while a submit waited for a slot, is not journaled again).
    assert recorded
    assert len(recorded) <= len(running)
    assert set(recorded) <= set(running)
    assert sum(isinstance(e, JobEnded) for e in events) == 3
