"""The shared primitives of ``_shared.py`` in one SQLite file, for many processes on one host.

Processes on one host share one clock, so every expiry here is an instant of the host's
``time.time()`` stored in the file: a lease ends for every process at the same moment, and a
process that dies (even by SIGKILL) stops renewing, so its leases end within one lease period.
Every change that reads before it writes is one ``BEGIN IMMEDIATE`` transaction of
:class:`~fastrouter_async._sqlite_db.SqliteDatabase` (the write lock is taken first, so two
processes never both see a free slot and both take it).

The file must be on a local disk of one host (WAL mode needs shared memory; not NFS): for processes
on several hosts, use Redis (``_redis.py``).

Every row carries its account's namespace (:func:`~fastrouter_async._namespace.key_namespace` of
the API key, never the key), so one file can hold several accounts apart. Tables:

- ``slots``     ns, name, holder, expires: the job slots (a lease per holder)
- ``buckets``   ns, name, tokens, at: the request bucket; ``pauses``: ns, until (the account's 429 pause)
- ``jobs``      one row per submit: the job record; ``tasks``: ns, task id -> job key
- ``watches``   ns, task id, owner, expires: the watch lease of one task

Job records are committed with ``synchronous=FULL`` (on the disk before the call returns, like the
batch journal); slots, the bucket, pauses and watch leases with ``synchronous=NORMAL``, which
survives the crash of any process but may lose the last changes if the host loses power.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Collection, Mapping
from typing import Any, Final

import anyio

from ._models import JobState
from ._namespace import check_namespace
from ._shared import (
    BucketSettings,
    JobRecord,
    check_take,
    positive_count,
    positive_duration,
    record_matches,
)
from ._shared_values import check_value
from ._sqlite_db import SqliteDatabase

__all__ = [
    "DEFAULT_SLOT_POLL",
    "SqliteJobSlots",
    "SqliteJobStore",
    "SqliteRequestBucket",
    "SqliteWatchLeases",
]

DEFAULT_SLOT_POLL: Final = 0.05
# A waiting acquire asks again at least this often (seconds): a slot released by another process is
# noticed within 50 ms, at 20 small transactions a second per waiting process.

# -- job slots ------------------------------------------------------------------------------------


class SqliteJobSlots:
    """:class:`~fastrouter_async._shared.JobSlots` as rows of holder and lease expiry.

    As on Redis a lease is required, and a holder must :meth:`renew` more often than every
    ``lease`` seconds. A waiting acquire asks again every ``poll`` seconds at most (sooner when the
    first lease ends sooner); waiters are not served in arrival order.
    """

    def __init__(
        self,
        db: SqliteDatabase,
        namespace: str,
        *,
        capacity: int,
        lease: float,
        name: str = "jobs",
        poll: float = DEFAULT_SLOT_POLL,
    ) -> None:
        self._capacity = positive_count("capacity", capacity)
        self._lease = positive_duration("lease", lease)
        self._poll = positive_duration("poll", poll)
        self._where = (check_namespace(namespace), name)
        self._db = db

    def __repr__(self) -> str:
        return f"<SqliteJobSlots {self._where[1]} capacity={self._capacity} lease={self._lease}>"

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def lease(self) -> float:
        return self._lease

    def _take(self, db: sqlite3.Connection, now: float, holder: str) -> float:
        """0.0 when ``holder`` holds a slot (taken or renewed), else the seconds until the first lease may end."""
        db.execute("DELETE FROM slots WHERE ns = ? AND name = ? AND expires <= ?", (*self._where, now))
        held = db.execute(
            "SELECT 1 FROM slots WHERE ns = ? AND name = ? AND holder = ?", (*self._where, holder)
        ).fetchone()
        (count, first) = db.execute(
            "SELECT count(*), min(expires) FROM slots WHERE ns = ? AND name = ?", self._where
        ).fetchone()
        if held is not None or count < self._capacity:
            db.execute("INSERT OR REPLACE INTO slots VALUES (?, ?, ?, ?)", (*self._where, holder, now + self._lease))
            return 0.0
        return max(0.001, float(first) - now)

    async def acquire(self, holder: str) -> None:
        while True:
            wait = await self._db.run(lambda db, now: self._take(db, now, holder), write=True)
            if wait == 0:
                return
            await anyio.sleep(min(wait, self._poll))

    async def try_acquire(self, holder: str) -> bool:
        return await self._db.run(lambda db, now: self._take(db, now, holder), write=True) == 0.0

    async def renew(self, holder: str) -> bool:
        def renew(db: sqlite3.Connection, now: float) -> bool:
            renewed = db.execute(
                "UPDATE slots SET expires = ? WHERE ns = ? AND name = ? AND holder = ? AND expires > ?",
                (now + self._lease, *self._where, holder, now),
            )
            return renewed.rowcount == 1

        return await self._db.run(renew, write=True)

    async def release(self, holder: str) -> None:
        sql = "DELETE FROM slots WHERE ns = ? AND name = ? AND holder = ?"
        await self._db.run(lambda db, _: db.execute(sql, (*self._where, holder)).rowcount, write=True)

    async def in_use(self) -> int:
        sql = "SELECT count(*) FROM slots WHERE ns = ? AND name = ? AND expires > ?"
        return int(await self._db.run(lambda db, now: db.execute(sql, (*self._where, now)).fetchone()[0], write=False))


# -- the request bucket ---------------------------------------------------------------------------


class SqliteRequestBucket(BucketSettings):
    """:class:`~fastrouter_async._shared.RequestBucket` in a row, refilled on the host's clock.

    Every process must use the same ``rate`` and ``burst`` for one ``name``. The pause is the
    account's (one per namespace), as on Redis.
    """

    def __init__(
        self, db: SqliteDatabase, namespace: str, *, rate: float, burst: float | None = None, name: str = "api"
    ) -> None:
        super().__init__(rate, burst)
        self._ns = check_namespace(namespace)
        self._name = name
        self._db = db

    def __repr__(self) -> str:
        return f"<SqliteRequestBucket {self._name} rate={self._rate:g}/s burst={self._burst:g}>"

    def _paused(self, db: sqlite3.Connection, now: float) -> float:
        row = db.execute("SELECT until FROM pauses WHERE ns = ?", (self._ns,)).fetchone()
        return 0.0 if row is None else max(0.0, float(row[0]) - now)

    def _take(self, db: sqlite3.Connection, now: float, n: float) -> float:
        if (paused := self._paused(db, now)) > 0:
            return paused
        row = db.execute("SELECT tokens, at FROM buckets WHERE ns = ? AND name = ?", (self._ns, self._name)).fetchone()
        tokens, at = (self._burst, now) if row is None else (float(row[0]), float(row[1]))
        tokens = min(self._burst, tokens + max(0.0, now - at) * self._rate)
        wait = 0.0
        if tokens >= n:
            tokens -= n
        else:
            wait = (n - tokens) / self._rate
        db.execute("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?, ?)", (self._ns, self._name, tokens, now))
        return wait

    async def take(self, n: float = 1.0) -> float:
        check_take(self, n)
        return await self._db.run(lambda db, now: self._take(db, now, float(n)), write=True)

    async def pause(self, seconds: float) -> float:
        seconds = positive_duration("seconds", seconds)

        def pause(db: sqlite3.Connection, now: float) -> float:
            left = max(self._paused(db, now), seconds)
            db.execute("INSERT OR REPLACE INTO pauses VALUES (?, ?)", (self._ns, now + left))
            return left

        return await self._db.run(pause, write=True)

    async def paused_for(self) -> float:
        return await self._db.run(self._paused, write=False)


# -- the job store --------------------------------------------------------------------------------

# The columns of a JobRecord, in _record()'s order.
_GET: Final = (
    "SELECT j.key, j.model, j.submitted_at, j.cache_key, j.body, j.task_id, j.state, j.details "
    "FROM tasks AS t JOIN jobs AS j ON j.ns = t.ns AND j.key = t.key WHERE t.ns = ? AND t.task_id = ?"
)
_LIST: Final = (
    "SELECT key, model, submitted_at, cache_key, body, task_id, state, details FROM jobs "
    "WHERE ns = ? AND (? IS NULL OR model = ?) AND (? IS NULL OR done = ?) ORDER BY submitted_at, seq"
)


def _record(row: tuple[Any, ...]) -> JobRecord:
    key, model, submitted_at, cache_key, body, task_id, state, details = row
    return JobRecord(
        key=key,
        model=model,
        submitted_at=float(submitted_at),
        cache_key=cache_key,
        request_body=json.loads(body),
        task_id=task_id,
        state=JobState(state) if state else None,
        details=json.loads(details),
    )


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class SqliteJobStore:
    """:class:`~fastrouter_async._shared.JobStore` as one row per submit, committed to disk before each call returns."""

    def __init__(self, db: SqliteDatabase, namespace: str) -> None:
        self._ns = check_namespace(namespace)
        self._db = db

    def __repr__(self) -> str:
        return f"<SqliteJobStore {str(self._db.path)!r}>"

    @property
    def database(self) -> SqliteDatabase:
        return self._db

    @property
    def namespace(self) -> str:
        return self._ns

    async def record_intent(
        self,
        key: str,
        *,
        request_body: Mapping[str, Any],
        cache_key: str | None,
        model: str,
        submitted_at: float,
    ) -> bool:
        sql = (
            "INSERT OR IGNORE INTO jobs (ns, key, model, cache_key, submitted_at, body, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        row = (self._ns, key, model, cache_key, float(submitted_at), _json(dict(request_body)))
        added = await self._db.run(lambda db, now: db.execute(sql, (*row, now)).rowcount, write=True, durable=True)
        return added == 1

    async def record_task(self, key: str, task_id: str) -> None:
        def record(db: sqlite3.Connection, now: float) -> None:
            row = db.execute("SELECT task_id FROM jobs WHERE ns = ? AND key = ?", (self._ns, key)).fetchone()
            if row is None:
                raise KeyError(key)
            if row[0] is not None and row[0] != task_id:
                raise ValueError(f"job {key!r} already has task id {row[0]!r}, not {task_id!r}")
            if row[0] is None:
                db.execute(
                    "UPDATE jobs SET task_id = ?, state = ?, updated_at = ? WHERE ns = ? AND key = ?",
                    (task_id, JobState.PENDING.value, now, self._ns, key),
                )
            db.execute("INSERT OR REPLACE INTO tasks VALUES (?, ?, ?)", (self._ns, task_id, key))

        await self._db.run(record, write=True, durable=True)

    async def record_state(self, task_id: str, state: JobState, *, details: Mapping[str, Any] | None = None) -> None:
        added = {name: json.loads(_json(value)) for name, value in (details or {}).items()}

        def record(db: sqlite3.Connection, now: float) -> None:
            row = db.execute(
                "SELECT j.seq, j.done, j.state, j.details FROM tasks AS t "
                "JOIN jobs AS j ON j.ns = t.ns AND j.key = t.key AND j.task_id = t.task_id "
                "WHERE t.ns = ? AND t.task_id = ?",
                (self._ns, task_id),
            ).fetchone()
            if row is None:
                raise KeyError(task_id)
            seq, done, kept = row[0], bool(row[1]), row[2]
            new_state, new_done = (kept, True) if done else (state.value, state.done)
            db.execute(
                "UPDATE jobs SET state = ?, done = ?, details = ?, updated_at = ? WHERE seq = ?",
                (new_state, int(new_done), _json({**json.loads(row[3]), **added}), now, seq),
            )

        await self._db.run(record, write=True, durable=True)

    async def get(self, task_id: str) -> JobRecord | None:
        row = await self._db.run(lambda db, _: db.execute(_GET, (self._ns, task_id)).fetchone(), write=False)
        return None if row is None else _record(row)

    async def list(
        self,
        *,
        states: Collection[JobState | None] | None = None,
        model: str | None = None,
        finished: bool | None = None,
        limit: int | None = None,
    ) -> list[JobRecord]:
        done = None if finished is None else int(finished)
        args = (self._ns, model, model, done, done)
        rows = await self._db.run(lambda db, _: db.execute(_LIST, args).fetchall(), write=False)
        found = (record for record in map(_record, rows) if record_matches(record, states, model, finished))
        return list(found if limit is None else itertools.islice(found, limit))


# -- watch leases ---------------------------------------------------------------------------------


class SqliteWatchLeases:
    """:class:`~fastrouter_async._shared.WatchLeases` as rows of owner and expiry, beside ``store``'s jobs."""

    def __init__(self, store: SqliteJobStore) -> None:
        self._db = store.database
        self._ns = store.namespace

    def __repr__(self) -> str:
        return f"<SqliteWatchLeases {str(self._db.path)!r}>"

    async def claim(self, task_id: str, owner: str, ttl: float) -> bool:
        ttl = positive_duration("ttl", ttl)

        def claim(db: sqlite3.Connection, now: float) -> bool:
            db.execute("DELETE FROM watches WHERE ns = ? AND expires <= ?", (self._ns, now))
            row = (self._ns, task_id, owner, now + ttl)
            added = db.execute("INSERT OR IGNORE INTO watches VALUES (?, ?, ?, ?)", row)
            return added.rowcount == 1

        return await self._db.run(claim, write=True)

    async def renew(self, task_id: str, owner: str, ttl: float) -> bool:
        ttl = positive_duration("ttl", ttl)
        sql = "UPDATE watches SET expires = ? WHERE ns = ? AND task_id = ? AND owner = ? AND expires > ?"
        renewed = await self._db.run(
            lambda db, now: db.execute(sql, (now + ttl, self._ns, task_id, owner, now)).rowcount, write=True
        )
        return renewed == 1

    async def release(self, task_id: str, owner: str) -> bool:
        sql = "DELETE FROM watches WHERE ns = ? AND task_id = ? AND owner = ? AND expires > ?"
        released = await self._db.run(
            lambda db, now: db.execute(sql, (self._ns, task_id, owner, now)).rowcount, write=True
        )
        return released == 1

    async def owner(self, task_id: str) -> str | None:
        sql = "SELECT owner FROM watches WHERE ns = ? AND task_id = ? AND expires > ?"
        row = await self._db.run(lambda db, now: db.execute(sql, (self._ns, task_id, now)).fetchone(), write=False)
        return None if row is None else str(row[0])

    async def unclaimed(self, limit: int | None = None) -> list[str]:
        sql = (
            "SELECT j.task_id FROM jobs AS j LEFT JOIN watches AS w "
            "ON w.ns = j.ns AND w.task_id = j.task_id AND w.expires > ? "
            "WHERE j.ns = ? AND j.done = 0 AND j.task_id IS NOT NULL AND w.task_id IS NULL "
            "ORDER BY j.submitted_at, j.seq LIMIT ?"
        )
        count = -1 if limit is None else limit
        rows = await self._db.run(lambda db, now: db.execute(sql, (now, self._ns, count)).fetchall(), write=False)
        return [str(task_id) for (task_id,) in rows]


class SqliteSharedValues:
    """:class:`~fastrouter_async._shared_values.SharedValues` as rows of the account's namespace."""

    def __init__(self, db: SqliteDatabase, namespace: str) -> None:
        self._db = db
        self._ns = namespace

    def __repr__(self) -> str:
        return f"<SqliteSharedValues {str(self._db.path)!r}>"

    async def get(self, name: str) -> str | None:
        sql = "SELECT value FROM named_values WHERE ns = ? AND name = ?"
        row = await self._db.run(lambda db, _now: db.execute(sql, (self._ns, name)).fetchone(), write=False)
        return None if row is None else str(row[0])

    async def put(self, name: str, value: str) -> None:
        check_value(name, value)
        sql = "INSERT OR REPLACE INTO named_values VALUES (?, ?, ?)"
        await self._db.run(lambda db, _now: db.execute(sql, (self._ns, name, value)), write=True)
