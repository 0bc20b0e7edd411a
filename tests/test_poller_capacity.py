"""The poller's capacity: it tells when polls fall behind their schedule, and catches up (over loopback HTTP)."""

from __future__ import annotations

import asyncio
import gc
import heapq
import logging
import time
import weakref

import pytest

from fastrouter_async import Event, PollerBehind, PollerCaughtUp, PollerStatistics
from fastrouter_async._poller import BEHIND_AFTER, LATE_FLOOR, MAX_CONCURRENT_POLLS, _count_due
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan
from tests._internals import engine_of, life_of

from .conftest import SessionFactory

_SLOW_POLL = 0.1  # seconds each poll answer is held back: 64 polls per 0.1 s at most
_JOBS = MAX_CONCURRENT_POLLS * 12  # due at once: the last ones start at least 11 answers (1.1 s) late


async def _run_behind(
    make_session: SessionFactory, sim: FastRouterSimulator, *, submitted_ago: float | None = None
) -> tuple[list[Event], PollerStatistics, PollerStatistics]:
    """Many jobs due at once against slow poll answers: the statistics mid-way, the events, the end."""
    sim.default_plan = JobPlan(polls=1)
    sim.inject(Fault.slow(_SLOW_POLL, route="poll", times=None))
    events: list[Event] = []
    session = make_session(max_concurrent_jobs=None, on_event=events.append)
    jobs = await asyncio.gather(*(session.submit(model="google/veo3", prompt=f"job {i}") for i in range(_JOBS)))
    if submitted_ago is not None:  # re-attached, as another process would: submitted long before the wait
        jobs = [session.job(j.task_id, model=j.model, submitted_at=time.time() - submitted_ago) for j in jobs]
    behind = asyncio.get_running_loop().create_future()

    def watch(event: Event) -> None:
        if isinstance(event, PollerBehind) and not behind.done():
            behind.set_result(session.poller_statistics())

    engine_of(session).events.add_consumer(watch)
    await asyncio.gather(*(job.result() for job in jobs))
    assert behind.done(), f"never behind: {session.poller_statistics()}"
    return events, behind.result(), session.poller_statistics()


async def test_poller_reports_falling_behind_and_catching_up(
    make_session: SessionFactory, sim: FastRouterSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Polls starting late send one PollerBehind, one warning and behind=True; then one PollerCaughtUp."""
    with caplog.at_level(logging.WARNING, logger="fastrouter_async"):
        events, during, after = await _run_behind(make_session, sim)
    poller_events = [e for e in events if isinstance(e, PollerBehind | PollerCaughtUp)]
    assert [type(e) for e in poller_events] == [PollerBehind, PollerCaughtUp]
    went_behind, caught_up = poller_events
    assert isinstance(went_behind, PollerBehind)
    assert isinstance(caught_up, PollerCaughtUp)
    assert went_behind.lateness > 0
    assert 0 < went_behind.jobs_scheduled <= _JOBS
    assert caught_up.seconds_behind > 0
    warnings = [r for r in caplog.records if "late" in r.getMessage()]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "jobs on the schedule" in message
    assert "more processes" in message
    assert during.behind
    assert during.scheduled > 0
    assert not after.behind
    assert after.scheduled == 0
    assert after.polling == 0
    assert after.polls == _JOBS
    assert after.max_lateness > LATE_FLOOR


async def test_poller_behind_on_jobs_awaited_long_after_their_submit(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """Lateness counts from when a poll was scheduled, not from the submit an hour ago: still reported behind."""
    events, during, after = await _run_behind(make_session, sim, submitted_ago=3600.0)
    assert [type(e) for e in events if isinstance(e, PollerBehind | PollerCaughtUp)] == [PollerBehind, PollerCaughtUp]
    assert during.behind
    assert not after.behind


async def test_poller_on_time_reports_nothing(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """Fewer due jobs than workers: every poll starts on time; no poller event, behind stays False."""
    sim.default_plan = JobPlan(polls=2)
    events: list[Event] = []
    session = make_session(max_concurrent_jobs=None, on_event=events.append)
    jobs = [await session.submit(model="google/veo3", prompt=f"job {i}") for i in range(BEHIND_AFTER)]
    await asyncio.gather(*(job.result() for job in jobs))
    assert not [e for e in events if isinstance(e, PollerBehind | PollerCaughtUp)]
    stats = session.poller_statistics()
    assert stats == PollerStatistics(
        scheduled=0,
        polling=0,
        polls=2 * BEHIND_AFTER,
        behind=False,
        lateness=stats.lateness,
        max_lateness=stats.max_lateness,
    )
    assert stats.max_lateness < LATE_FLOOR


async def test_statistics_of_an_idle_session(make_session: SessionFactory) -> None:
    """A session that never waited on a job: nothing scheduled, no polls, not behind."""
    session = make_session()
    assert session.poller_statistics() == PollerStatistics(
        scheduled=0, polling=0, polls=0, behind=False, lateness=0.0, max_lateness=0.0
    )


@pytest.mark.parametrize(
    ("dues", "now", "limit", "expected"),
    [
        ([], 5.0, 64, (0, None)),
        ([1.0, 2.0, 3.0], 0.5, 64, (0, 1.0)),
        ([1.0, 2.0, 3.0, 9.0, 4.0, 7.0], 3.0, 64, (3, 4.0)),
        ([1.0, 2.0, 3.0, 9.0, 4.0, 7.0], 3.0, 2, (2, None)),
        ([1.0, 1.0, 1.0], 1.0, 64, (3, None)),
    ],
)
def test_count_due(dues: list[float], now: float, limit: int, expected: tuple[int, float | None]) -> None:
    """Due entries are counted up to the limit, with the next due time when every due one was seen."""
    heap: list[tuple[float, int, object]] = []
    for seq, due in enumerate(dues):
        heapq.heappush(heap, (due, seq, object()))
    assert _count_due(heap, now, limit) == expected  # type: ignore[arg-type]


async def test_a_finished_job_is_freed_without_the_cycle_collector(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """Handles and lives of ended jobs hold no reference cycle: dropping them frees them at once.

    With 100,000 jobs in flight a full collection is the longest stall (docs/performance.md), and
    a program may call gc.freeze() once its jobs are submitted: neither may leave ended jobs behind.
    """
    sim.default_plan = JobPlan(polls=2)
    session = make_session(max_concurrent_jobs=4)
    jobs = [await session.submit(model="google/veo3", prompt=f"freed {i}") for i in range(12)]
    await asyncio.gather(*(job.result() for job in jobs))
    refs = [weakref.ref(job) for job in jobs] + [weakref.ref(life_of(job)) for job in jobs]
    gc.collect()
    gc.disable()
    try:
        del jobs
        await asyncio.sleep(0)
        assert [ref for ref in refs if ref() is not None] == []
    finally:
        gc.enable()
