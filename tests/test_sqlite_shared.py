"""The shared primitives in one SQLite file, used by several real processes at once, and open_store().

The behavioural contract (the ``check_*`` functions of tests/test_shared_inmemory.py) runs here
against all three stores through :func:`open_store`: in memory, SQLite and Redis (where a
redis-server can be started).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from fastrouter_async import InvalidRequestError
from fastrouter_async._models import JobState
from fastrouter_async._namespace import key_namespace
from fastrouter_async._sqlite_db import SqliteDatabase
from fastrouter_async._sqlite_shared import SqliteJobSlots, SqliteJobStore, SqliteRequestBucket, SqliteWatchLeases
from fastrouter_async._stores import SharedState, open_store

from ._redis import RedisServer, find_redis_server, skip_reason
from ._sqlite_workers import create_tally, read_tally, worker_command
from .test_shared_inmemory import check_bucket, check_job_store, check_slots, check_watch_leases

ROOT = Path(__file__).resolve().parent.parent
REDIS_SKIP = skip_reason()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = find_redis_server()
    assert binary is not None
    with RedisServer(binary, tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh store of each kind."""
    if request.param == "memory":
        return "memory:"
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'shared.sqlite'}"
    if REDIS_SKIP is not None:
        pytest.skip(REDIS_SKIP)
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
async def shared(store_url: str) -> AsyncIterator[SharedState]:
    """The store at ``store_url`` for a fresh account: 1 slot with a 50 ms lease, 100 requests/s in bursts of 3."""
    state = await open_store(
        store_url, api_key=f"sk-test-{uuid.uuid4().hex}", capacity=1, lease=0.05, rate=100, burst=3
    )
    async with state:
        yield state


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    database = await SqliteDatabase.open(tmp_path / "shared.sqlite")
    try:
        yield database
    finally:
        await database.aclose()


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


# -- the contract, on every store --------------------------------------------------------------------


async def test_slots_contract(shared: SharedState) -> None:
    """Each store's slots: leases expire, renew and release as the JobSlots contract says."""
    await check_slots(shared.slots)


async def test_bucket_contract(shared: SharedState) -> None:
    """Each store's bucket: burst, refill, wait times and the pause as the RequestBucket contract says."""
    await check_bucket(shared.bucket)


async def test_job_store_contract(shared: SharedState) -> None:
    """Each store round-trips job records and lists them by state, model and finish."""
    await check_job_store(shared.store)


async def test_watch_leases_contract(shared: SharedState) -> None:
    """Each store's watch leases: one owner at a time, owner-checked, expiring, and unclaimed jobs listed."""
    await check_watch_leases(shared.store, shared.watches)


async def test_shared_values_contract(shared: SharedState) -> None:
    """Each store keeps named values per account: read back whole, replaced by the last write, bounded."""
    assert await shared.values.get("durations") is None
    await shared.values.put("durations", '{"a": 1}')
    await shared.values.put("durations", '{"a": 2}')
    await shared.values.put("other", "x" * 1000)
    assert await shared.values.get("durations") == '{"a": 2}'
    assert await shared.values.get("other") == "x" * 1000
    with pytest.raises(InvalidRequestError):
        await shared.values.put("", "x")
    with pytest.raises(InvalidRequestError):
        await shared.values.put("big", "x" * 1_000_001)


# -- the SQLite file ---------------------------------------------------------------------------------


async def test_file_and_its_wal_are_owner_only(tmp_path: Path, namespace: str) -> None:
    """The database file is created 0600, its -wal and -shm files too, and the file is in WAL mode."""
    path = tmp_path / "deep" / "shared.sqlite"
    database = await SqliteDatabase.open(path)
    try:
        await SqliteRequestBucket(database, namespace, rate=5).take()
        for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
        with sqlite3.connect(path) as reader:
            assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        await database.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await SqliteRequestBucket(database, namespace, rate=5).take()


async def test_accounts_in_one_file_stay_apart(db: SqliteDatabase) -> None:
    """Two namespaces in one file share no slot, no bucket, no pause and no job."""
    one, two = key_namespace("sk-one"), key_namespace("sk-two")
    assert await SqliteJobSlots(db, one, capacity=1, lease=5).try_acquire("a")
    assert await SqliteJobSlots(db, two, capacity=1, lease=5).try_acquire("b")
    await SqliteRequestBucket(db, one, rate=1, burst=1).pause(30)
    assert await SqliteRequestBucket(db, two, rate=1, burst=1).take() == 0
    assert await SqliteRequestBucket(db, two, rate=1, burst=1).take() > 0
    await SqliteJobStore(db, one).record_intent("k", request_body={}, cache_key=None, model="m", submitted_at=1.0)
    assert await SqliteJobStore(db, two).list() == []
    with pytest.raises(InvalidRequestError, match="namespace"):
        SqliteJobStore(db, "sk-live-0123456789abcdef")


async def test_a_finished_job_keeps_its_first_end(db: SqliteDatabase, namespace: str) -> None:
    """A late poll after the job ended changes its details, never its state; a reopened file still has it."""
    store = SqliteJobStore(db, namespace)
    await store.record_intent("k", request_body={"prompt": "p"}, cache_key="ck", model="m", submitted_at=5.0)
    await store.record_task("k", "t")
    await store.record_state("t", JobState.SUCCEEDED, details={"urls": ["u"]})
    await store.record_state("t", JobState.FAILED, details={"error": "late"})
    reopened = await SqliteDatabase.open(db.path)
    try:
        record = await SqliteJobStore(reopened, namespace).get("t")
    finally:
        await reopened.aclose()
    assert record is not None
    assert record.state is JobState.SUCCEEDED
    assert record.details == {"urls": ["u"], "error": "late"}
    assert await store.list(limit=0) == []


async def test_cancelled_callers_leave_the_file_consistent(db: SqliteDatabase, namespace: str) -> None:
    """Acquires cancelled while their transactions run hold no extra slot and leave no lock on the file."""
    slots = SqliteJobSlots(db, namespace, capacity=3, lease=5, poll=0.001)
    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(slots.acquire, f"h{i}")
        with anyio.fail_after(5):
            while await slots.in_use() < 3:
                await anyio.sleep(0.001)
        tg.cancel_scope.cancel()  # 17 acquires are waiting, some of them inside a transaction
    assert await slots.in_use() == 3
    assert not await slots.try_acquire("late")
    with sqlite3.connect(db.path, timeout=1.0, isolation_level=None) as other:
        other.execute("BEGIN IMMEDIATE")  # no transaction of ours is left holding the write lock
        other.execute("ROLLBACK")
    other.close()
    for i in range(20):
        await slots.release(f"h{i}")
    assert await slots.try_acquire("late")


async def test_a_file_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    """A file written by a newer version (a higher schema_version) is refused, not used."""
    path = tmp_path / "shared.sqlite"
    await (await SqliteDatabase.open(path)).aclose()
    with sqlite3.connect(path) as writer:
        writer.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    writer.close()
    with pytest.raises(sqlite3.DatabaseError, match="newer"):
        await SqliteDatabase.open(path)


# -- many processes on one file ----------------------------------------------------------------------


async def test_slots_hold_capacity_across_processes(tmp_path: Path, namespace: str, db: SqliteDatabase) -> None:
    """4 processes x 20 holders on 10 slots: never more than 10 hold one at once, and all 10 get used."""
    tally = tmp_path / "tally.sqlite"
    create_tally(tally)
    await run_workers([worker_command("slots", db.path, namespace, tally, 20, 10) for _ in range(4)])
    counters, events = read_tally(tally)
    assert len([e for e in events if e[0] == "done"]) == 80
    assert counters == {"inflight": 0, "max": 10}
    assert await SqliteJobSlots(db, namespace, capacity=10, lease=1).in_use() == 0


async def test_killed_process_gives_back_its_slot_and_watch_lease(
    tmp_path: Path, namespace: str, db: SqliteDatabase
) -> None:
    """A SIGKILLed holder's slot comes back within one lease period, and its watch lease is taken over."""
    lease = 0.2
    slots = SqliteJobSlots(db, namespace, capacity=1, lease=lease, poll=0.005)
    leases = SqliteWatchLeases(SqliteJobStore(db, namespace))
    command = worker_command("hold", db.path, namespace, tmp_path / "unused", lease)
    async with await anyio.open_process(command, cwd=ROOT) as proc:
        assert proc.stdout is not None
        with anyio.fail_after(30):
            assert (await proc.stdout.receive()).startswith(b"held")
        with anyio.fail_after(30):
            started = time.time()
            while time.time() < started + 2 * lease:  # the holder renews: its lease lives on
                assert not await slots.try_acquire("survivor")
                await anyio.sleep(0.01)
        assert not await leases.claim("t-dead", "survivor", 1.0)
        proc.send_signal(signal.SIGKILL)
        killed_at = time.time()
        with anyio.fail_after(5):
            await slots.acquire("survivor")
            slot_back = time.time() - killed_at
            while not await leases.claim("t-dead", "survivor", 1.0):
                await anyio.sleep(0.005)
            lease_back = time.time() - killed_at
        assert await leases.owner("t-dead") == "survivor"
        assert await proc.wait() == -signal.SIGKILL
    # One lease period after the last renewal (before the kill), plus polls and scheduling.
    assert slot_back <= lease + 0.1, slot_back
    assert lease_back <= lease + 0.1, lease_back


async def test_bucket_holds_the_global_rate_across_processes(
    tmp_path: Path, namespace: str, db: SqliteDatabase
) -> None:
    """3 processes taking from one 20/s bucket: grants stay within 10% of 20/s, and all 3 get some."""
    rate, burst, per_process = 20.0, 2.0, 12
    tally = tmp_path / "tally.sqlite"
    create_tally(tally)
    await run_workers([worker_command("bucket", db.path, namespace, tally, rate, burst, per_process) for _ in range(3)])
    _, events = read_tally(tally)
    grants = sorted(at for kind, _, at in events if kind == "grant")
    assert len(grants) == 3 * per_process
    assert len({pid for kind, pid, _ in events if kind == "grant"}) == 3
    measured = (len(grants) - burst) / (grants[-1] - grants[0])
    assert abs(measured - rate) <= 0.1 * rate, measured
    # In no stretch of time more than burst + rate * length grants (+1: each time is read just after its grant).
    for i, start in enumerate(grants):
        for j in range(i + 1, len(grants)):
            assert j - i + 1 <= burst + rate * (grants[j] - start) + 1, (i, j)


async def test_pause_set_by_one_process_is_seen_by_all(tmp_path: Path, namespace: str, db: SqliteDatabase) -> None:
    """A pause set by another process makes every take() here wait; a shorter pause does not shorten it."""
    await run_workers([worker_command("pause", db.path, namespace, tmp_path / "unused", 30.0)])
    bucket = SqliteRequestBucket(db, namespace, rate=10)
    left = await bucket.paused_for()
    assert 20 < left <= 30
    assert await bucket.take() >= left - 0.5
    assert await bucket.pause(0.01) > 20
    assert await SqliteRequestBucket(db, key_namespace("sk-other-account"), rate=10).paused_for() == 0


async def test_exactly_one_process_claims_each_task(tmp_path: Path, namespace: str) -> None:
    """4 processes creating one new file together and racing to claim the same 50 tasks: one winner per task."""
    tally = tmp_path / "tally.sqlite"
    create_tally(tally)
    fresh = tmp_path / "fresh.sqlite"
    await run_workers([worker_command("claim", fresh, namespace, tally, 50) for _ in range(4)])
    _, events = read_tally(tally)
    assert Counter(value for kind, value, _ in events if kind == "won") == Counter({f"t{i}": 1 for i in range(50)})
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


# -- the key -----------------------------------------------------------------------------------------


async def test_no_byte_of_the_file_contains_the_api_key(tmp_path: Path) -> None:
    """After every primitive was used, neither the file nor its WAL, nor any repr, contains the API key."""
    secret = "sk-live-" + uuid.uuid4().hex
    path = tmp_path / "shared.sqlite"
    async with await open_store(f"sqlite://{path}", api_key=secret, capacity=2, rate=5) as state:
        await state.slots.acquire("h1")
        await state.bucket.take()
        await state.bucket.pause(5)
        await state.store.record_intent("k", request_body={"prompt": "p"}, cache_key="ck", model="m", submitted_at=1.0)
        await state.store.record_task("k", "t")
        await state.store.record_state("t", JobState.RUNNING, details={"raw_status": "processing"})
        assert await state.watches.claim("t", os.urandom(4).hex(), 5)
        files = [file.read_bytes() for file in tmp_path.iterdir()]
        shown = [repr(state), repr(state.slots), repr(state.bucket), repr(state.store), repr(state.watches)]
    assert len(files) == 3
    assert sum(len(content) for content in files) > 10_000
    assert any(state.namespace.encode() in content for content in files)
    for content in files:
        for needle in (secret, secret[8:], secret[8:24]):
            assert needle.encode() not in content
            assert needle.encode("utf-16-le") not in content
    for text in shown:
        assert secret not in text
        assert secret[8:] not in text


def test_missing_redis_package_names_the_extra(tmp_path: Path) -> None:
    """Without redis-py, open_store() of a Redis URL raises ImportError naming fastrouter-async[redis]."""
    code = (
        "import sys, asyncio; sys.modules['redis'] = None\n"
        "from fastrouter_async._stores import open_store\n"
        "try:\n    asyncio.run(open_store('redis://u:pw@127.0.0.1:1/0', api_key='k', capacity=1, rate=1))\n"
        "except ImportError as e:\n    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert "fastrouter-async[redis]" in done.stdout
    assert "pw" not in done.stdout + done.stderr
