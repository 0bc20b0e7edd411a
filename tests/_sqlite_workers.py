"""The worker processes of the SQLite store's multi-process tests, and the tally they write to.

``python -m tests._sqlite_workers ROLE STORE NAMESPACE TALLY ARGS...`` is one worker (see
:func:`main`): it uses the shared primitives in the SQLite file STORE and writes what it saw to the
SQLite file TALLY (a file apart, so the store's file holds only what the store wrote), or prints
one line per event on stdout.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from pathlib import Path

import anyio

from fastrouter_async._shared import spend
from fastrouter_async._sqlite_db import SqliteDatabase
from fastrouter_async._sqlite_shared import SqliteJobSlots, SqliteJobStore, SqliteRequestBucket, SqliteWatchLeases

__all__ = ["create_tally", "read_tally", "worker_command"]

_TALLY_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('inflight', 0), ('max', 0);
CREATE TABLE IF NOT EXISTS events (kind TEXT NOT NULL, value TEXT NOT NULL, at REAL NOT NULL);
"""


def worker_command(role: str, store: Path, namespace: str, tally: Path, *args: object) -> list[str]:
    """The command line of one worker process (run it from the repository's root)."""
    return [sys.executable, "-m", "tests._sqlite_workers", role, str(store), namespace, str(tally), *map(str, args)]


def _write(tally: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    """Run ``statements`` in one write transaction of the tally (atomic across the worker processes)."""
    db = sqlite3.connect(tally, timeout=30.0, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=OFF")  # test data: fast, not durable
        db.execute("BEGIN IMMEDIATE")
        for sql, args in statements:
            db.execute(sql, args)
        db.execute("COMMIT")
    finally:
        db.close()


def create_tally(tally: Path) -> None:
    db = sqlite3.connect(tally, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_TALLY_SCHEMA)
    finally:
        db.close()


def read_tally(tally: Path) -> tuple[dict[str, int], list[tuple[str, str, float]]]:
    """The counters and the events (kind, value, time) of the tally, events in the order written."""
    db = sqlite3.connect(tally)
    try:
        counters = {str(name): int(value) for name, value in db.execute("SELECT name, value FROM counters")}
        events = [(str(k), str(v), float(at)) for k, v, at in db.execute("SELECT * FROM events ORDER BY rowid")]
    finally:
        db.close()
    return counters, events


async def _event(tally: Path, kind: str, value: object) -> None:
    sql = "INSERT INTO events VALUES (?, ?, ?)"
    await anyio.to_thread.run_sync(_write, tally, (sql, (kind, str(value), time.time())))


async def _slots_worker(db: SqliteDatabase, namespace: str, tally: Path, tasks: int, capacity: int) -> None:
    """``tasks`` concurrent holders; each counts itself in ``inflight`` while it holds a slot."""
    slots = SqliteJobSlots(db, namespace, capacity=capacity, lease=5.0, poll=0.01)
    enter = (
        ("UPDATE counters SET value = value + 1 WHERE name = 'inflight'", ()),
        ("UPDATE counters SET value = max(value, (SELECT value FROM counters WHERE name = 'inflight')) "
         "WHERE name = 'max'", ()),
    )  # fmt: skip

    async def hold(i: int) -> None:
        holder = f"{os.getpid()}-{i}"
        await slots.acquire(holder)
        await anyio.to_thread.run_sync(_write, tally, *enter)
        await anyio.sleep(0.05)  # hold the slot a while so that holders overlap (the tally's writes take ms)
        leave = ("UPDATE counters SET value = value - 1 WHERE name = 'inflight'", ())
        done = ("INSERT INTO events VALUES ('done', ?, ?)", (holder, time.time()))
        await anyio.to_thread.run_sync(_write, tally, leave, done)
        await slots.release(holder)

    async with anyio.create_task_group() as tg:
        for i in range(tasks):
            tg.start_soon(hold, i)


async def _hold_worker(db: SqliteDatabase, namespace: str, lease: float) -> None:
    """Take the only slot and a watch lease on task ``t-dead``, say so, and renew both until killed."""
    slots = SqliteJobSlots(db, namespace, capacity=1, lease=lease)
    leases = SqliteWatchLeases(SqliteJobStore(db, namespace))
    await slots.acquire("dying")
    assert await leases.claim("t-dead", "dying", lease)
    print("held", flush=True)
    while True:
        await anyio.sleep(lease / 10)  # renew often: a loaded machine may delay a wake-up
        await slots.renew("dying")
        await leases.renew("t-dead", "dying", lease)


async def _bucket_worker(db: SqliteDatabase, namespace: str, tally: Path, rate: float, burst: float, n: int) -> None:
    """Take ``n`` tokens one after the other; log each grant's time."""
    bucket = SqliteRequestBucket(db, namespace, rate=rate, burst=burst)
    for _ in range(n):
        await spend(bucket)
        await _event(tally, "grant", os.getpid())


async def _claim_worker(db: SqliteDatabase, namespace: str, tally: Path, tasks: int) -> None:
    """Try to claim the watch leases of tasks ``t0`` .. ``tN``; log each task won."""
    leases = SqliteWatchLeases(SqliteJobStore(db, namespace))
    for i in range(tasks):
        if await leases.claim(f"t{i}", f"owner-{os.getpid()}", 30.0):
            await _event(tally, "won", f"t{i}")


async def _pause_worker(db: SqliteDatabase, namespace: str, seconds: float) -> None:
    """Pause the account's bucket for ``seconds``, as a process that got a 429 would."""
    await SqliteRequestBucket(db, namespace, rate=10).pause(seconds)


async def _run(role: str, store: str, namespace: str, tally: Path, rest: list[str]) -> None:
    db = await SqliteDatabase.open(store)
    try:
        if role == "slots":
            await _slots_worker(db, namespace, tally, int(rest[0]), int(rest[1]))
        elif role == "hold":
            await _hold_worker(db, namespace, float(rest[0]))
        elif role == "bucket":
            await _bucket_worker(db, namespace, tally, float(rest[0]), float(rest[1]), int(rest[2]))
        elif role == "claim":
            await _claim_worker(db, namespace, tally, int(rest[0]))
        elif role == "pause":
            await _pause_worker(db, namespace, float(rest[0]))
        else:
            raise SystemExit(f"unknown role {role!r}")
    finally:
        await db.aclose()


def main(argv: list[str]) -> None:
    """``ROLE STORE NAMESPACE TALLY ARGS...``: run one worker (roles: slots, hold, bucket, claim, pause)."""
    role, store, namespace, tally, *rest = argv
    asyncio.run(_run(role, store, namespace, Path(tally), rest))


if __name__ == "__main__":
    main(sys.argv[1:])
