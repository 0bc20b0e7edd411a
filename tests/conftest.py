"""Shared fixtures: a simulator on loopback and sessions with millisecond policies."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, settings

from fastrouter_async import FastRouterSession, PollPolicy, RetryPolicy, Timeouts
from fastrouter_async.testing import FastRouterSimulator, JobPlan, SimulatorServer

from ._redis import RedisServer, find_redis_server
from ._redis import skip_reason as redis_skip_reason

API_KEY = "sk-v1-TESTKEY0123456789abcdefSECRET"

# Tests never sleep for real: every policy waits milliseconds at most.
FAST_POLL = PollPolicy(first_delay=0.0, interval=0.001, max_interval=0.002, jitter=0.0, not_found_grace=5.0)
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.002, max_retry_after=0.05)
FAST_TIMEOUTS = Timeouts(connect=2.0, request=5.0, read=5.0)

SessionFactory = Callable[..., FastRouterSession]

# Property-based tests (tests/test_hostile_answers.py). "ci", the default, keeps the suite fast and
# reproducible: a fixed set of examples, no example database written. A larger, randomised run:
#   HYPOTHESIS_PROFILE=thorough .venv/bin/python -m pytest tests/test_hostile_answers.py
_HYPOTHESIS_COMMON: dict[str, Any] = {
    "deadline": None,  # each example runs a loopback server and a session: timings vary with the machine
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("ci", max_examples=50, derandomize=True, database=None, **_HYPOTHESIS_COMMON)
settings.register_profile("thorough", max_examples=2000, **_HYPOTHESIS_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def sim() -> FastRouterSimulator:
    """A fresh simulator whose jobs succeed on their first poll."""
    return FastRouterSimulator(api_key=API_KEY, default_plan=JobPlan(polls=1))


@pytest.fixture
async def server(sim: FastRouterSimulator) -> AsyncIterator[SimulatorServer]:
    async with sim.serve() as running:
        yield running


@pytest.fixture
async def make_session(server: SimulatorServer) -> AsyncIterator[SessionFactory]:
    """Build sessions against the simulator; every one is closed at the end of the test."""
    made: list[FastRouterSession] = []

    def factory(**overrides: Any) -> FastRouterSession:
        options: dict[str, Any] = {
            "base_url": server.base_url,
            "poll_policy": FAST_POLL,
            "retry_policy": FAST_RETRY,
            "timeouts": FAST_TIMEOUTS,
        }
        options.update(overrides)
        api_key = options.pop("api_key", API_KEY)
        session = FastRouterSession(api_key, **options)
        made.append(session)
        return session

    yield factory
    for session in made:
        await session.aclose()


@pytest.fixture
async def session(make_session: SessionFactory) -> FastRouterSession:
    return make_session()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp client, for tests that speak HTTP to a server themselves."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, for the tests of one module."""
    binary = find_redis_server()
    assert binary is not None
    with RedisServer(binary, tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(params=["sqlite", "redis"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh shared store: a SQLite file, or an emptied database of a real redis-server (skipped without one)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.sqlite'}"
        return
    reason = redis_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    server: RedisServer = request.getfixturevalue("redis_server")
    from redis.asyncio import Redis  # noqa: PLC0415 (only with a redis-server)

    client = Redis.from_url(server.url)
    await client.flushall()
    await client.aclose()
    yield server.url
