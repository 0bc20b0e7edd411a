"""One SQLite file of shared state, open in this process, for ``_sqlite_shared.py``.

:class:`SqliteDatabase` owns the process's one connection to the file and runs each piece of work
as one transaction in a worker thread (never on the event loop), one at a time. A transaction that
reads before it writes starts with ``BEGIN IMMEDIATE``: it takes SQLite's write lock first, so what
it read stays true until it commits, whatever other processes do meanwhile. A process that finds
the lock held waits for it, up to the busy timeout.

The file is created readable and writable by its owner only (0600); SQLite gives its ``-wal`` and
``-shm`` files the same permissions. It is in WAL mode (readers never wait for a writer), which needs
memory shared between the processes: the file must be on a local disk, not on NFS or another
network file system.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

import anyio

from ._shared import positive_duration

__all__ = ["DEFAULT_BUSY_TIMEOUT", "SqliteDatabase"]

T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT: Final = 10.0
# Seconds a transaction waits for another process's write lock before it fails. Each transaction
# here lasts well under a millisecond, so only a stalled disk or a process stopped while holding
# the lock (SIGSTOP, a debugger) makes anyone wait that long.
_SCHEMA_VERSION: Final = 1  # also written by _SCHEMA's last line
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS slots (
    ns TEXT NOT NULL, name TEXT NOT NULL, holder TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (ns, name, holder)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS buckets (
    ns TEXT NOT NULL, name TEXT NOT NULL, tokens REAL NOT NULL, at REAL NOT NULL, PRIMARY KEY (ns, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pauses (ns TEXT PRIMARY KEY, until REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY,
    ns TEXT NOT NULL, key TEXT NOT NULL, model TEXT NOT NULL, cache_key TEXT, submitted_at REAL NOT NULL,
    body TEXT NOT NULL, task_id TEXT, state TEXT, done INTEGER NOT NULL DEFAULT 0,
    details TEXT NOT NULL DEFAULT '{}', updated_at REAL NOT NULL,
    UNIQUE (ns, key)
);
CREATE INDEX IF NOT EXISTS jobs_in_submit_order ON jobs (ns, submitted_at, seq);
CREATE TABLE IF NOT EXISTS tasks (ns TEXT NOT NULL, task_id TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (ns, task_id))
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS watches (
    ns TEXT NOT NULL, task_id TEXT NOT NULL, owner TEXT NOT NULL, expires REAL NOT NULL, PRIMARY KEY (ns, task_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS named_values (
    ns TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (ns, name)
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta VALUES ('schema_version', '1');
"""


class SqliteDatabase:
    """One SQLite file of shared state, open in this process: use :meth:`open` and :meth:`aclose`.

    One connection, used from a worker thread one transaction at a time, so one process makes one
    transaction at a time on the file whatever number of tasks call it. Raises
    :class:`sqlite3.Error` when the file cannot be used (a timeout waiting for another process's
    lock, a full disk), as the Redis classes raise redis-py's errors.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self._path = path
        self._db = connection
        # One worker thread at a time: callers queue in the event loop (not as blocked threads taking
        # the default thread limiter's tokens); the lock also holds when a cancelled caller's thread
        # is still finishing its transaction.
        self._limiter = anyio.CapacityLimiter(1)
        self._lock = threading.Lock()
        self._closed = False
        self._durable = False
        connection.execute("PRAGMA synchronous=NORMAL")

    def __repr__(self) -> str:
        return f"<SqliteDatabase {str(self._path)!r}{' closed' if self._closed else ''}>"

    @property
    def path(self) -> Path:
        return self._path

    @classmethod
    async def open(cls, path: str | os.PathLike[str], *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> SqliteDatabase:
        """Open (or create, with permissions 0600) the file at ``path``.

        ``sqlite3.Error`` or ``OSError`` when it cannot be used (not a database, a directory,
        no permission, written by a newer version).
        """
        timeout = positive_duration("busy_timeout", busy_timeout)
        return await anyio.to_thread.run_sync(cls._open_sync, Path(path), timeout)

    @classmethod
    def _open_sync(cls, path: Path, timeout: float) -> SqliteDatabase:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created here, owner-only, before SQLite opens it (SQLite would create it with 0644).
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        try:
            _enter_wal(db, path, timeout)
            # One transaction under the write lock: processes opening a new file at once create it once.
            db.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}\nCOMMIT;")
            (version,) = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if int(version) > _SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"{path} was written by a newer fastrouter-async (format {version}); upgrade to use it"
                )
        except BaseException:
            db.close()
            raise
        return cls(path, db)

    async def aclose(self) -> None:
        """Close the connection (a transaction under way is finished first)."""
        if not self._closed:
            self._closed = True
            await anyio.to_thread.run_sync(self._close_sync, limiter=self._limiter)

    def _close_sync(self) -> None:
        with self._lock:
            self._db.close()

    async def run(self, work: Callable[[sqlite3.Connection, float], T], *, write: bool, durable: bool = False) -> T:
        """``work(connection, now)`` in one transaction, in a worker thread; ``now`` is ``time.time()``.

        ``write``: the transaction takes the write lock first (``BEGIN IMMEDIATE``), so what it reads
        stays true until it commits. ``durable``: committed with ``synchronous=FULL``. A caller
        cancelled meanwhile waits for the transaction to end: it is never left half done.
        """
        if self._closed:
            raise RuntimeError(f"the shared-state database {str(self._path)!r} is closed")
        return await anyio.to_thread.run_sync(self._transaction, work, write, durable, limiter=self._limiter)

    def _transaction(self, work: Callable[[sqlite3.Connection, float], T], write: bool, durable: bool) -> T:
        with self._lock:
            db = self._db
            if write and durable != self._durable:
                db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self._durable = durable
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = work(db, time.time())  # read once the transaction began: under the write lock
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return result


def _enter_wal(db: sqlite3.Connection, path: Path, timeout: float) -> None:
    """Switch the file to WAL mode. Processes opening a new file at once race for the switch: one that
    cannot take the lock just then sees the old mode answered, and asks again (up to ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        if time.monotonic() >= deadline:
            raise sqlite3.OperationalError(f"{path}: WAL mode is not available on this file system")
        time.sleep(0.02)  # a worker thread: the event loop is not held up
