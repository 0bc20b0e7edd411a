"""The shared-state interfaces and their in-process implementations.

The ``check_*`` functions are each interface's contract; tests/test_redis_shared.py runs the same
checks against the Redis implementations, and tests/test_sqlite_shared.py against every store that
open_store() opens (in memory, SQLite and Redis).
"""

from __future__ import annotations

import hashlib

import anyio
import anyio.lowlevel
import pytest

from fastrouter_async import InvalidRequestError
from fastrouter_async._models import JobState
from fastrouter_async._shared import (
    InMemoryJobSlots,
    InMemoryJobStore,
    InMemoryRequestBucket,
    InMemoryWatchLeases,
    JobSlots,
    JobStore,
    RequestBucket,
    WatchLeases,
    key_namespace,
    spend,
)

# -- contracts, shared with the Redis and SQLite tests --------------------------------------------------


async def check_slots(slots: JobSlots) -> None:
    """``slots``: capacity 1, a 50 ms lease."""
    assert slots.capacity == 1
    assert await slots.try_acquire("a")
    assert await slots.try_acquire("a")  # the holder again: a renewal, not a second slot
    assert not await slots.try_acquire("b")
    assert await slots.in_use() == 1
    assert await slots.renew("a")
    await slots.release("a")
    await slots.release("a")  # nothing held: nothing happens
    assert not await slots.renew("a")
    assert await slots.try_acquire("b")
    with anyio.fail_after(2):
        await slots.acquire("c")  # waits for b's lease to end (50 ms)
    assert not await slots.renew("b")
    assert await slots.in_use() == 1


async def check_bucket(bucket: RequestBucket) -> None:
    """``bucket``: 100 per second, a burst of 3, no pause in force."""
    assert (bucket.rate, bucket.burst) == (100, 3)
    assert [await bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = await bucket.take()
    assert 0 < wait <= 0.01
    with anyio.fail_after(2):
        await spend(bucket)  # waits about 10 ms for the next token
    for n in (0, -1, 4, True):
        with pytest.raises(InvalidRequestError, match="burst"):
            await bucket.take(n)
    assert await bucket.paused_for() == 0
    assert await bucket.pause(30) == pytest.approx(30, abs=0.1)
    assert await bucket.pause(0.01) > 29  # a shorter pause does not shorten the one in force
    assert 29 < await bucket.paused_for() <= 30
    assert await bucket.take() > 29  # paused: the rest of the pause, whatever the tokens
    with pytest.raises(InvalidRequestError, match="seconds"):
        await bucket.pause(-1)


async def check_job_store(store: JobStore) -> None:
    """Intents, task ids, states and details come back as written; lists filter by state and finish."""
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
    intent = (await store.list(states={None}))[0]
    assert (intent.key, intent.task_id, intent.state, intent.finished) == ("k3", None, None, False)

    assert [r.key for r in await store.list()] == ["k0", "k1", "k2", "k3"]
    assert [r.key for r in await store.list(states={JobState.PENDING})] == ["k0"]
    assert [r.key for r in await store.list(states={JobState.PENDING, JobState.RUNNING})] == ["k0", "k1"]
    assert [r.key for r in await store.list(finished=False)] == ["k0", "k1", "k3"]
    assert [r.key for r in await store.list(finished=True)] == ["k2"]
    assert [r.key for r in await store.list(model="other")] == []
    assert [r.key for r in await store.list(limit=2)] == ["k0", "k1"]


async def check_watch_leases(store: JobStore, leases: WatchLeases) -> None:
    """Only the owner renews or releases; unclaimed() lists unfinished, unwatched jobs with a task id."""
    for i in range(4):
        await store.record_intent(f"k{i}", request_body={}, cache_key=None, model="m", submitted_at=10.0 - i)
    for i in range(3):
        await store.record_task(f"k{i}", f"t{i}")
    await store.record_state("t0", JobState.FAILED)
    assert await leases.unclaimed() == ["t2", "t1"]  # oldest submit first; t0 ended, k3 has no task id
    assert await leases.claim("t1", "a", 5)
    assert not await leases.claim("t1", "b", 5)
    assert not await leases.renew("t1", "b", 5)
    assert not await leases.release("t1", "b")
    assert await leases.owner("t1") == "a"
    assert await leases.unclaimed() == ["t2"]
    assert await leases.renew("t1", "a", 5)
    assert await leases.release("t1", "a")
    assert await leases.owner("t1") is None
    assert await leases.claim("t1", "b", 0.02)
    with anyio.fail_after(2):
        while await leases.owner("t1") is not None:  # b's lease runs out (20 ms)
            await anyio.sleep(0.005)
    assert await leases.unclaimed(limit=5) == ["t2", "t1"]
    assert await leases.unclaimed(limit=1) == ["t2"]
    assert not await leases.renew("t1", "b", 5)
    assert await leases.claim("t1", "c", 5)  # a dead owner's job is taken over after its lease
    with pytest.raises(InvalidRequestError, match="ttl"):
        await leases.claim("t2", "c", 0)


# -- the namespace -------------------------------------------------------------------------------------


def test_key_namespace_is_a_short_salted_fingerprint() -> None:
    """key_namespace() is stable, 16 hex digits, differs per key, and is not a plain sha256 of the key."""
    key = "sk-live-0123456789abcdef"
    namespace = key_namespace(key)
    assert namespace == key_namespace(key)
    assert len(namespace) == 16
    assert all(c in "0123456789abcdef" for c in namespace)
    assert namespace != key_namespace(key + "x")
    assert key not in namespace
    assert namespace not in hashlib.sha256(key.encode()).hexdigest()


def test_key_namespace_refuses_an_empty_key_without_echoing_it() -> None:
    """An empty or non-string key is an InvalidRequestError naming the field and only the value's type."""
    with pytest.raises(InvalidRequestError, match="api_key") as caught:
        key_namespace("")
    assert caught.value.value == "str"
    with pytest.raises(InvalidRequestError, match="api_key"):
        key_namespace(b"sk-bytes")  # type: ignore[arg-type]


# -- job slots -----------------------------------------------------------------------------------------


async def test_inmemory_slots_contract() -> None:
    """In-process slots: leases expire, renew and release as the JobSlots contract says."""
    await check_slots(InMemoryJobSlots(1, lease=0.05))


async def test_inmemory_slots_without_lease_hold_until_released() -> None:
    """Without a lease (today's cap) a slot is held until released, and a release wakes a waiter at once."""
    slots = InMemoryJobSlots(1)
    assert slots.lease is None
    await slots.acquire("a")
    got: list[str] = []

    async def wait_for_slot() -> None:
        await slots.acquire("b")
        got.append("b")

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_for_slot)
        await anyio.wait_all_tasks_blocked()
        assert got == []
        assert await slots.renew("a")
        await slots.release("a")
    assert got == ["b"]
    assert await slots.in_use() == 1


async def test_inmemory_slots_never_exceed_capacity() -> None:
    """50 concurrent holders on 5 slots: at most 5 hold one at a time, and all 5 are used."""
    slots = InMemoryJobSlots(5)
    inside = peak = 0

    async def hold(i: int) -> None:
        nonlocal inside, peak
        await slots.acquire(f"h{i}")
        inside += 1
        peak = max(peak, inside)
        await anyio.lowlevel.checkpoint()
        await anyio.lowlevel.checkpoint()
        inside -= 1
        await slots.release(f"h{i}")

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(hold, i)
    assert peak == 5
    assert await slots.in_use() == 0


def test_inmemory_slots_check_their_settings() -> None:
    """A capacity below 1 or a lease that is not a positive duration is refused, naming the field."""
    for capacity in (0, -1, 1.5, True):
        with pytest.raises(InvalidRequestError, match="capacity"):
            InMemoryJobSlots(capacity)  # type: ignore[arg-type]
    for lease in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(InvalidRequestError, match="lease"):
            InMemoryJobSlots(1, lease=lease)


# -- the request bucket --------------------------------------------------------------------------------


async def test_inmemory_bucket_contract() -> None:
    """In-process bucket: burst, refill, wait times and the pause behave as the RequestBucket contract says."""
    await check_bucket(InMemoryRequestBucket(100, burst=3))


async def test_inmemory_bucket_pause_ends() -> None:
    """A pause ends after its duration and takes are granted again."""
    bucket = InMemoryRequestBucket(1000)
    assert bucket.burst == 1000  # one second's worth by default
    await bucket.pause(0.01)
    assert await bucket.take() > 0
    with anyio.fail_after(2):
        await spend(bucket)
    assert await bucket.paused_for() == 0
    for rate in (0, -1, float("inf")):
        with pytest.raises(InvalidRequestError, match="rate"):
            InMemoryRequestBucket(rate)
    with pytest.raises(InvalidRequestError, match="burst"):
        InMemoryRequestBucket(10, burst=0.5)


# -- the job store and watch leases --------------------------------------------------------------------


async def test_inmemory_job_store_contract() -> None:
    """The in-process job store round-trips records and lists them by state, model and finish."""
    await check_job_store(InMemoryJobStore())


async def test_inmemory_watch_leases_contract() -> None:
    """In-process watch leases: one owner at a time, owner-checked, expiring, and unclaimed jobs listed."""
    store = InMemoryJobStore()
    await check_watch_leases(store, InMemoryWatchLeases(store))
