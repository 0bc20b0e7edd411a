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


def test_prefix_is_a_hash_tag_of_the_namespace() -> None:
    """Keys start with fra:{namespace}: and a namespace that could escape the tag is refused."""
    assert prefix("abc123") == "fra:{abc123}:"
    for bad in ("", "a}b", "a:b", "a b"):
        with pytest.raises(ValueError, match="namespace"):
            prefix(bad)


# -- job slots ---------------------------------------------------------------------------------------


@needs_redis
async def test_slots_hold_capacity_across_processes(client: Redis, namespace: str, redis_server: RedisServer) -> None:
    """4 processes x 20 holders on 10 slots: never more than 10 hold one at once, and all 10 get used."""
    await run_workers([worker_command("slots", redis_server.url, namespace, 20, 10, 5.0) for _ in range(4)])
    assert await client.llen("test:done") == 80
    assert int(await client.get("test:max") or 0) == 10
    assert await RedisJobSlots(client, namespace, capacity=10, lease=1).in_use() == 0


@needs_redis
async def test_slot_lease_expires_renews_and_releases(client: Redis, namespace: str) -> None:
    """A lease not renewed expires (renew then says False); release frees at once; re-acquiring renews."""
    slots = RedisJobSlots(client, namespace, capacity=1, lease=0.05, poll=0.005)
    assert await slots.try_acquire("a")
    assert await slots.try_acquire("a")  # the holder again: a renewal, not a second slot
    assert not await slots.try_acquire("b")
    assert await slots.renew("a")
    await slots.release("a")
    assert not await slots.renew("a")
    assert await slots.try_acquire("b")
    with anyio.fail_after(1):
        await slots.acquire("c")  # waits for b's lease to end (50 ms)
    assert not await slots.renew("b")
    assert await slots.in_use() == 1


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
    """3 processes taking from one 50/s bucket: grants stay within 10% of 50/s on the server's clock."""
    rate, burst, per_process = 50.0, 2.0, 25
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
async def test_bucket_refills_on_the_server_clock(client: Redis, namespace: str) -> None:
    """A burst is granted at once, the next take says how long to wait, and spending it later succeeds."""
    bucket = RedisRequestBucket(client, namespace, rate=100, burst=3)
    assert [await bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = await bucket.take()
    assert 0 < wait <= 0.01
    await anyio.sleep(wait)
    assert await bucket.take() == 0.0
    with pytest.raises(ValueError, match="burst"):
        await bucket.take(4)


# -- job store and watch leases ----------------------------------------------------------------------


@needs_redis
async def test_job_store_round_trips_and_lists_by_state(client: Redis, namespace: str) -> None:
    """Intents, task ids, states and details come back as written; lists filter by state and finish."""
    store = RedisJobStore(client, namespace)
    body = {"model": "google/veo3", "prompt": "a cat", "length": 8}
    for i in range(4):
        assert await store.record_intent(
            f"k{i}", request_body=body, cache_key=f"ck{i}", model="google/veo3", submitted_at=1000.0 + i
        )
    assert not await store.record_intent("k0", request_body={}, cache_key=None, model="x", submitted_at=1.0)
    for i in range(3):
        await store.record_task(f"k{i}", f"t{i}")
    await store.record_task("k0", "t0")  # the same task id again: nothing changes
    with pytest.raises(ValueError, match="already has task id"):
        await store.record_task("k0", "t-other")
    with pytest.raises(KeyError):
        await store.record_task("k-none", "t9")
    await store.record_state("t1", JobState.RUNNING, details={"raw_status": "processing"})
    await store.record_state("t2", JobState.SUCCEEDED, details={"urls": ["https://cdn/v.mp4"], "cost_usd": 0.5})
    await store.record_state("t2", JobState.RUNNING, details={"file": "out/v.mp4"})  # late poll: stays finished
    with pytest.raises(KeyError):
        await store.record_state("t-none", JobState.RUNNING)

    record = await store.get("t2")
    assert record is not None
    assert (record.key, record.task_id, record.model, record.cache_key) == ("k2", "t2", "google/veo3", "ck2")
    assert record.state is JobState.SUCCEEDED
    assert record.finished
    assert record.submitted_at == 1002.0
    assert record.request_body == body
    assert record.details == {"urls": ["https://cdn/v.mp4"], "cost_usd": 0.5, "file": "out/v.mp4"}
    assert await store.get("t-none") is None

    assert [r.key for r in await store.list()] == ["k0", "k1", "k2", "k3"]
    assert [r.key for r in await store.list(states={JobState.PENDING})] == ["k0"]
    assert [r.key for r in await store.list(states={None})] == ["k3"]  # intent only: no task id
    assert [r.key for r in await store.list(finished=False)] == ["k0", "k1", "k3"]
    assert [r.key for r in await store.list(finished=True)] == ["k2"]
    assert [r.key for r in await store.list(model="other")] == []
    assert [r.key for r in await store.list(limit=2)] == ["k0", "k1"]


@needs_redis
async def test_watch_leases_check_the_owner_and_list_unclaimed_jobs(client: Redis, namespace: str) -> None:
    """Only the owner renews or releases; unclaimed() lists unfinished, unwatched jobs with a task id."""
    store = RedisJobStore(client, namespace)
    leases = RedisWatchLeases(client, store)
    for i in range(4):
        await store.record_intent(f"k{i}", request_body={}, cache_key=None, model="m", submitted_at=10.0 - i)
    for i in range(3):
        await store.record_task(f"k{i}", f"t{i}")
    await store.record_state("t0", JobState.FAILED)
    assert await leases.unclaimed() == ["t2", "t1"]  # oldest submit first; t0 ended, k3 has no task id
    assert await leases.claim("t1", "a", 0.05)
    assert not await leases.claim("t1", "b", 5)
    assert not await leases.renew("t1", "b", 5)
    assert not await leases.release("t1", "b")
    assert await leases.unclaimed() == ["t2"]
    assert await leases.renew("t1", "a", 0.05)
    assert await leases.release("t1", "a")
    assert await leases.owner("t1") is None
    assert await leases.claim("t1", "b", 0.02)
    with anyio.fail_after(2):
        while await leases.owner("t1") is not None:  # b's lease runs out (20 ms)
            await anyio.sleep(0.005)
    assert await leases.unclaimed(limit=5) == ["t2", "t1"]
    assert not await leases.renew("t1", "b", 5)


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
