"""Rate limits: the pause shrinks back after successes; "too many jobs at once" lowers the job cap, not the polls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from fastrouter_async import JobState, RateLimitError, RetryPolicy
from fastrouter_async._budget import Throttle
from fastrouter_async._concurrency import JobCap, is_concurrency_limit, is_concurrency_limit_error
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan
from tests._internals import engine_of

from .conftest import SessionFactory

VEO: dict[str, Any] = {"model": "google/veo3", "prompt": "a kite over the dunes", "length": 8}

TOO_MANY_JOBS = {
    "error": {
        "message": "Too many concurrent tasks for this account: wait for one to finish",
        "type": "rate_limit_error",
        "code": "concurrency_limit_exceeded",
        "status": 429,
    }
}


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop run until ``condition`` holds (no wall-clock waiting)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


# --- telling a concurrency limit from a request rate -------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "Too many concurrent tasks",
        "concurrency_limit_exceeded",
        "max_concurrent_jobs",
        "too_many_jobs",
        "Too many running generations, wait for one to finish",
        "too many active tasks",
        "Too many requests at once",
        "at most 5 jobs in flight",
        "Maximum number of pending tasks reached",
        "limit of active jobs reached (3)",
        "3 tasks at a time per key",
        "Too many simultaneous video generations",
        {"error": {"message": "Slow down", "code": "max_concurrency"}},
        b'{"error": "Upstream provider: concurrent job limit reached"}',
    ],
)
def test_concurrency_answers_are_recognised(answer: object) -> None:
    """Answers that say "too many jobs at once", in words, codes or raw bytes, are a concurrency limit."""
    assert is_concurrency_limit(answer)


@pytest.mark.parametrize(
    "answer",
    [
        "Rate Limited - You have exceeded your request limits (TPM/RPM). Slow down or increase your limits.",
        "Too Many Requests",
        "too_many_requests",
        "rate_limit_exceeded",
        "requests per minute exceeded",
        "quota exceeded for today",
        {"error": {"message": "Rate limited", "type": "rate_limit_error", "code": "rate_limit_exceeded"}},
        b"",
        None,
        {"deep": {"deeper": {"deeper": {"deeper": {"deepest": "concurrent"}}}}},  # too deep to read
    ],
)
def test_request_rate_answers_are_not_concurrency(answer: object) -> None:
    """A request-rate 429 (FastRouter's documented wording included) is not mistaken for a concurrency limit."""
    assert not is_concurrency_limit(answer)


def test_only_429_errors_are_concurrency_limits() -> None:
    """is_concurrency_limit_error reads a 429's message, code and body, and ignores other statuses."""
    refused = RateLimitError("Slow down", status_code=429, error_code="too_many_active_tasks")
    assert is_concurrency_limit_error(refused)
    assert not is_concurrency_limit_error(RateLimitError("Too Many Requests", status_code=429))
    assert not is_concurrency_limit_error(ValueError("too many concurrent tasks"))


def test_job_cap_drops_below_what_was_in_flight_then_climbs_back() -> None:
    """The cap falls to in-flight minus one (at least 1) and rises by one per round of accepted submits."""
    cap = JobCap(8)
    assert cap.limited(in_flight=6) == 5
    assert cap.limited(in_flight=8) == 4  # never above the cap it had
    assert [cap.accepted() for _ in range(4)] == [None, None, None, 5]
    assert [cap.accepted() for _ in range(5)] == [None, None, None, None, 6]
    assert cap.limited(in_flight=1) == 1
    assert cap.accepted() == 2
    assert cap.times_limited == 3
    unbounded = JobCap(None)
    assert unbounded.limited(in_flight=3) is None
    assert unbounded.accepted() is None
    assert unbounded.current is None


# --- the pause: slow down, then recover ---------------------------------------------------


def test_pause_returns_to_base_after_successes() -> None:
    """Six 429s, each followed by a success sent after it, all pause for the first pause (not 0.5, 1, 2, 4, 8, 16 s)."""
    throttle = Throttle(None, first_pause=0.5, max_pause=30)
    now = 0.0
    for _ in range(6):
        throttle.rate_limited_by(throttle.episode, None, now=now)
        now = throttle.paused_until + 1.0
        throttle.succeeded(throttle.episode)  # a request sent after the 429 went through
    assert throttle.recent_pauses == (0.5,) * 6


def test_pause_shrinks_step_by_step_after_a_storm() -> None:
    """After a storm doubled the pause, each later success halves it, down to the first pause."""
    throttle = Throttle(None, first_pause=0.5, max_pause=30)
    for step in range(4):
        throttle.rate_limited_by(throttle.episode, None, now=float(step))
    assert throttle.recent_pauses == (0.5, 1.0, 2.0, 4.0)
    shrinking = []
    for _ in range(5):
        throttle.succeeded(throttle.episode)
        shrinking.append(throttle.next_fallback_pause)
    assert shrinking == [4.0, 2.0, 1.0, 0.5, 0.5]


def test_successes_sent_before_the_429_do_not_count() -> None:
    """A success of a request that left before the last 429 says nothing about the limit now."""
    throttle = Throttle(None, first_pause=0.5, max_pause=30)
    stale = throttle.episode
    throttle.rate_limited_by(stale, None, now=0.0)
    throttle.succeeded(stale)
    throttle.rate_limited_by(throttle.episode, None, now=1.0)
    assert throttle.recent_pauses == (0.5, 1.0)


async def test_session_pause_recovers_between_429s(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """Over the wire: 429s separated by successful polls each pause the session for the base delay only."""
    session = make_session(retry_policy=RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.05))
    sim.default_plan = JobPlan(polls=40)
    job = await session.submit(**VEO)
    for skip in (2, 6, 10, 14, 18):
        sim.inject(Fault.rate_limit(route="poll", skip=skip))
    await job
    statuses = [r.status for r in sim.records.polls]
    assert statuses.count(429) == 5
    assert "429, 429" not in ", ".join(map(str, statuses))  # successes in between
    assert session.rate_limited == 5
    assert engine_of(session).throttle.recent_pauses == (0.001,) * 5  # old: 0.001, 0.002, 0.004, 0.008, 0.016


# --- "too many jobs at once" ---------------------------------------------------------------


async def test_too_many_jobs_lowers_the_cap_and_polls_go_on(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """A submit refused as "too many jobs" lowers the cap, waits for a job to end, and never pauses polls."""
    session = make_session(max_concurrent_jobs=4)
    sim.default_plan = JobPlan(polls=10_000)  # running until a test says otherwise
    jobs = [await session.submit(**VEO) for _ in range(3)]
    sim.inject(Fault.status(429, route="submit", body=TOO_MANY_JOBS))
    refused = asyncio.create_task(session.submit(**VEO))
    await until(lambda: session.concurrency_limited == 1 and session.submits_waiting == 1)
    assert session.effective_max_concurrent_jobs == 3
    assert session.max_concurrent_jobs == 4
    polls_before = sim.records.poll_count
    assert (await jobs[1].status()).state is JobState.RUNNING  # polls are not held back
    assert sim.records.poll_count > polls_before
    assert session.rate_limited == 0
    assert engine_of(session).throttle.recent_pauses == ()
    assert not refused.done()
    sim.jobs[jobs[0].task_id].plan = JobPlan(polls=1)  # one job ends: the refused submit gets its slot
    fourth = await refused
    assert fourth.task_id in sim.jobs
    assert sim.records.jobs_created == 4
    assert session.jobs_in_flight == 3


async def test_job_cap_recovers_after_accepted_submits(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """After a "too many jobs" answer, a round of accepted submits brings the cap back to max_concurrent_jobs."""
    session = make_session(max_concurrent_jobs=3)
    sim.default_plan = JobPlan(polls=10_000)
    jobs = [await session.submit(**VEO) for _ in range(2)]
    sim.inject(Fault.status(429, route="submit", body=TOO_MANY_JOBS))
    refused = asyncio.create_task(session.submit(**VEO))
    await until(lambda: session.submits_waiting == 1)
    assert session.effective_max_concurrent_jobs == 2
    for job in jobs:  # two jobs end; two submits are accepted at a cap of 2: one round
        sim.jobs[job.task_id].plan = JobPlan(polls=1)
        await job
    running = [await refused, await session.submit(**VEO)]  # kept: a dropped handle frees its slot
    assert session.effective_max_concurrent_jobs == 3
    running.append(await asyncio.wait_for(session.submit(**VEO), timeout=5))  # three in flight again, no waiting
    assert session.jobs_in_flight == 3
    assert all(job.task_id in sim.jobs for job in running)


async def test_too_many_jobs_without_a_cap_backs_off(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """Without max_concurrent_jobs, a "too many jobs" submit just retries after a backoff; nothing is paused."""
    session = make_session(max_concurrent_jobs=None)
    sim.inject(Fault.status(429, route="submit", body=TOO_MANY_JOBS, times=2))
    job = await session.submit(**VEO)
    assert job.task_id in sim.jobs
    assert session.concurrency_limited == 2
    assert session.rate_limited == 0
    assert session.effective_max_concurrent_jobs is None


async def test_endless_too_many_jobs_ends_in_rate_limit_error(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """A submit refused as "too many jobs" again and again gives up with RateLimitError and holds no slot."""
    session = make_session(max_concurrent_jobs=2)
    sim.inject(Fault.status(429, route="submit", body=TOO_MANY_JOBS, times=None))
    with pytest.raises(RateLimitError):
        await session.submit(**VEO)
    assert sim.records.jobs_created == 0
    assert session.jobs_in_flight == 0
    assert session.effective_max_concurrent_jobs == 1
    assert session.rate_limited == 0


async def test_batch_rides_out_too_many_jobs(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """generate_many under "too many jobs" answers: every job still completes, never above the cap."""
    session = make_session(max_concurrent_jobs=4)
    sim.default_plan = JobPlan(polls=3)
    sim.inject(Fault.status(429, route="submit", body=TOO_MANY_JOBS, times=2, skip=3))
    outcomes = [o async for o in session.generate_many([VEO] * 8)]
    assert all(o.ok for o in outcomes)
    assert sim.records.jobs_created == 8
    assert sim.records.max_in_flight <= 4
    assert session.concurrency_limited == 2
