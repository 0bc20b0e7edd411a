"""The shared poller: one schedule for every waited-on job of a session (over loopback HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial

import anyio
import anyio.lowlevel

from fastrouter_async import AuthenticationError, FastRouterSession, PollPolicy, VideoRequest
from fastrouter_async._poller import MAX_CONCURRENT_POLLS
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan
from tests._internals import life_of

from .conftest import SessionFactory

_SLOW = PollPolicy.fixed(30.0)  # a wait that would take half a minute if nothing else woke it


async def test_many_waiters_one_poller(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """300 jobs awaited at once: exactly 3 polls each, never more than MAX_CONCURRENT_POLLS workers."""
    sim.default_plan = JobPlan(polls=3)
    session = make_session(max_concurrent_jobs=None)
    jobs = [await session.submit(model="google/veo3", prompt=f"job {i}") for i in range(300)]
    most_workers = 0

    async def watch() -> None:
        nonlocal most_workers
        while True:
            most_workers = max(most_workers, session.poller_statistics().workers)
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        results = await asyncio.gather(*(job.result() for job in jobs))
        tg.cancel_scope.cancel()
    assert [r.task_id for r in results] == [j.task_id for j in jobs]
    assert len(sim.records.polls) == 900
    assert 1 < most_workers <= MAX_CONCURRENT_POLLS
    assert session.poller_statistics().workers == 0
    assert session.poller_statistics().scheduled == 0


async def test_status_that_sees_the_end_wakes_result(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """A status() call that sees the job end wakes a result() waiting on a 30 s schedule at once."""
    session = make_session(poll_policy=_SLOW)
    job = await session.submit(model="google/veo3", prompt="p")
    async with anyio.create_task_group() as tg:
        tg.start_soon(job.result)
        await anyio.lowlevel.checkpoint()
        with anyio.fail_after(5):
            assert (await job.status()).done
            await job.result()
    assert len(sim.records.polls) == 1


async def test_close_wakes_waiting_results(make_session: SessionFactory) -> None:
    """Closing the session ends every result() still waiting, with the closed-session RuntimeError."""
    session = make_session(poll_policy=_SLOW)
    job = await session.submit(model="google/veo3", prompt="p")
    failures: list[BaseException] = []

    async def wait() -> None:
        try:
            await job.result()
        except RuntimeError as exc:
            failures.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            tg.start_soon(wait)
            await anyio.sleep(0.01)
            await session.aclose()
    assert len(failures) == 2
    assert all("closed" in str(exc) for exc in failures)


async def test_abandoned_job_is_not_polled_any_more(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """Once its last waiter gives up, a job leaves the schedule: at most the poll already on its way arrives."""
    sim.default_plan = JobPlan(polls=10_000)
    session = make_session(max_concurrent_jobs=None)
    job = await session.submit(model="google/veo3", prompt="p")
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(job.result)
            while len(sim.records.polls) < 4:  # on the schedule, polled again and again
                await anyio.sleep(0.001)
            tg.cancel_scope.cancel()  # the only waiter gives up
    seen = len(sim.records.polls)
    sim.plan_next(JobPlan(polls=10))
    other = await session.submit(model="google/veo3", prompt="q")
    await other.result()  # ten polls of another job, each due after the abandoned job would have been
    polls_of = [r.task_id for r in sim.records.polls]
    assert polls_of.count(other.task_id) == 10
    assert polls_of.count(job.task_id) <= seen + 1
    assert session.poller_statistics().scheduled == 0


async def test_sparse_until_the_expected_completion(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """With a learned 100 ms duration, one poll at once, then none before the expected window (~0.091 s)."""
    sim.default_plan = JobPlan(duration=0.1)
    policy = PollPolicy(first_delay=0.0, interval=0.001, max_interval=0.5, jitter=0.0)
    session = make_session(poll_policy=policy)
    session.import_durations(
        {"version": 1, "durations": {"google/veo3 length=8": {"jobs": 50, "median_seconds": 0.1, "sigma": 0.05}}}
    )
    job = await session.submit(VideoRequest(model="google/veo3", prompt="p", length=8))
    await job.result()
    submitted = sim.records.submits[0].time  # the session counts from the accepted answer, a little later
    elapsed = [r.time - submitted for r in sim.records.polls]
    # The second poll is due at the window's opening counted from the submit, however late the first one ran:
    # polling every millisecond would instead send about ninety polls before it.
    assert [t < 0.085 for t in elapsed] == [True] + [False] * (len(elapsed) - 1)
    assert sim.jobs[job.task_id].done


async def test_cold_model_polls_at_the_cap(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """With only a prior of minutes, the second poll waits the whole cap (20 ms here)."""
    sim.default_plan = JobPlan(polls=2)
    policy = PollPolicy(first_delay=0.0, interval=0.001, max_interval=0.02, jitter=0.0)
    session = make_session(poll_policy=policy)
    job = await session.submit(model="kling-ai/kling-v2", prompt="p")
    await job.result()
    first, second = (r.time for r in sim.records.polls)
    assert second - first >= 0.019


async def test_finished_jobs_teach_the_session(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """Every job seen to finish (after being seen running) is learned, by model and by model + length."""
    sim.default_plan = JobPlan(polls=3)
    session = make_session()
    jobs = [await session.submit(VideoRequest(model="google/veo3", prompt=f"p{i}", length=8)) for i in range(5)]
    await asyncio.gather(*(job.result() for job in jobs))
    learned = session.export_durations()["durations"]
    assert learned["google/veo3 length=8"]["jobs"] == 5
    assert learned["google/veo3"]["jobs"] == 5
    assert 0 < learned["google/veo3"]["median_seconds"] < 5


async def test_reattached_jobs_teach_nothing(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """A re-attached job's submit time is unknown, so its duration is not learned."""
    sim.default_plan = JobPlan(polls=3)
    first = make_session()
    job = await first.submit(model="google/veo3", prompt="p")
    second = make_session()
    await second.job(job.task_id, model="google/veo3").result()
    assert second.export_durations()["durations"] == {}


async def test_poll_failures_reach_every_waiter(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """A poll that fails for good (401) ends every result() waiting on the job, with that error."""
    sim.inject(Fault.status(401, route="poll", times=None))
    session = make_session()
    job = await session.submit(model="google/veo3", prompt="p")
    outcomes = await asyncio.gather(job.result(), job.result(), return_exceptions=True)
    assert all(isinstance(o, AuthenticationError) for o in outcomes)
    assert len(sim.records.polls) == 1
    assert session.jobs_in_flight == 0


def test_session_policy_property(make_session: SessionFactory) -> None:
    """The session exposes the poll policy it runs on."""
    assert isinstance(make_session().poll_policy, PollPolicy)


async def test_durations_survive_a_new_session(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """export_durations() of one session, imported into the next, gives the same estimates."""
    sim.default_plan = JobPlan(polls=2)
    first: FastRouterSession = make_session()
    await (await first.submit(VideoRequest(model="google/veo3", prompt="p", length=8))).result()
    second = make_session()
    assert second.import_durations(first.export_durations()) == 2
    assert second.export_durations() == first.export_durations()


async def test_running_snapshot_kept_without_payload(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """status() returns the running answer whole; the copy kept on the job drops its payload, the final one keeps it."""
    sim.default_plan = JobPlan(polls=2)
    session = make_session()
    job = await session.submit(model="google/veo3", prompt="p")
    running = await job.status()
    assert running.payload is not None
    assert job.last_status is not None
    assert job.last_status.payload is None
    assert job.last_status.raw_status == running.raw_status == "processing"
    await job.result()
    assert job.last_status.payload is not None


async def test_waiter_joining_during_a_poll_adds_no_poll(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """A result() that starts while its job's poll is on its way waits for that poll, not a second one."""
    sim.default_plan = JobPlan(polls=2)
    sim.inject(Fault.slow(0.05, route="poll"))  # the first poll is slow: the second waiter joins during it
    session = make_session()
    job = await session.submit(model="google/veo3", prompt="p")
    async with anyio.create_task_group() as tg:
        tg.start_soon(job.result)
        while not session.poller_statistics().polling:
            await anyio.lowlevel.checkpoint()
        tg.start_soon(job.result)
    first, second = sim.records.polls
    assert second.time >= first.time + 0.05  # sent after the slow answer came back, not beside it


async def test_a_hanging_poll_holds_up_no_other_job(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """A job coming due while another job's poll hangs is polled by another worker at once."""
    sim.inject(Fault.slow(30.0, route="poll"))  # the first poll hangs for half a minute
    session = make_session()
    stuck = await session.submit(model="google/veo3", prompt="stuck")
    async with anyio.create_task_group() as tg:
        tg.start_soon(stuck.result)
        while not session.poller_statistics().polling:
            await anyio.lowlevel.checkpoint()
        quick = await session.submit(model="google/veo3", prompt="quick")
        with anyio.fail_after(4):  # the hanging poll times out after 5 s (FAST_TIMEOUTS): well before that
            await quick.result()
        tg.cancel_scope.cancel()


async def _until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(5):
        while not condition():
            await anyio.sleep(0.001)


async def test_job_being_polled_is_not_scheduled_again(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """While a job's poll is on its way, neither a submit waiting for its slot nor another result() adds a poll."""
    sim.inject(Fault.slow(30.0, route="poll"))  # the first poll stays on its way until the test ends
    session = make_session(max_concurrent_jobs=1, poll_policy=PollPolicy.fixed(30.0, first_delay=0.0))
    job = await session.submit(model="google/veo3", prompt="p")
    async with anyio.create_task_group() as tg:
        tg.start_soon(job.result)
        await _until(lambda: len(sim.records.polls) == 1)
        tg.start_soon(job.result)
        tg.start_soon(partial(session.submit, model="google/veo3", prompt="waits for the slot"))
        await _until(lambda: session.submits_waiting == 1 and life_of(job).waits() == 2)
        assert session.poller_statistics().scheduled == 0  # its poll, when answered, schedules the next one
        tg.cancel_scope.cancel()
    assert len(sim.records.polls) == 1


async def test_every_worker_is_polling_or_about_to(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """No worker lingers in the pool after it found nothing to poll (a job coming due would wait on it)."""
    sim.default_plan = JobPlan(polls=3)
    session = make_session(max_concurrent_jobs=None)
    jobs = [await session.submit(model="google/veo3", prompt=f"job {i}") for i in range(100)]
    lingering = 0

    async def watch() -> None:
        nonlocal lingering
        while True:
            stats = session.poller_statistics()
            lingering = max(lingering, stats.workers - stats.polling - stats.due)
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        await asyncio.gather(*(job.result() for job in jobs))
        tg.cancel_scope.cancel()
    assert lingering <= 0
