"""Sessions sharing a store (``FastRouterSession(store=...)``): one cap, one bucket, one record, one poller per job.

Two sessions of one process opening the same store behave as two processes would: nothing of the
session is shared but the store. Each test runs on a SQLite file and, where a redis-server can be
had, on Redis; the multi-process runs are in tests/test_store_processes.py.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import anyio
import pytest

from fastrouter_async import (
    FastRouterSession,
    InvalidRequestError,
    JobState,
    PollPolicy,
    RateLimited,
    StoreError,
)
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan, SimulatorServer

from ._internals import engine_of
from .conftest import API_KEY, SessionFactory

SLOW_POLL = PollPolicy.fixed(0.01, first_delay=0.0)


async def test_the_cap_holds_across_sessions(
    make_session: SessionFactory, sim: FastRouterSimulator, store_url: str
) -> None:
    """Two sessions with max_concurrent_jobs=3 on one store never have more than 3 jobs in flight together."""
    sim.default_plan = JobPlan(polls=4)
    first = make_session(store=store_url, max_concurrent_jobs=3, poll_policy=SLOW_POLL)
    second = make_session(store=store_url, max_concurrent_jobs=3, poll_policy=SLOW_POLL)

    async def run(session: FastRouterSession, n: int) -> None:
        job = await session.submit(model="google/veo3", prompt=f"job {n}")
        await job.result()

    async with anyio.create_task_group() as tg:
        for n in range(10):
            tg.start_soon(run, first if n % 2 else second, n)
    assert sim.records.jobs_created == 10
    assert sim.records.max_in_flight <= 3
    assert first.jobs_in_flight == second.jobs_in_flight == 0


async def test_each_job_is_polled_by_one_session(
    make_session: SessionFactory, sim: FastRouterSimulator, store_url: str
) -> None:
    """A job awaited by two sessions is polled by one; the other reads its status and result from the store."""
    sim.default_plan = JobPlan(polls=6)
    first = make_session(store=store_url, poll_policy=SLOW_POLL)
    second = make_session(store=store_url, poll_policy=SLOW_POLL)
    job = await first.submit(model="google/veo3", prompt="one job, two waiters")
    other = second.job(job.task_id)  # no model, no submit time: both come from the store
    mine, theirs = await asyncio.gather(job.result(), other.result())
    polls = [p for p in sim.records.polls if p.task_id == job.task_id]
    assert len(polls) <= 7  # one session's polls (6), and at most one more around the hand-over
    assert theirs.url == mine.url
    assert other.model == "google/veo3"
    assert other.submitted_at is not None


async def test_a_job_left_by_its_poller_is_taken_over(
    make_session: SessionFactory, sim: FastRouterSimulator, store_url: str
) -> None:
    """When the session polling a job closes, another session waiting for it polls it and gets the result."""
    sim.default_plan = JobPlan(polls=50)
    first = make_session(store=store_url, poll_policy=SLOW_POLL)
    second = make_session(store=store_url, poll_policy=SLOW_POLL)
    job = await first.submit(model="google/veo3", prompt="handed over")
    waiting = asyncio.create_task(job.result())
    while not sim.records.polls:
        await asyncio.sleep(0.001)
    other = second.job(job.task_id)
    theirs = asyncio.create_task(other.result())
    await asyncio.sleep(0.02)
    await first.aclose()  # gives its watch lease back: the other session polls from now on
    with pytest.raises(RuntimeError):
        await waiting
    sim.jobs[job.task_id].plan = JobPlan(polls=1)
    result = await theirs
    assert result.task_id == job.task_id


async def test_a_watch_claim_cut_short_is_given_back(
    make_session: SessionFactory, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim cancelled after it reached the store (a closing session cancels its polls) does not keep the job.

    Without giving it back, the lease would keep every other process off the job for a whole lease.
    """
    session = make_session(store=store_url)
    sharing = engine_of(session).sharing
    assert sharing is not None
    watches = (await sharing.state()).watches
    claim = watches.claim
    reached = asyncio.Event()

    async def claim_then_hang(task_id: str, owner: str, ttl: float) -> bool:
        taken = await claim(task_id, owner, ttl)
        reached.set()
        await asyncio.Event().wait()  # the answer never comes back: cancelled here
        return taken

    monkeypatch.setattr(watches, "claim", claim_then_hang)
    asking = asyncio.create_task(sharing.watching("fr_cut_short"))
    await reached.wait()
    assert await watches.owner("fr_cut_short") == sharing.owner
    asking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asking
    with anyio.fail_after(5):  # given back on a task of the session, not after a whole lease
        while await watches.owner("fr_cut_short") is not None:
            await asyncio.sleep(0.001)
    assert not sharing.watches("fr_cut_short")


async def test_a_429_pauses_every_session(
    make_session: SessionFactory, sim: FastRouterSimulator, store_url: str
) -> None:
    """A 429 answered to one session pauses the requests of every session of the store."""
    first = make_session(store=store_url)
    second = make_session(store=store_url)
    limited = asyncio.Event()
    first_engine = engine_of(first)
    first_engine.events.add_consumer(lambda e: limited.set() if isinstance(e, RateLimited) else None)
    sim.inject(Fault.rate_limit(route="submit", retry_after=0.5))
    submit = asyncio.create_task(first.submit(model="google/veo3", prompt="rate limited"))
    await limited.wait()
    sharing = engine_of(second).sharing
    assert sharing is not None
    state = await sharing.state()
    for _ in range(100):  # the pause is written by a task of the first session
        if await state.bucket.paused_for() > 0:
            break
        await asyncio.sleep(0.005)
    assert await state.bucket.paused_for() > 0
    await submit


async def test_jobs_and_job_record_read_the_store(
    make_session: SessionFactory, sim: FastRouterSimulator, store_url: str
) -> None:
    """Another session lists the jobs and reads a job's end, links and cost from the store, without a request."""
    first = make_session(store=store_url)
    second = make_session(store=store_url)
    job = await first.submit(model="google/veo3", prompt="recorded")
    result = await job.result()
    requests_before = len(sim.records.requests)
    for _ in range(200):
        record = await second.job_record(job.task_id)
        if record is not None and record.finished:
            break
        await asyncio.sleep(0.005)
    assert record is not None
    assert record.state is JobState.SUCCEEDED
    assert record.model == "google/veo3"
    assert record.cache_key == job.cache_key
    assert list(record.details["urls"]) == list(result.urls)
    listed = await second.jobs(finished=True)
    assert [r.task_id for r in listed] == [job.task_id]
    assert await second.jobs(finished=False) == []
    assert len(sim.records.requests) == requests_before


async def test_the_key_is_never_in_the_store_file(make_session: SessionFactory, tmp_path: Path) -> None:
    """The SQLite store holds a fingerprint of the key, never the key."""
    path = tmp_path / "shared.sqlite"
    session = make_session(store=f"sqlite:///{path}")
    job = await session.submit(model="google/veo3", prompt="no key here")
    await job.result()
    await session.aclose()
    for file in tmp_path.iterdir():
        assert API_KEY.encode() not in file.read_bytes()


async def test_a_bad_store_url_is_refused_before_anything_is_sent(server: SimulatorServer) -> None:
    """A store URL that cannot be read raises InvalidRequestError naming store, without its password."""
    with pytest.raises(InvalidRequestError) as caught:
        FastRouterSession(API_KEY, base_url=server.base_url, store="mysql://user:hunter2@db/x")
    assert caught.value.field == "store"
    assert "hunter2" not in str(caught.value)


async def test_without_a_store_jobs_lists_this_sessions_jobs(session: FastRouterSession) -> None:
    """With no store, jobs() and job_record() show this session's own jobs."""
    job = await session.submit(model="google/veo3", prompt="local")
    await job.result()
    assert session.store is None
    records = await session.jobs()
    assert [(r.task_id, r.state) for r in records] == [(job.task_id, JobState.SUCCEEDED)]
    record = await session.job_record(job.task_id)
    assert record is not None
    assert record.finished
    assert await session.job_record(f"fr_{uuid.uuid4().hex}") is None


async def test_a_store_that_cannot_be_reached_stops_the_submit_before_it_is_sent(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """A Redis store nobody listens on: the submit raises StoreError, nothing reaches FastRouter, no password shown."""
    pytest.importorskip("redis")
    session = make_session(store="redis://app:hunter2@127.0.0.1:9/0", max_concurrent_jobs=2)
    with pytest.raises(StoreError) as caught:
        await session.submit(model="google/veo3", prompt="never sent")
    assert sim.records.submit_count == 0
    assert "hunter2" not in str(caught.value)
    assert "redis://app:***@127.0.0.1:9/0" in str(caught.value)
    assert session.jobs_in_flight == 0


async def test_a_job_accepted_after_its_caller_was_cancelled_is_in_the_store(
    make_session: SessionFactory, sim: FastRouterSimulator, store_url: str
) -> None:
    """A submit cancelled while its answer is on its way still records the task id in the store."""
    session = make_session(store=store_url)
    reader = make_session(store=store_url)
    sim.inject(Fault.slow(0.2, route="submit", after_processing=True))
    submit = asyncio.create_task(session.submit(model="google/veo3", prompt="cancelled while accepted"))
    while sim.records.jobs_created == 0:
        await asyncio.sleep(0.002)
    submit.cancel()
    with pytest.raises(asyncio.CancelledError):
        await submit
    (task_id,) = sim.jobs
    record = await reader.job_record(task_id)
    assert record is not None
    assert record.model == "google/veo3"
    assert [r.task_id for r in await reader.jobs()] == [task_id]


async def test_what_polling_learned_is_shared_through_the_store(
    make_session: SessionFactory, sim: FastRouterSimulator, store_url: str
) -> None:
    """A session that learned job durations leaves them in the store; the next session of the store starts from them."""
    sim.default_plan = JobPlan(polls=3)
    first = make_session(store=store_url)
    jobs = [await first.submit(model="google/veo3", prompt=f"learn {n}", length=8) for n in range(3)]
    await asyncio.gather(*(job.result() for job in jobs))
    learned = first.export_durations()
    await first.aclose()  # saves what it learned since its last save
    second = make_session(store=store_url)
    assert second.export_durations() != learned  # nothing read before the store is first used
    await second.jobs()  # opens the store: loads what the first session saved
    assert second.export_durations() == learned


@pytest.mark.parametrize("stored", ["[" * 100_000, "not json", '{"version": 99}', '"a string"'])
async def test_unreadable_learned_durations_in_the_store_are_ignored(
    make_session: SessionFactory, tmp_path: Path, stored: str
) -> None:
    """Deep, broken or foreign durations in the store are skipped with a warning: the session starts from its priors."""
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    writer = make_session(store=url)
    sharing = engine_of(writer).sharing
    assert sharing is not None
    await (await sharing.state()).values.put("durations", stored)
    reader = make_session(store=url)
    priors = reader.export_durations()
    assert await reader.jobs() == []  # opens the store and tries to load them
    assert reader.export_durations() == priors
