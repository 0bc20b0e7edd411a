"""Exactly-once paid submits: a lost answer is replayed with the same cache key, never paid twice.

Every test runs the real session against the simulator, whose response cache models FastRouter's
documented one (a repeat with the same ``cache_key`` answers the same task, unbilled). The ways an
answer can be lost after the server created the job: a 500 after the create (a small proxy on
loopback replaces the simulator's answer), a connection reset mid-answer, and an answer slower than
the client's timeout.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web

from fastrouter_async import (
    AcceptedJob,
    FastRouterSession,
    InvalidRequestError,
    JobState,
    ReplayPolicy,
    SubmitUncertainError,
    Timeouts,
    VideoRequest,
)
from fastrouter_async._protocol import SubmitAccepted
from fastrouter_async._replays import SubmitAttempts, found_again, replay_delay
from fastrouter_async._submits import SubmitIdentity
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan, SimulatorServer, sample_video

from .conftest import API_KEY, FAST_POLL, FAST_RETRY, FAST_TIMEOUTS, SessionFactory

VEO: dict[str, Any] = {"model": "google/veo3", "prompt": "a cat surfing", "length": 8}
NO_REPLAYS = ReplayPolicy(enabled=False)
SHORT = Timeouts(connect=2.0, request=0.1, read=2.0)  # a create answer slower than this is lost


def cache_keys_sent(sim: FastRouterSimulator) -> list[str | None]:
    """The ``cache_key`` header of every submit the simulator received, in order."""
    return [{k.lower(): v for k, v in h.items()}.get("cache_key") for h in sim.records.headers_seen("submit")]


async def check_done(session_job: Any, tmp_path: Path) -> None:
    """The job ends SUCCEEDED and its video downloads, verified, byte for byte."""
    video = await session_job
    status = await session_job.status()
    assert status.state is JobState.SUCCEEDED
    downloaded = await video.download(tmp_path / f"{session_job.task_id}.mp4")
    assert downloaded.path.read_bytes() == sample_video()


# --- a 500 answered after the job was created: a proxy in front of the simulator ----------------------


@attrs.define
class FailingAfterCreate:
    """Forwards every request to the simulator; the first ``failures`` creates get a 500 instead of its answer."""

    upstream: str
    failures: int
    forwarded_creates: int = 0


@pytest.fixture
async def proxy(server: SimulatorServer) -> AsyncIterator[tuple[FailingAfterCreate, str]]:
    """A loopback HTTP proxy to the simulator that answers 500 to the first create after forwarding it."""
    state = FailingAfterCreate(upstream=server.origin, failures=1)
    async with aiohttp.ClientSession() as client:

        async def forward(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            async with client.request(
                request.method, state.upstream + request.path_qs, data=body, headers=headers, allow_redirects=False
            ) as upstream:
                payload = await upstream.read()
                is_create = request.method == "POST" and request.path.endswith("/videos")
                if is_create:
                    state.forwarded_creates += 1
                    if state.forwarded_creates <= state.failures:  # the job exists; its answer is replaced
                        return web.json_response({"error": {"message": "Internal Server Error"}}, status=500)
                kept = {k: v for k, v in upstream.headers.items() if k.lower() in ("content-type", "etag")}
                return web.Response(status=upstream.status, body=payload, headers=kept)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield state, f"http://127.0.0.1:{port}/api/v1"
        finally:
            await runner.cleanup()


async def test_500_after_create_is_replayed_and_billed_once(
    proxy: tuple[FailingAfterCreate, str], sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A 500 answered after the job was created: the replay finds it (found_again), one bill, a verified video."""
    state, base_url = proxy
    async with FastRouterSession(
        API_KEY, base_url=base_url, poll_policy=FAST_POLL, retry_policy=FAST_RETRY, timeouts=FAST_TIMEOUTS
    ) as session:
        job = await session.submit(**VEO)
        assert state.forwarded_creates == 2
        assert sim.records.billed_count == 1
        assert [hit.task_id for hit in sim.records.cache_hits] == [job.task_id]
        assert job.found_again is True
        assert job.cache_key is not None
        assert cache_keys_sent(sim) == [job.cache_key, job.cache_key]
        assert sim.records.submits[0].json == sim.records.submits[1].json  # an identical body
        await check_done(job, tmp_path)


# --- the simulator's own faults: a reset mid-answer, an answer slower than the timeout -----------------


@pytest.mark.parametrize(
    ("fault", "timeouts"),
    [
        (Fault.drop(route="submit", after_processing=True), FAST_TIMEOUTS),
        (Fault.slow(0.5, route="submit", after_processing=True), SHORT),
    ],
    ids=["reset-after-create", "slower-than-timeout"],
)
async def test_lost_answer_after_create_is_replayed_and_billed_once(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path, fault: Fault, timeouts: Timeouts
) -> None:
    """The job was created and its answer lost: one replay, a cache hit, one bill, SUCCEEDED, no uncertainty."""
    accepted: list[AcceptedJob] = []
    session = make_session(timeouts=timeouts, on_accepted=accepted.append)
    sim.inject(fault)
    job = await session.submit(**VEO)
    assert sim.records.submit_count == 2
    assert sim.records.billed_count == 1
    assert sim.billed_count(prompt="a cat surfing") == 1
    assert job.found_again is True
    assert job.submit_estimate is not None
    assert not job.submit_estimate.credits
    assert [(a.task_id, a.cache_key, a.found_again) for a in accepted] == [(job.task_id, job.cache_key, True)]
    await check_done(job, tmp_path)


async def test_answer_lost_before_create_is_created_once_by_the_replay(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """The first attempt never reached the job creation: the replay misses and creates it, once."""
    session = make_session()
    sim.inject(Fault.drop(route="submit"))
    job = await session.submit(**VEO)
    assert sim.records.submit_count == 2
    assert sim.records.billed_count == 1
    assert sim.records.cache_hits == []
    assert job.found_again is False
    assert job.submit_estimate is not None
    assert job.submit_estimate.credits == pytest.approx(0.21)
    await check_done(job, tmp_path)


async def test_5xx_before_create_is_created_once_by_the_replay(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """A 502 that created nothing: the replay creates the job; one bill."""
    session = make_session()
    sim.inject(Fault.server_error(502, route="submit", times=2))
    job = await session.submit(**VEO)
    assert sim.records.submit_count == 3
    assert sim.records.billed_count == 1
    assert job.found_again is False


async def test_legacy_hit_answer_is_recognised() -> None:
    """A hit answered the older documented way (credits 0, provider "") is found_again too."""
    sim = FastRouterSimulator(api_key=API_KEY, default_plan=JobPlan(polls=1), cache_hit_style="legacy")
    async with (
        sim.serve() as running,
        FastRouterSession(
            API_KEY, base_url=running.base_url, poll_policy=FAST_POLL, retry_policy=FAST_RETRY, timeouts=FAST_TIMEOUTS
        ) as session,
    ):
        sim.inject(Fault.drop(route="submit", after_processing=True))
        job = await session.submit(**VEO)
        assert job.found_again is True
        assert sim.records.billed_count == 1
        assert job.submit_estimate is not None
        assert job.submit_estimate.credits == 0


async def test_first_submit_is_created_and_shows_its_estimate(
    session: FastRouterSession, sim: FastRouterSimulator
) -> None:
    """An ordinary submit: created by its first attempt, with a fresh key and the answer's estimate."""
    job = await session.submit(**VEO)
    assert job.found_again is False
    assert job.cache_key is not None
    assert job.cache_key.startswith("fra1:r:")
    assert job.submit_estimate is not None
    assert job.submit_estimate.credits == pytest.approx(0.21)
    assert cache_keys_sent(sim) == [job.cache_key]
    cache = sim.records.submits[0].json["cache"]
    assert cache == {
        "expiration_time": 86400,
        "filter_on_model": True,
        "filter_on_provider": False,
        "similarity_threshold": 1.0,
    }


# --- the window and the limits -------------------------------------------------------------------------


async def test_replay_past_the_window_is_not_sent(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """When the lost answer comes back after the window, no replay: SubmitUncertainError with key and time."""
    session = make_session(timeouts=SHORT, replay_policy=ReplayPolicy(window=0.05))
    sim.inject(Fault.slow(0.5, route="submit", after_processing=True))
    before = time.time()
    with pytest.raises(SubmitUncertainError) as caught:
        await session.submit(**VEO)
    error = caught.value
    assert sim.records.submit_count == 1
    assert error.cache_key is not None
    assert cache_keys_sent(sim) == [error.cache_key]
    assert error.first_attempt_at is not None
    assert before <= error.first_attempt_at <= time.time()
    assert error.cache_key in str(error)
    assert session.jobs_in_flight == 0


async def test_replays_stop_at_max_replays(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """Answers lost again and again: at most max_replays replays, then SubmitUncertainError; still one bill."""
    session = make_session(replay_policy=ReplayPolicy(max_replays=2))
    sim.inject(Fault.drop(route="submit", after_processing=True, times=3))
    with pytest.raises(SubmitUncertainError):
        await session.submit(**VEO)
    assert sim.records.submit_count == 3
    assert sim.records.billed_count == 1
    assert len(set(cache_keys_sent(sim))) == 1


async def test_resending_with_the_errors_key_finds_the_job(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """The documented recovery: re-send exc.request with exc.cache_key within the window; found, unbilled."""
    session = make_session(replay_policy=ReplayPolicy(max_replays=0))
    sim.inject(Fault.drop(route="submit", after_processing=True))
    with pytest.raises(SubmitUncertainError) as caught:
        await session.submit(**VEO)
    exc = caught.value
    job = await session.submit(attrs.evolve(exc.request, cache_key=exc.cache_key))
    assert job.found_again is True
    assert sim.records.billed_count == 1
    await check_done(job, tmp_path)


async def test_salvaged_task_id_is_not_replayed(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """A 5xx whose body shows the task id needs no replay: SubmitUncertainError with that id, one POST."""
    session = make_session()
    body = {"data": {"taskId": "fr_SALVAGED0123456789"}, "error": {"message": "late"}}
    sim.inject(Fault.status(500, route="submit", body=body))
    with pytest.raises(SubmitUncertainError) as caught:
        await session.submit(**VEO)
    assert caught.value.task_id == "fr_SALVAGED0123456789"
    assert caught.value.cache_key is not None
    assert sim.records.submit_count == 1


# --- keys: one per intended job -------------------------------------------------------------------------


async def test_two_identical_submits_without_a_key_are_two_jobs(
    session: FastRouterSession, sim: FastRouterSimulator
) -> None:
    """Each submit() is one intended job: identical requests without a user key get fresh keys, two tasks."""
    first = await session.submit(**VEO)
    second = await session.submit(**VEO)
    assert first.task_id != second.task_id
    assert first.cache_key != second.cache_key
    assert sim.records.billed_count == 2
    assert sim.records.cache_hits == []


@pytest.mark.parametrize(
    "change",
    [{"prompt": "a dog surfing"}, {"seed": 7}, {"length": 4}, {"model": "google/veo3-fast"}, {"negativePrompt": "x"}],
    ids=["prompt", "seed", "length", "model", "extra"],
)
async def test_requests_differing_in_a_keyed_field_never_share_a_task(
    session: FastRouterSession, sim: FastRouterSimulator, change: dict[str, Any]
) -> None:
    """Even under one user key, requests that differ in any keyed field are two tasks and two bills."""
    first = await session.submit(**VEO, seed=1, cache_key="shared-key")
    second = await session.submit(**{**VEO, "seed": 1, **change}, cache_key="shared-key")
    assert first.task_id != second.task_id
    assert (first.found_again, second.found_again) == (False, False)
    assert sim.records.billed_count == 2
    assert sim.records.cache_hits == []


async def test_a_user_key_reused_on_purpose_is_the_same_job(
    session: FastRouterSession, sim: FastRouterSimulator
) -> None:
    """The same request with the same user key twice: the same task, billed once, the second found again."""
    first = await session.submit(**VEO, cache_key="order-1234")
    second = await session.submit(VideoRequest(**VEO, cache_key="order-1234"))
    assert second.task_id == first.task_id
    assert (first.found_again, second.found_again) == (False, True)
    assert first.cache_key == second.cache_key == "order-1234"
    assert sim.records.billed_count == 1
    assert "cache_key" not in sim.records.submits[0].json  # a header, never a body field


@pytest.mark.parametrize("bad", ["", "has space", "x" * 129, "slash/no", 42])
async def test_a_bad_user_key_is_refused_before_sending(
    session: FastRouterSession, sim: FastRouterSimulator, bad: object
) -> None:
    """A user key FastRouter would refuse is an InvalidRequestError naming cache_key; nothing is sent."""
    with pytest.raises(InvalidRequestError) as caught:
        await session.submit(**VEO, cache_key=bad)  # type: ignore[arg-type]
    assert caught.value.field == "cache_key"
    assert sim.records.requests == []


def test_replay_policy_is_validated() -> None:
    """A window beyond FastRouter's 30-minute pending timeout, or a bad ttl/count, is refused by name."""
    for kwargs, field in (
        ({"window": 0}, "window"),
        ({"window": 1801}, "window"),
        ({"ttl": 59}, "ttl"),
        ({"ttl": 604_801}, "ttl"),
        ({"window": 1200, "ttl": 600}, "ttl"),
        ({"max_replays": -1}, "max_replays"),
        ({"enabled": "yes"}, "enabled"),
    ):
        with pytest.raises(InvalidRequestError) as caught:
            ReplayPolicy(**kwargs)
        assert caught.value.field == field


# --- replays off ----------------------------------------------------------------------------------------


async def test_replays_off_sends_no_key_and_stays_uncertain(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """ReplayPolicy(enabled=False): no cache_key header, no cache object, one POST, SubmitUncertainError."""
    session = make_session(replay_policy=NO_REPLAYS)
    ok = await session.submit(**VEO)
    assert (ok.cache_key, ok.found_again) == (None, False)
    sim.inject(Fault.drop(route="submit", after_processing=True))
    with pytest.raises(SubmitUncertainError) as caught:
        await session.submit(**VEO)
    assert caught.value.cache_key is None
    assert "was not resubmitted" in str(caught.value)
    assert cache_keys_sent(sim) == [None, None]
    assert all("cache" not in r.json for r in sim.records.submits)
    assert sim.records.submit_count == 2
    assert session.replay_policy is NO_REPLAYS


# --- the key stays with the API --------------------------------------------------------------------------


async def test_cache_key_is_never_sent_to_a_download_host(
    session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Polls and downloads carry no cache_key header, on the API host or another one."""
    other = FastRouterSimulator(videos_from=sim)
    async with other.serve() as cdn:
        sim.asset_origin = cdn.origin
        job = await session.submit(**VEO)
        video = await job
        assert video.url is not None
        assert video.url.startswith(cdn.origin)
        await video.download(tmp_path / "v.mp4")
    assert other.records.downloads
    everything = other.records.headers_seen("any") + sim.records.headers_seen("poll")
    assert everything
    assert not any("cache_key" in {k.lower() for k in h} for h in everything)


# --- cancellation during a replay ----------------------------------------------------------------------


async def test_cancelled_during_a_replay_still_announces_the_job(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """A caller cancelled while the replay is on its way: it completes, on_accepted hears of the job found again."""
    accepted: list[AcceptedJob] = []
    session = make_session(on_accepted=accepted.append)
    sim.inject(Fault.drop(route="submit", after_processing=True))
    sim.inject(Fault.slow(0.2, route="submit", after_processing=True))  # the replay's answer comes slowly
    task = asyncio.ensure_future(session.submit(**VEO))
    for _ in range(100_000):
        if sim.records.submit_count >= 2:
            break
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as caught:
        await task
    [job] = accepted
    assert (job.found_again, job.cancelled) == (True, True)
    assert caught.value.fastrouter_task_id == job.task_id  # type: ignore[attr-defined]
    assert sim.records.billed_count == 1
    assert session.jobs_in_flight == 0


# --- the decisions, table-driven ------------------------------------------------------------------------


def uncertain(task_id: str | None = None) -> SubmitUncertainError:
    return SubmitUncertainError(VideoRequest(**VEO), "the answer was lost", task_id=task_id)


@pytest.mark.parametrize(
    ("policy", "replays", "age", "task_id", "replayed"),
    [
        (ReplayPolicy(), 0, 0.0, None, True),
        (ReplayPolicy(), 4, 0.0, None, True),
        (ReplayPolicy(), 5, 0.0, None, False),  # max_replays reached
        (ReplayPolicy(), 0, 1199.0, None, True),
        (ReplayPolicy(), 0, 1200.0, None, False),  # the window, counted from the first attempt
        (ReplayPolicy(), 0, 0.0, "fr_KNOWN", False),  # the id is known: nothing to find
        (ReplayPolicy(enabled=False), 0, 0.0, None, False),
    ],
)
def test_replay_decision(policy: ReplayPolicy, replays: int, age: float, task_id: str | None, replayed: bool) -> None:
    """A replay is sent only with a key, inside the window, under max_replays, and without a known task id."""
    now = 1_000_000.0
    attempts = SubmitAttempts(cache_key="k", first_attempt_at=now - age, fresh=True, replays=replays)
    delay = replay_delay(
        uncertain(task_id), attempts, policy=policy, retry_policy=FAST_RETRY, rng=random.Random(1), now=now
    )
    assert (delay is not None) is replayed


def test_a_redirected_submit_is_not_replayed() -> None:
    """A 303 See Other to a submit may mean a job exists, but a redirected paid body is never sent again."""
    error = SubmitUncertainError(VideoRequest(**VEO), "redirected", status_code=303)
    attempts = SubmitAttempts(cache_key="k", first_attempt_at=0.0, fresh=True)
    policy = ReplayPolicy()
    assert replay_delay(error, attempts, policy=policy, retry_policy=FAST_RETRY, rng=random.Random(1), now=0.0) is None


def test_a_resumed_identity_keeps_its_key_and_its_window() -> None:
    """A batch job's identity (key, first attempt) is used as given; the window counts from that time."""
    identity = SubmitIdentity("fra1:j:abc", 1_000.0)
    attempts = SubmitAttempts.start(VideoRequest(**VEO, cache_key="mine"), identity, ReplayPolicy())
    assert (attempts.cache_key, attempts.first_attempt_at, attempts.fresh) == ("fra1:j:abc", 1_000.0, False)
    late = replay_delay(
        uncertain(), attempts, policy=ReplayPolicy(), retry_policy=FAST_RETRY, rng=random.Random(1), now=1_000.0 + 1200
    )
    assert late is None
    own = SubmitAttempts.start(VideoRequest(**VEO, cache_key="mine"), None, ReplayPolicy())
    assert (own.cache_key, own.fresh) == ("mine", False)
    off = SubmitAttempts.start(VideoRequest(**VEO), identity, ReplayPolicy(enabled=False))
    assert off.cache_key is None


@pytest.mark.parametrize(
    ("payload", "fresh", "replays", "expected"),
    [
        ({"cached": True}, False, 1, True),
        ({"estimate_usage": {"credits_used": 0.2, "provider": "pollo"}}, False, 1, False),
        ({"estimate_usage": {"credits_used": 0, "provider": ""}}, False, 1, True),
        ({}, True, 0, False),  # a fresh key's first attempt cannot find an older job
        ({}, True, 1, None),  # a replay whose answer does not say
        ({}, False, 0, None),  # a user key may name an older job
    ],
)
def test_found_again_from_the_answer(payload: dict[str, Any], fresh: bool, replays: int, expected: bool | None) -> None:
    """found_again follows the documented hit signs, and is False only when it cannot be a hit."""
    accepted = SubmitAccepted(
        task_id="fr_X", model=None, raw_status=None, credits_used=None, cached=False, payload=payload
    )
    attempts = SubmitAttempts(cache_key="k", first_attempt_at=0.0, fresh=fresh, replays=replays)
    assert found_again(accepted, attempts) is expected
