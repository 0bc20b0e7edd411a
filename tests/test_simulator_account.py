"""The simulator's account limits: a request rate and a cap on jobs at once, answered with 429s as a provider does."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fastrouter_async import FastRouterSession, RateLimited, RetryPolicy
from fastrouter_async._concurrency import is_concurrency_limit
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan, SimulatorServer
from fastrouter_async.testing.__main__ import main as simulator_main

from ._sim import FakeClock
from .conftest import API_KEY, FAST_POLL, FAST_RETRY, FAST_TIMEOUTS
from .test_simulator import command_line_simulator

AUTH = {"Authorization": f"Bearer {API_KEY}"}
MODEL = "google/veo3"
RATE_LIMITED_BODY = {
    "error": {
        "message": "Rate Limited - You have exceeded your request limits (TPM/RPM). Slow down or increase your limits.",
        "type": "rate_limit_error",
        "code": "rate_limit_exceeded",
        "status": 429,
    }
}


async def create(http: aiohttp.ClientSession, base_url: str, prompt: str = "a cat", **headers: str) -> Any:
    """One submit: ``(status, headers, decoded body)``."""
    body = {"model": MODEL, "prompt": prompt}
    async with http.post(f"{base_url}/videos", json=body, headers=AUTH | headers) as r:
        return r.status, r.headers, await r.json()


async def poll(http: aiohttp.ClientSession, base_url: str, task_id: str) -> Any:
    """One poll: ``(status, headers, decoded body)``."""
    async with http.post(f"{base_url}/getVideoResponse", json={"taskId": task_id}, headers=AUTH) as r:
        return r.status, r.headers, await r.json()


def session_for(server: SimulatorServer, **options: Any) -> FastRouterSession:
    """A session with millisecond policies against ``server``, with ``options``."""
    defaults: dict[str, Any] = {"poll_policy": FAST_POLL, "retry_policy": FAST_RETRY, "timeouts": FAST_TIMEOUTS}
    return FastRouterSession(API_KEY, base_url=server.base_url, **(defaults | options))


# -- the request rate -------------------------------------------------------------------------------


async def test_rate_limit_answers_429_with_retry_after_until_a_token_is_free(http: aiohttp.ClientSession) -> None:
    """Over the rate, submits and polls get FastRouter's 429 error object and the seconds until a token is free."""
    clock = FakeClock()
    sim = FastRouterSimulator(api_key=API_KEY, clock=clock, account_rate_limit=4, account_rate_burst=2)
    async with sim.serve() as server:
        status, _, created = await create(http, server.base_url)
        assert status == 200
        task_id = created["data"]["taskId"]
        assert (await poll(http, server.base_url, task_id))[0] == 200
        status, headers, body = await poll(http, server.base_url, task_id)
        assert (status, headers["Retry-After"], body) == (429, "0.25", RATE_LIMITED_BODY)
        clock.now += 0.1
        status, headers, body = await create(http, server.base_url)
        assert (status, headers["Retry-After"], body) == (429, "0.15", RATE_LIMITED_BODY)
        clock.now += 0.15
        assert (await poll(http, server.base_url, task_id))[0] == 200
        async with http.get(f"{server.origin}/_simulator/stats") as r:
            stats = await r.json()
    assert not is_concurrency_limit(RATE_LIMITED_BODY)  # the client reads it as a request rate
    assert (sim.records.rate_limited, sim.records.concurrency_limited) == (2, 0)
    assert (stats["rate_limited"], stats["concurrency_limited"]) == (2, 0)
    assert (sim.records.submit_count, sim.records.poll_count, sim.records.jobs_created) == (2, 3, 1)
    assert [r.status for r in sim.records.requests] == [200, 200, 429, 429, 200]


async def test_rate_limit_spares_downloads_and_keeps_faults_armed(http: aiohttp.ClientSession) -> None:
    """Downloads take no token, and a request refused by the rate leaves the injected faults for the next one."""
    clock = FakeClock()
    sim = FastRouterSimulator(api_key=API_KEY, clock=clock, account_rate_limit=1)
    async with sim.serve() as server:
        status, _, created = await create(http, server.base_url)
        task_id = created["data"]["taskId"]
        sim.inject(Fault.server_error(route="poll"))
        assert (await poll(http, server.base_url, task_id))[0] == 429
        for _ in range(3):
            async with http.get(f"{server.origin}/videos-content/{task_id}") as r:
                assert r.status == 200
        clock.now += 1
        assert (await poll(http, server.base_url, task_id))[0] == 500  # the fault took this one
    assert (status, sim.records.rate_limited, sim.records.download_count) == (200, 1, 3)


async def test_rate_limit_counts_every_rate_limit_the_session_sees() -> None:
    """A session with no store hears each 429 with the simulator's Retry-After, and counts as many as were sent."""
    clock = FakeClock()
    limited = FastRouterSimulator(api_key=API_KEY, clock=clock, account_rate_limit=1000, account_rate_burst=2)
    heard: list[RateLimited] = []

    def on_event(event: object) -> None:
        if isinstance(event, RateLimited):
            heard.append(event)
            clock.now += event.retry_after or 0.0  # simulated time passes while the session waits

    async with limited.serve() as served, session_for(served, on_event=on_event) as session:
        videos = await asyncio.gather(*(session.generate(model=MODEL, prompt=f"take {n}") for n in range(5)))
    assert len({video.task_id for video in videos}) == 5  # each generate() returned its finished video
    assert limited.records.rate_limited >= 1
    assert session.rate_limited == limited.records.rate_limited == len(heard)
    assert {event.retry_after for event in heard} == {0.001}
    assert session.concurrency_limited == 0


async def test_rate_limit_holds_the_account_rate() -> None:
    """However fast a session sends, the requests the simulator accepts never exceed its bucket."""
    rate, burst = 400.0, 4.0
    sim = FastRouterSimulator(
        api_key=API_KEY, default_plan=JobPlan(polls=3), account_rate_limit=rate, account_rate_burst=burst
    )
    async with sim.serve() as server, session_for(server) as session:
        videos = await asyncio.gather(*(session.generate(model=MODEL, prompt=f"take {n}") for n in range(10)))
    assert len({video.task_id for video in videos}) == 10
    accepted = [r.time for r in sim.records.requests if r.route in ("submit", "poll") and r.status != 429]
    assert sim.records.rate_limited > 0
    assert session.rate_limited == sim.records.rate_limited
    for first in range(len(accepted)):
        for last in range(first, len(accepted)):
            allowed = burst + rate * (accepted[last] - accepted[first])
            assert last - first + 1 <= allowed + 0.01, (first, last)


# -- the cap on jobs at once -----------------------------------------------------------------------


async def test_job_cap_refuses_new_jobs_with_too_many_concurrent_tasks(http: aiohttp.ClientSession) -> None:
    """At the cap a submit gets a 429 "too many concurrent tasks" and creates nothing; an ended job frees a place."""
    sim = FastRouterSimulator(api_key=API_KEY, account_max_jobs=2)
    async with sim.serve() as server:
        first = (await create(http, server.base_url, "one", cache_key="k-one"))[2]["data"]["taskId"]
        assert (await create(http, server.base_url, "two"))[0] == 200
        status, headers, body = await create(http, server.base_url, "three")
        assert status == 429
        assert "Retry-After" not in headers
        assert body["error"]["code"] == "concurrency_limit_exceeded"
        assert body["error"]["type"] == "rate_limit_error"
        assert "Too many concurrent tasks" in body["error"]["message"]
        assert is_concurrency_limit(body)
        status, _, again = await create(http, server.base_url, "one", cache_key="k-one")
        assert (status, again["data"]["taskId"]) == (200, first)  # a cache hit creates no job: never refused
        assert (await poll(http, server.base_url, first))[0] == 200  # seen done: no longer in flight
        assert (await create(http, server.base_url, "three"))[0] == 200
        async with http.get(f"{server.origin}/_simulator/stats") as r:
            stats = await r.json()
    assert (sim.records.jobs_created, sim.records.submit_count, sim.records.max_in_flight) == (3, 5, 2)
    assert sim.records.concurrency_limited == stats["concurrency_limited"] == 1
    assert sim.records.rate_limited == 0


async def test_job_cap_holds_against_a_session_that_allows_more() -> None:
    """A session allowing more jobs than the account never gets more in flight, and counts each refusal."""
    sim = FastRouterSimulator(api_key=API_KEY, default_plan=JobPlan(polls=3), account_max_jobs=3)
    patient = RetryPolicy(max_attempts=8, base_delay=0.001, max_delay=0.002, max_retry_after=0.05)
    async with sim.serve() as server, session_for(server, max_concurrent_jobs=8, retry_policy=patient) as session:
        videos = await asyncio.gather(*(session.generate(model=MODEL, prompt=f"take {n}") for n in range(12)))
        effective = session.effective_max_concurrent_jobs
    assert len({video.task_id for video in videos}) == 12
    assert sim.records.jobs_created == 12
    assert sim.records.max_in_flight == 3
    assert sim.records.concurrency_limited >= 1
    assert session.concurrency_limited == sim.records.concurrency_limited
    assert session.rate_limited == 0  # "too many jobs at once" never pauses the polls
    assert effective is not None
    assert effective < 8


async def test_limits_change_at_run_time(http: aiohttp.ClientSession) -> None:
    """The limits are attributes: set, changed or switched off between requests; bad values are refused."""
    clock = FakeClock()
    sim = FastRouterSimulator(api_key=API_KEY, clock=clock)
    async with sim.serve() as server:
        assert (await create(http, server.base_url, "one"))[0] == 200
        sim.account_max_jobs = 1
        assert (await create(http, server.base_url, "two"))[0] == 429
        sim.account_max_jobs = None
        sim.account_rate_limit = 1
        assert (await create(http, server.base_url, "two"))[0] == 200
        assert (await create(http, server.base_url, "three"))[0] == 429
        sim.account_rate_limit = None
        assert (await create(http, server.base_url, "three"))[0] == 200
    assert (sim.records.concurrency_limited, sim.records.rate_limited) == (1, 1)
    sim.reset_records()
    assert (sim.records.concurrency_limited, sim.records.rate_limited) == (0, 0)
    bad_values: list[tuple[str, Any]] = [
        ("account_rate_limit", 0),
        ("account_rate_limit", float("inf")),
        ("account_rate_burst", 0.5),
        ("account_max_jobs", -1),
        ("account_max_jobs", 1.5),
    ]
    for name, bad in bad_values:
        with pytest.raises(ValueError, match=name):
            setattr(sim, name, bad)
        with pytest.raises(ValueError, match=name):
            FastRouterSimulator(**{name: bad})


async def test_command_line_sets_the_account_limits(http: aiohttp.ClientSession) -> None:
    """--account-max-jobs and --account-rate-limit set the limits, and /_simulator/stats counts their 429s."""
    async with command_line_simulator("--account-max-jobs", "1", "--account-rate-limit", "1000") as origin:
        assert (await create(http, f"{origin}/api/v1", "one"))[0] == 200
        assert (await create(http, f"{origin}/api/v1", "two"))[0] == 429
        async with http.get(f"{origin}/_simulator/stats") as r:
            stats = await r.json()
    assert (stats["jobs_created"], stats["concurrency_limited"]) == (1, 1)


def test_command_line_refuses_bad_limits(capsys: pytest.CaptureFixture[str]) -> None:
    """A rate that is not positive, a burst under 1 and a negative job cap are refused."""
    for argv in (["--account-rate-limit", "0"], ["--account-rate-burst", "0.5"], ["--account-max-jobs", "-1"]):
        with pytest.raises(SystemExit) as exited:
            simulator_main(argv)
        assert exited.value.code == 2
    assert "account" in capsys.readouterr().err


async def test_sessions_sharing_a_store_stay_under_the_account_cap(tmp_path: Path) -> None:
    """Two sessions that share a store, each allowed the account's cap, never get a submit refused together."""
    sim = FastRouterSimulator(api_key=API_KEY, default_plan=JobPlan(polls=3), account_max_jobs=3)
    store = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    async with (
        sim.serve() as server,
        session_for(server, max_concurrent_jobs=3, store=store) as first,
        session_for(server, max_concurrent_jobs=3, store=store) as second,
    ):
        videos = await asyncio.gather(
            *(session.generate(model=MODEL, prompt=f"take {n}") for n in range(6) for session in (first, second))
        )
    assert len({video.task_id for video in videos}) == sim.records.jobs_created == 12
    assert sim.records.max_in_flight <= 3
    assert sim.records.concurrency_limited == first.concurrency_limited + second.concurrency_limited == 0
