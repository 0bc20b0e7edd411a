"""Spend caps on batches (generate_many(max_spend_usd=...)): the cap holds across runs of one journal."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from fastrouter_async import (
    BatchOutcome,
    Cost,
    FastRouterSession,
    OutcomeStatus,
    SpendCapError,
    VideoRequest,
)
from fastrouter_async.testing import FastRouterSimulator, JobPlan

from ._sim import FakeClock
from .conftest import API_KEY, SessionFactory


@pytest.fixture
def clock() -> FakeClock:
    """The simulator's clock, moved by the test: jobs with a duration end when it says so."""
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> FastRouterSimulator:
    """A simulator on a clock of the test's: jobs succeed at their first poll once their duration passed."""
    return FastRouterSimulator(api_key=API_KEY, default_plan=JobPlan(polls=1), clock=clock)


@pytest.fixture(autouse=True)
def _no_user_model_list(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never a real user's refreshed model list: estimates see the shipped price table."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _requests(count: int, prefix: str = "job") -> list[VideoRequest]:
    return [VideoRequest(model="kling-ai/kling-v1-6", prompt=f"{prefix} {i}", length=5) for i in range(count)]


async def _run(session: FastRouterSession, requests: list[VideoRequest], **options: Any) -> list[BatchOutcome]:
    async with session.generate_many(requests, **options) as batch:
        outcomes = [outcome async for outcome in batch]
    return sorted(outcomes, key=lambda o: o.index)


async def test_batch_stops_at_its_cap_and_a_rerun_with_a_higher_cap_continues(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Past the cap nothing more is sent (NOT_SENT, stopped_by names the cap); a re-run with a higher cap
    counts what the journal already spent and sends only what now fits."""
    journal = tmp_path / "journal.sqlite"
    requests = _requests(5)
    session = make_session(max_concurrent_jobs=1)
    async with session.generate_many(requests, journal=journal, max_spend_usd=0.5) as batch:
        outcomes = sorted([o async for o in batch], key=lambda o: o.index)
        assert isinstance(batch.stopped_by, SpendCapError)
        assert batch.progress.spent_usd == pytest.approx(0.42)
        assert batch.progress.max_spend_usd == 0.5
    assert [o.status for o in outcomes] == [OutcomeStatus.SUCCEEDED] * 2 + [OutcomeStatus.NOT_SENT] * 3
    assert outcomes[2].final_cost == Cost.free()
    assert outcomes[0].estimated_usd == 0.21
    assert outcomes[0].final_cost == Cost(kind="final", usd=0.21, credits=0.21)
    assert len(sim.jobs) == 2

    again = await _run(make_session(max_concurrent_jobs=1), requests, journal=journal, max_spend_usd=0.9)
    assert [o.status for o in again] == [OutcomeStatus.SUCCEEDED] * 4 + [OutcomeStatus.NOT_SENT]
    assert [o.from_journal for o in again[:2]] == [True, True]
    assert len(sim.jobs) == 4


async def test_running_jobs_of_a_stopped_run_count_against_the_cap(
    make_session: SessionFactory, sim: FastRouterSimulator, clock: FakeClock, tmp_path: Path
) -> None:
    """A run stopped while its jobs run (as by a crash) leaves their reservations in the journal: a re-run with
    the same cap re-attaches them and sends nothing that would exceed it."""
    journal = tmp_path / "journal.sqlite"
    requests = _requests(4)
    sim.default_plan = JobPlan(polls=1, duration=60)  # they run until the clock passes 60
    session = make_session()
    async with session.generate_many(requests[:2], journal=journal, max_spend_usd=0.42) as batch:
        while batch.progress.running < 2:  # both submitted and journaled (the loopback server runs on this loop)
            await asyncio.sleep(0)
        assert batch.progress.reserved_usd == pytest.approx(0.42)
    assert len(sim.jobs) == 2
    clock.now += 100.0
    again = await _run(make_session(), requests, journal=journal, max_spend_usd=0.42)
    assert [o.status for o in again] == [OutcomeStatus.SUCCEEDED] * 2 + [OutcomeStatus.NOT_SENT] * 2
    assert [o.resumed for o in again[:2]] == [True, True]
    assert len(sim.jobs) == 2


async def test_failed_jobs_release_their_reservation_in_a_batch(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """A failed job costs nothing: under a cap of two jobs, a failure leaves room for a third job."""
    sim.plan_for("fails", JobPlan(polls=1, outcome="failed"))
    requests = [VideoRequest(model="kling-ai/kling-v1-6", prompt="fails", length=5), *_requests(2)]
    outcomes = await _run(make_session(max_concurrent_jobs=1), requests, max_spend_usd=0.42)
    assert [o.status for o in outcomes] == [OutcomeStatus.FAILED, OutcomeStatus.SUCCEEDED, OutcomeStatus.SUCCEEDED]
    assert outcomes[0].final_cost == Cost.free()
    assert len(sim.jobs) == 3


async def test_hundred_batch_jobs_race_for_the_last_dollars(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """100 jobs, all at once, under a cap worth ten: ten are sent, ninety are NOT_SENT, none over the cap."""
    session = make_session(max_concurrent_jobs=None)
    async with session.generate_many(_requests(100), max_spend_usd=2.1) as batch:
        outcomes = [o async for o in batch]
        spent = batch.progress.spent_usd
    assert sum(o.status is OutcomeStatus.SUCCEEDED for o in outcomes) == 10
    assert sum(o.status is OutcomeStatus.NOT_SENT for o in outcomes) == 90
    assert len(sim.jobs) == 10
    assert spent == pytest.approx(2.1)


async def test_progress_shows_spent_reserved_and_the_rest(make_session: SessionFactory) -> None:
    """Without a cap the batch still tallies: spent and the estimate of the jobs not sent yet."""
    session = make_session(max_concurrent_jobs=1)
    async with session.generate_many(_requests(3)) as batch:
        assert batch.progress.rest_usd == pytest.approx(0.63)
        outcomes = [o async for o in batch]
        progress = batch.progress
    assert all(o.ok for o in outcomes)
    assert progress.spent_usd == pytest.approx(0.63)
    assert (progress.reserved_usd, progress.rest_usd) == (0, 0)
    assert progress.max_spend_usd is None


async def test_the_session_cap_also_stops_a_batch(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """A session's max_spend_usd covers its batches too: the job that would exceed it is not sent, nor any after."""
    session = make_session(max_spend_usd=0.42, max_concurrent_jobs=1)
    async with session.generate_many(_requests(4)) as batch:
        outcomes = sorted([o async for o in batch], key=lambda o: o.index)
        assert isinstance(batch.stopped_by, SpendCapError)
    assert [o.status for o in outcomes] == [OutcomeStatus.SUCCEEDED] * 2 + [OutcomeStatus.NOT_SENT] * 2
    assert session.spent_usd == pytest.approx(0.42)
    assert len(sim.jobs) == 2
