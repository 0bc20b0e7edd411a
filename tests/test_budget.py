"""The session-wide request budget: pacing, a 429 slowing everyone, and the gradual recovery."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fastrouter_async import FastRouterSession, InvalidRequestError, RequestBudget
from fastrouter_async._budget import Throttle, coerce_budget
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan
from tests._internals import engine_of

from .conftest import SessionFactory

VEO: dict[str, Any] = {"model": "google/veo3", "prompt": "a lighthouse in a storm", "length": 8}


def test_per_minute_is_converted_to_per_second() -> None:
    """RequestBudget.per_minute(600) is ten requests per second with a burst of ten."""
    budget = RequestBudget.per_minute(600)
    assert budget.rate == pytest.approx(10.0)
    assert budget.capacity == pytest.approx(10.0)
    assert RequestBudget.per_second(0.5).capacity == 1.0


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: RequestBudget(rate=0), "rate"),
        (lambda: RequestBudget(rate=float("inf")), "rate"),
        (lambda: RequestBudget(rate=1, burst=-1), "burst"),
        (lambda: RequestBudget(rate=1, slowdown=1.0), "slowdown"),
        (lambda: RequestBudget(rate=1, recovery=0), "recovery"),
        (lambda: RequestBudget.per_minute(-5), "rate"),
        (lambda: coerce_budget("fast"), "request_budget"),  # type: ignore[arg-type]
        (lambda: coerce_budget(True), "request_budget"),
    ],
)
def test_bad_budgets_name_the_field(build: object, field: str) -> None:
    """A bad budget raises InvalidRequestError naming the field."""
    with pytest.raises(InvalidRequestError) as caught:
        build()  # type: ignore[operator]
    assert caught.value.field == field


def test_a_number_is_requests_per_second() -> None:
    """request_budget=5 means RequestBudget(rate=5)."""
    assert coerce_budget(5) == RequestBudget(rate=5.0)
    assert coerce_budget(None) is None


def test_one_storm_cuts_the_rate_once_then_it_climbs_back() -> None:
    """429s from requests sent before the cut do not cut again; the rate then recovers linearly."""
    throttle = Throttle(RequestBudget(rate=10, recovery=10), first_pause=0.5, max_pause=30)
    ticket = throttle.episode
    throttle.rate_limited_by(ticket, 2.0, now=100.0)
    throttle.rate_limited_by(ticket, 1.0, now=100.1)  # same episode: no second cut, no shorter pause
    assert throttle.paused_until == pytest.approx(102.0)
    assert throttle.current_rate(102.0) == pytest.approx(5.0)
    assert throttle.current_rate(107.0) == pytest.approx(7.5)
    assert throttle.current_rate(112.0) == pytest.approx(10.0)
    assert throttle.rate_limited == 2


def test_a_new_episode_cuts_again_down_to_a_floor() -> None:
    """A 429 for a request sent after the cut halves again, never below 1% of the budget."""
    throttle = Throttle(RequestBudget(rate=10, recovery=10), first_pause=0.5, max_pause=30)
    for step in range(20):
        throttle.rate_limited_by(throttle.episode, 0.0, now=float(step) * 1e-3)
    assert throttle.current_rate(0.019) == pytest.approx(0.1, abs=1e-3)


def test_without_retry_after_the_pause_doubles() -> None:
    """Without Retry-After the pause starts at the policy's base delay and doubles per episode."""
    throttle = Throttle(None, first_pause=0.5, max_pause=1.5)
    throttle.rate_limited_by(throttle.episode, None, now=0.0)
    assert throttle.paused_until == pytest.approx(0.5)
    throttle.rate_limited_by(throttle.episode, None, now=1.0)
    assert throttle.paused_until == pytest.approx(2.0)
    throttle.rate_limited_by(throttle.episode, None, now=3.0)
    assert throttle.paused_until == pytest.approx(4.5)  # capped at max_pause


async def test_a_request_goes_at_once_without_a_coroutine_only_when_nothing_limits_it() -> None:
    """try_acquire() gives the ticket at once without a budget or a pause, and None when acquire() must decide."""
    free = Throttle(None, first_pause=0.5, max_pause=30)
    assert free.try_acquire() == free.episode
    now = asyncio.get_running_loop().time()
    free.rate_limited_by(free.episode, 60.0, now=now)  # a 429: everything waits a minute
    assert free.try_acquire() is None
    budgeted = Throttle(RequestBudget(rate=10), first_pause=0.5, max_pause=30)
    assert budgeted.try_acquire() is None  # tokens are spent by acquire(), in arrival order
    assert await budgeted.acquire() == budgeted.episode


async def test_budget_paces_requests(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """With a budget of 500 requests/s and no burst, 16 requests span at least 15 intervals of 2 ms."""
    session = make_session(request_budget=RequestBudget(rate=500, burst=1))
    sim.default_plan = JobPlan(polls=3)
    jobs = [await session.submit(**VEO) for _ in range(4)]
    for job in jobs:
        await job
    times = sorted(r.time for r in sim.records.submits + sim.records.polls)
    assert len(times) == 16
    assert times[-1] - times[0] >= 15 * 0.002 * 0.95  # server-side clock: allow 5% for scheduling


async def test_a_429_pauses_the_whole_session(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """After one 429 with Retry-After, no request of any job reaches the server before the pause ends."""
    session = make_session(request_budget=RequestBudget(rate=10_000, recovery=0.05))
    sim.default_plan = JobPlan(polls=30)
    jobs = [await session.submit(**VEO) for _ in range(5)]
    sim.inject(Fault.rate_limit(route="poll", retry_after=0.05, skip=20))
    await asyncio.gather(*(job.result() for job in jobs))  # five jobs polling at once
    # Only the other four jobs' polls that were already on their way may arrive during the pause
    # (a session pausing only the job answered 429 lets the four others poll on every millisecond).
    assert _most_requests_during_a_pause(sim, 0.05) <= 4
    assert session.rate_limited == 1


def _most_requests_during_a_pause(sim: FastRouterSimulator, pause: float) -> int:
    """The most requests that reached the server during any pause that followed a 429."""
    seen = sorted(sim.records.submits + sim.records.polls, key=lambda r: r.time)
    pauses = [r.time for r in seen if r.status == 429]
    return max(sum(start < r.time < start + pause * 0.9 for r in seen) for start in pauses)


async def test_batch_rides_out_a_429_storm(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """Short bursts of 429s: every job completes, the whole batch pauses after each, the rate is cut once per burst."""
    session: FastRouterSession = make_session(
        request_budget=RequestBudget(rate=2_000, recovery=0.05), max_concurrent_jobs=10
    )
    sim.default_plan = JobPlan(polls=6)
    for start in (20, 50, 80, 110, 140):  # short bursts: most jobs were not answered 429 themselves
        sim.inject(Fault.rate_limit(route="any", retry_after=0.03, times=3, skip=start))
    results = [r async for r in session.generate_many([VEO] * 30)]
    assert all(r.ok for r in results)
    assert sim.records.jobs_created == 30
    assert session.rate_limited == 15
    assert engine_of(session).throttle.episode < 15  # requests already on their way did not cut the rate again
    # During a pause only requests that were already on their way may arrive: each job has at most
    # one request out at a time, so at most the nine other jobs' (a session pausing only the job
    # that was answered 429 lets the others poll on: hundreds of requests).
    assert _most_requests_during_a_pause(sim, 0.03) <= 9
