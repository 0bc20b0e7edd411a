"""Cancelling submits never hides a paid job: on_accepted hears of every task the server created."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from fastrouter_async import (
    AcceptedJob,
    FastRouterSession,
    InvalidRequestError,
    RequestBudget,
    VideoJob,
    VideoRequest,
)
from fastrouter_async.testing import FastRouterSimulator, Fault

from .conftest import API_KEY, SessionFactory

VEO: dict[str, Any] = {"model": "google/veo3", "prompt": "a paper boat in the rain", "length": 8}

HOLD = 0.02  # seconds the simulator holds each submit's answer after creating the job


class Recorder:
    """An on_accepted callback that keeps what it was told (sync or async)."""

    def __init__(self, *, steps: int = 0) -> None:
        self.accepted: list[AcceptedJob] = []
        self.steps = steps  # event-loop steps an async callback takes before recording

    def __call__(self, accepted: AcceptedJob) -> None:
        self.accepted.append(accepted)

    async def slowly(self, accepted: AcceptedJob) -> None:
        for _ in range(self.steps):
            await asyncio.sleep(0)
        self.accepted.append(accepted)

    @property
    def task_ids(self) -> list[str]:
        return [a.task_id for a in self.accepted]


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop run until ``condition`` holds (no wall-clock waiting)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


Outcome = VideoJob | BaseException | None
"""A job returned, an exception raised, or None (the submit was cancelled and the cancellation swallowed)."""


async def _outcomes(attempts: list[Callable[[], Awaitable[Outcome]]]) -> list[Outcome]:
    return await asyncio.gather(*(attempt() for attempt in attempts))


def _check_nothing_hidden(sim: FastRouterSimulator, recorder: Recorder, outcomes: list[Outcome]) -> set[str]:
    """Every task the server created reached on_accepted, once; returns the task ids the callers learned."""
    assert sorted(recorder.task_ids) == sorted(sim.jobs)
    learned: set[str] = set()
    for outcome in outcomes:
        if isinstance(outcome, VideoJob):
            learned.add(outcome.task_id)
        elif isinstance(outcome, BaseException):
            found = AcceptedJob.from_exception(outcome)
            if found is not None:
                assert found.cancelled
                learned.add(found.task_id)
    assert learned <= set(sim.jobs)
    return learned


@pytest.mark.parametrize("async_callback", [False, True])
async def test_asyncio_timeouts_at_many_points(
    make_session: SessionFactory, sim: FastRouterSimulator, async_callback: bool
) -> None:
    """Tiny asyncio.timeout()s around submit: every created task reaches on_accepted and the TimeoutError names it."""
    recorder = Recorder(steps=5)
    session = make_session(max_concurrent_jobs=None, on_accepted=recorder.slowly if async_callback else recorder)
    sim.inject(Fault.slow(HOLD, route="submit", after_processing=True, times=None))

    def attempt(timeout: float) -> Callable[[], Awaitable[Outcome]]:
        async def run() -> Outcome:
            try:
                async with asyncio.timeout(timeout):
                    return await session.submit(**VEO)
            except TimeoutError as exc:
                return exc

        return run

    timeouts = [0.0, 0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.03, 1.0]
    outcomes = await _outcomes([attempt(t) for t in timeouts])
    learned = _check_nothing_hidden(sim, recorder, outcomes)
    assert learned == set(sim.jobs)  # the exception of every cancelled submit carries its task id
    assert any(isinstance(o, TimeoutError) and AcceptedJob.from_exception(o) for o in outcomes)
    assert any(isinstance(o, VideoJob) for o in outcomes)


async def test_task_cancel_at_every_step(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """task.cancel() after 0..N event-loop steps: created tasks all reach on_accepted; the CancelledError names them."""
    recorder = Recorder()
    session = make_session(max_concurrent_jobs=3, on_accepted=recorder)
    sim.inject(Fault.slow(HOLD, route="submit", after_processing=True, times=None))

    def attempt(steps: int) -> Callable[[], Awaitable[Outcome]]:
        async def run() -> Outcome:
            task = asyncio.create_task(session.submit(**VEO))
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            try:
                return await task
            except asyncio.CancelledError as exc:
                return exc

        return run

    outcomes = await _outcomes([attempt(steps) for steps in range(0, 40, 2)])
    learned = _check_nothing_hidden(sim, recorder, outcomes)
    assert learned == set(sim.jobs)
    cancelled = [o for o in outcomes if isinstance(o, asyncio.CancelledError) and AcceptedJob.from_exception(o)]
    assert cancelled, "some cancel should land while the answer was held"
    for exc in cancelled:
        assert exc.fastrouter_task_id in "\n".join(exc.__notes__)  # type: ignore[attr-defined]
    assert session.jobs_in_flight == sum(isinstance(o, VideoJob) for o in outcomes)


async def test_anyio_move_on_after(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """anyio.move_on_after swallows the cancellation: on_accepted is then the only way to learn the task id."""
    recorder = Recorder(steps=3)
    session = make_session(max_concurrent_jobs=None, on_accepted=recorder.slowly)
    sim.inject(Fault.slow(HOLD, route="submit", after_processing=True, times=None))

    def attempt(timeout: float) -> Callable[[], Awaitable[Outcome]]:
        async def run() -> Outcome:
            with anyio.move_on_after(timeout):
                return await session.submit(**VEO)
            return None

        return run

    outcomes = await _outcomes([attempt(t) for t in (0.0, 0.0005, 0.001, 0.005, 0.01, 1.0)])
    _check_nothing_hidden(sim, recorder, outcomes)
    swallowed = {a.task_id for a in recorder.accepted if a.cancelled}
    assert swallowed
    assert swallowed.isdisjoint(o.task_id for o in outcomes if isinstance(o, VideoJob))


async def test_on_accepted_hears_every_submit(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """Uncancelled submits are announced too, before submit() returns, with the job's own submit time."""
    recorder = Recorder()
    session = make_session(on_accepted=recorder)
    job = await session.submit(**VEO)
    (accepted,) = recorder.accepted
    assert accepted.task_id == job.task_id
    assert accepted.model == "google/veo3"
    assert accepted.request == job.request
    assert not accepted.cancelled
    assert accepted.submitted_at == job.submitted_at
    assert accepted.submitted_at.tzinfo is datetime.UTC
    assert abs((datetime.datetime.now(datetime.UTC) - accepted.submitted_at).total_seconds()) < 60


async def test_on_accepted_hears_batch_jobs(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """generate_many's submits reach on_accepted as well."""
    recorder = Recorder()
    session = make_session(on_accepted=recorder)
    outcomes = [o async for o in session.generate_many([VEO, VEO, VEO])]
    assert all(o.ok for o in outcomes)
    assert sorted(recorder.task_ids) == sorted(sim.jobs)


async def test_failing_callback_never_breaks_the_submit(
    make_session: SessionFactory, sim: FastRouterSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback that raises is logged (key scrubbed) and the submit still returns its job."""

    def broken(accepted: AcceptedJob) -> None:
        raise RuntimeError(f"database down (dsn had {API_KEY})")

    session = make_session(on_accepted=broken)
    with caplog.at_level(logging.ERROR, "fastrouter_async"):
        job = await session.submit(**VEO)
    assert job.task_id in sim.jobs
    (record,) = [r for r in caplog.records if "on_accepted failed" in r.getMessage()]
    assert job.task_id in record.getMessage()
    assert "database down" in record.getMessage()
    assert API_KEY not in caplog.text


async def test_slow_async_callback_is_bounded(
    make_session: SessionFactory, sim: FastRouterSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """An async callback that hangs is cancelled after on_accepted_timeout and the submit goes on."""
    hang = asyncio.Event()

    async def stuck(accepted: AcceptedJob) -> None:
        await hang.wait()

    session = make_session(on_accepted=stuck, on_accepted_timeout=0.01)
    with caplog.at_level(logging.ERROR, "fastrouter_async"):
        job = await session.submit(**VEO)
    assert job.task_id in sim.jobs
    assert any("did not finish within" in r.getMessage() and job.task_id in r.getMessage() for r in caplog.records)


async def test_callback_runs_even_when_the_caller_is_gone(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """A cancel that lands while an async callback runs does not cut the callback short; then it propagates."""
    started = asyncio.Event()
    release = asyncio.Event()
    recorder = Recorder()

    async def careful(accepted: AcceptedJob) -> None:
        started.set()
        await release.wait()
        recorder(accepted)

    session = make_session(on_accepted=careful)
    task = asyncio.create_task(session.submit(**VEO))
    await started.wait()
    task.cancel()
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()  # held until the callback has finished
    release.set()
    with pytest.raises(asyncio.CancelledError) as caught:
        await task
    (task_id,) = sim.jobs
    assert recorder.task_ids == [task_id]
    found = AcceptedJob.from_exception(caught.value)
    assert found is not None
    assert found.task_id == task_id
    assert found.cancelled


async def test_cancel_while_waiting_for_the_budget_sends_nothing(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """A submit cancelled while it waits for the request budget sends nothing and announces nothing."""
    recorder = Recorder()
    session = make_session(request_budget=RequestBudget(rate=0.5, burst=1), on_accepted=recorder)
    first = await session.submit(**VEO)  # spends the only token: the next request would wait 2 s
    waiting = asyncio.create_task(session.submit(**VEO))
    for _ in range(20):
        await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError) as caught:
        await waiting
    assert AcceptedJob.from_exception(caught.value) is None
    assert sim.records.submit_count == 1
    assert recorder.task_ids == [first.task_id]
    assert session.jobs_in_flight == 1


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"on_accepted": 42}, "on_accepted"),
        ({"on_accepted_timeout": 0}, "on_accepted_timeout"),
        ({"on_accepted_timeout": float("nan")}, "on_accepted_timeout"),
        ({"on_accepted_timeout": True}, "on_accepted_timeout"),
    ],
)
def test_on_accepted_options_validated(options: dict[str, Any], field: str) -> None:
    """A non-callable on_accepted or a bad timeout is an InvalidRequestError naming the field."""
    with pytest.raises(InvalidRequestError) as caught:
        FastRouterSession(API_KEY, base_url="http://127.0.0.1:9/api/v1", **options)
    assert caught.value.field == field


def test_from_exception_searches_groups_and_chains() -> None:
    """AcceptedJob.from_exception finds the value through __cause__, __context__ and exception groups."""
    accepted = AcceptedJob(
        task_id="fr_X",
        model="google/veo3",
        request=VideoRequest(model="google/veo3", prompt="p"),
        submitted_at=datetime.datetime.now(datetime.UTC),
        cancelled=True,
    )
    inner = asyncio.CancelledError()
    inner.fastrouter_accepted = accepted  # type: ignore[attr-defined]
    outer = TimeoutError()
    outer.__cause__ = inner
    group = BaseExceptionGroup("many", [ValueError("other"), outer])
    assert AcceptedJob.from_exception(group) is accepted
    assert AcceptedJob.from_exception(ValueError("unrelated")) is None


async def test_aiohttp_handler_cancellation_loses_nothing(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """A web app whose handlers are cancelled by clients hanging up: every created task reaches on_accepted."""
    recorder = Recorder(steps=2)
    session = make_session(max_concurrent_jobs=None, on_accepted=recorder.slowly)
    sim.inject(Fault.slow(1.0, route="submit", after_processing=True, times=None))  # long enough to hang up in
    handled: list[str] = []
    running = 0

    async def start_video(request: web.Request) -> web.Response:
        nonlocal running
        running += 1
        try:
            job = await session.submit(**VEO)
        finally:
            running -= 1  # also when cancelled: once its submit has come to an end
        handled.append(job.task_id)
        return web.json_response({"task_id": job.task_id})

    app = web.Application()
    app.router.add_post("/videos", start_video)
    runner = web.AppRunner(app, handler_cancellation=True)  # a client that hangs up cancels its handler
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]

        async def client(http: aiohttp.ClientSession) -> None:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.post(f"http://{host}:{port}/videos") as answer:
                    await answer.read()

        async with aiohttp.ClientSession() as http:
            clients = [asyncio.create_task(client(http)) for _ in range(40)]
            # Half the clients hang up once every submit has created its job (the answers are held):
            # aiohttp cancels their handlers while the submits are on their way back.
            await until(lambda: len(sim.jobs) == 40)
            for task in clients[::2]:
                task.cancel()
            await asyncio.gather(*clients, return_exceptions=True)
        for _ in range(100):  # requests still being read start their handlers
            await asyncio.sleep(0)
        await until(lambda: running == 0)  # cancelled handlers finish their submits (the answers are held)
    finally:
        await runner.cleanup()
    assert sorted(recorder.task_ids) == sorted(sim.jobs)
    assert any(a.cancelled for a in recorder.accepted)  # some handlers really were cancelled
    assert set(handled) < set(sim.jobs)
