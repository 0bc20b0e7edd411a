"""The shared primitives on a real redis-server, used by several real processes at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from fastrouter_async import InvalidRequestError
from fastrouter_async._models import JobState
from fastrouter_async._redis import (
    REDIS_EXTRA_MISSING,
    RedisJobSlots,
    RedisJobStore,
    RedisRequestBucket,
    RedisWatchLeases,
    open_redis,
    prefix,
)
from fastrouter_async._shared import key_namespace

from ._redis import RedisServer, find_redis_server, skip_reason, worker_command
from .test_shared_inmemory import check_bucket, check_job_store, check_slots, check_watch_leases

if TYPE_CHECKING:
    from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
SKIP = skip_reason()
needs_redis = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = find_redis_server()
    assert binary is not None
    with RedisServer(binary, tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = open_redis(redis_server.url)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def namespace() -> str:
    return key_namespace(f"sk-test-{uuid.uuid4().hex}")


async def run_workers(commands: list[list[str]]) -> None:
    """Run worker processes side by side; each must exit with 0."""

    async def run(command: list[str]) -> None:
        done = await anyio.run_process(command, cwd=ROOT, check=False)
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]

    async with anyio.create_task_group() as tg:
        for command in commands:
            tg.start_soon(run, command)


def text(value: object) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


async def server_seconds(client: Redis) -> float:
    seconds, micros = await client.time()
    return float(seconds + micros / 1_000_000)


# -- the client itself -----------------------------------------------------------------------------


def test_missing_redis_package_names_the_extra() -> None:
    """Without redis-py, importing the module works and open_redis() raises ImportError naming the extra."""
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "import fastrouter_async._redis as r\n"
        "try:\n    r.open_redis('redis://127.0.0.1:1/0')\n"
        "except ImportError as e:\n    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == REDIS_EXTRA_MISSING
    assert "fastrouter-async[redis]" in REDIS_EXTRA_MISSING


def test_prefix_is_a_hash_tag_of_the_namespace_and_refuses_anything_else() -> None:
    """Keys start with fra:{namespace}:; anything but a key_namespace() (an API key by mistake) is refused unechoed."""
    namespace = key_namespace("sk-live-abc")
    assert prefix(namespace) == f"fra:{{{namespace}}}:"
    for bad in ("", "sk-live-0123456789abcdef", namespace.upper(), namespace[:-1] + "}", namespace + "0"):
        with pytest.raises(InvalidRequestError, match="namespace") as caught:
            prefix(bad)
        assert not bad or bad not in str(caught.value)
        assert caught.value.value == f"a str of length {len(bad)}"


# -- job slots ---------------------------------------------------------------------------------------


@needs_redis
async def test_slots_hold_capacity_across_processes(client: Redis, namespace: str, redis_server: RedisServer) -> None:
    """4 processes x 20 holders on 10 slots: never more than 10 hold one at once, and all 10 get used."""
    await run_workers([worker_command("slots", redis_server.url, namespace, 20, 10, 5.0) for _ in range(4)])
    assert await client.llen("test:done") == 80
    assert int(await client.get("test:max") or 0) == 10
    assert await RedisJobSlots(client, namespace, capacity=10, lease=1).in_use() == 0


@needs_redis
async def test_slot_lease_contract(client: Redis, namespace: str) -> None:
    """Redis slots: leases expire, renew and release as the JobSlots contract says."""
    await check_slots(RedisJobSlots(client, namespace, capacity=1, lease=0.05, poll=0.005))


@needs_redis
async def test_killed_process_gives_back_its_slot_and_watch_lease(
    client: Redis, namespace: str, redis_server: RedisServer
) -> None:
    """A SIGKILLed holder's slot comes back within one lease period, and its watch lease is taken over."""
    lease = 0.2
    slots = RedisJobSlots(client, namespace, capacity=1, lease=lease, poll=0.005)
    leases = RedisWatchLeases(client, RedisJobStore(client, namespace))
    async with await anyio.open_process(worker_command("hold", redis_server.url, namespace, lease), cwd=ROOT) as proc:
        assert proc.stdout is not None
        with anyio.fail_after(30):
            assert (await proc.stdout.receive()).startswith(b"held")
        with anyio.fail_after(30):
            started = await server_seconds(client)
            while await server_seconds(client) < started + 2 * lease:  # the holder renews: its lease lives on
                assert not await slots.try_acquire("survivor")
                await anyio.sleep(0.01)
        assert not await leases.claim("t-dead", "survivor", 1.0)
        proc.send_signal(signal.SIGKILL)
        killed_at = await server_seconds(client)
        with anyio.fail_after(5):
            await slots.acquire("survivor")
            slot_back = await server_seconds(client) - killed_at
            while not await leases.claim("t-dead", "survivor", 1.0):
                await anyio.sleep(0.005)
            lease_back = await server_seconds(client) - killed_at
        assert await leases.owner("t-dead") == "survivor"
        assert await proc.wait() == -signal.SIGKILL
    # One lease period after the last renewal (before the kill), plus polls and scheduling.
    assert slot_back <= lease + 0.1, slot_back
    assert lease_back <= lease + 0.1, lease_back


# -- the request bucket ------------------------------------------------------------------------------


@needs_redis
async def test_bucket_holds_the_global_rate_across_processes(
    client: Redis, namespace: str, redis_server: RedisServer
) -> None:
    """3 processes taking from one 20/s bucket: grants stay within 10% of 20/s on the server's clock."""
    rate, burst, per_process = 20.0, 2.0, 12  # a rate a loaded CI machine's processes still keep up with
    await run_workers(
        [worker_command("bucket", redis_server.url, namespace, rate, burst, per_process) for _ in range(3)]
    )
    grants = sorted(int(t) / 1_000_000 for t in await client.lrange("test:grants", 0, -1))
    assert len(grants) == 3 * per_process
    span = grants[-1] - grants[0]
    measured = (len(grants) - burst) / span
    assert abs(measured - rate) <= 0.1 * rate, measured
    # The guarantee itself: in no stretch of time more than burst + rate * length grants (+1: the
    # timestamps are read just after each grant).
    for i, start in enumerate(grants):
        for j in range(i + 1, len(grants)):
            assert j - i + 1 <= burst + rate * (grants[j] - start) + 1, (i, j)


@needs_redis
async def test_pause_set_by_one_process_is_seen_by_all(
    client: Redis, namespace: str, redis_server: RedisServer
) -> None:
    """A pause set by another process makes every take() wait; a shorter pause does not shorten it."""
    await run_workers([worker_command("pause", redis_server.url, namespace, 30.0)])
    other = open_redis(redis_server.url)
    try:
        for bucket in (RedisRequestBucket(client, namespace, rate=10), RedisRequestBucket(other, namespace, rate=10)):
            left = await bucket.paused_for()
            assert 20 < left <= 30
            assert await bucket.take() >= left - 0.5
        bucket = RedisRequestBucket(client, namespace, rate=10)
        assert await bucket.pause(0.01) > 20
        assert await bucket.paused_for() > 20
    finally:
        await other.aclose()
    assert await RedisRequestBucket(client, key_namespace("sk-other-account"), rate=10).paused_for() == 0


@needs_redis
async def test_bucket_contract(client: Redis, namespace: str) -> None:
    """Redis bucket: burst, refill on the server's clock, wait times and the pause as the contract says."""
    await check_bucket(RedisRequestBucket(client, namespace, rate=100, burst=3))


# -- job store and watch leases ----------------------------------------------------------------------


@needs_redis
async def test_job_store_contract(client: Redis, namespace: str) -> None:
    """The Redis job store round-trips records and lists them by state, model and finish."""
    await check_job_store(RedisJobStore(client, namespace))


@needs_redis
async def test_watch_leases_contract(client: Redis, namespace: str) -> None:
    """Redis watch leases: one owner at a time, owner-checked, expiring, and unclaimed jobs listed."""
    store = RedisJobStore(client, namespace)
    await check_watch_leases(store, RedisWatchLeases(client, store))


@needs_redis
async def test_primitives_work_with_a_client_that_decodes_replies(redis_server: RedisServer, namespace: str) -> None:
    """A client made with decode_responses=True (str replies instead of bytes) works the same."""
    import redis.asyncio  # noqa: PLC0415 -- the tests skip where redis-py is missing

    client = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        store = RedisJobStore(client, namespace)
        await check_job_store(store)
        await check_watch_leases(
            RedisJobStore(client, key_namespace("sk-second")),
            RedisWatchLeases(client, RedisJobStore(client, key_namespace("sk-second"))),
        )
        await check_slots(RedisJobSlots(client, namespace, capacity=1, lease=0.05, poll=0.005))
    finally:
        await client.aclose()


@needs_redis
async def test_exactly_one_process_claims_each_task(client: Redis, namespace: str, redis_server: RedisServer) -> None:
    """4 processes racing to claim the same 50 tasks: each task is won by exactly one of them."""
    await run_workers([worker_command("claim", redis_server.url, namespace, 50) for _ in range(4)])
    won = Counter(text(t) for t in await client.lrange("test:won", 0, -1))
    assert won == Counter({f"t{i}": 1 for i in range(50)})


# -- the key -----------------------------------------------------------------------------------------


@needs_redis
async def test_no_key_or_value_contains_the_api_key(client: Redis) -> None:
    """After every primitive was used, no Redis key or value, nor any repr, contains the API key."""
    secret = "sk-live-" + uuid.uuid4().hex
    namespace = key_namespace(secret)
    slots = RedisJobSlots(client, namespace, capacity=2, lease=5)
    bucket = RedisRequestBucket(client, namespace, rate=5)
    store = RedisJobStore(client, namespace)
    leases = RedisWatchLeases(client, store)
    await slots.acquire("h1")
    await bucket.take()
    await bucket.pause(5)
    await store.record_intent("k", request_body={"prompt": "p"}, cache_key="ck", model="m", submitted_at=1.0)
    await store.record_task("k", "t")
    await store.record_state("t", JobState.RUNNING, details={"raw_status": "processing"})
    assert await leases.claim("t", os.urandom(4).hex(), 5)

    dumped: list[str] = []
    async for key in client.scan_iter(match="*"):
        dumped.append(text(key))
        kind = text(await client.type(key))
        if kind == "string":
            dumped.append(text(await client.get(key)))
        elif kind == "hash":
            for field, value in (await client.hgetall(key)).items():
                dumped += [text(field), text(value)]
        elif kind == "zset":
            dumped += [text(m) for m in await client.zrange(key, 0, -1)]
        elif kind == "set":
            dumped += [text(m) for m in await client.smembers(key)]
        else:
            raise AssertionError(f"unexpected {kind} at {key!r}")
    assert len(dumped) > 10
    assert all(text(key).startswith(f"fra:{{{namespace}}}:") for key in await client.keys("*"))
    for shown in (*dumped, *(repr(o) for o in (slots, bucket, store, leases))):
        assert secret not in shown
        assert secret[8:] not in shown
