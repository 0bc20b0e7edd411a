"""The batch journal: a SQLite file (WAL mode) recording each job's life.

One row per job, keyed by the request's fingerprint and its occurrence (the
first, second, ... time the same request appears in the batch), so identical
prompts at different positions are different jobs, and inserting a line into
a batch file does not make the jobs after it look new. Every change is also
appended to an ``events`` table: the job's history, for audits.

Each row also keeps the job's FastRouter ``cache_key`` (see :mod:`._batch_keys`), its
``generation`` (one more each time a failed job is submitted again), the times of its first and
latest submit attempts, whether the accepted answer was a job created by that attempt or one
found again by a replay (``found_again``), and the submit answer's estimate. Journals written
before these columns existed are upgraded in place when opened (the columns are added, empty).

States of a row::

    submitting  the intent is recorded; the POST may be on its way
    submitted   FastRouter answered with a task id
    uncertain   the POST was sent but its answer was lost (or the run died in between)
    not_sent    a submit attempt definitely created nothing (refused, 429, never sent)
    succeeded   the job finished; file_* are set once the video is on disk
    failed      the job finished and failed

Every write is its own transaction, committed with ``synchronous=FULL`` before
the caller goes on: a task id is on disk before anything else happens to the
job. The work runs in a worker thread (no disk I/O on the event loop), one
statement at a time. A lock file keeps two runs from sharing a journal. The
API key is never written: rows hold the request body as sent, which does not
contain it.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import anyio
import attrs

from ._batch_keys import request_fingerprint
from ._journal_lock import JournalError, refuse_hard_links, release_lock, take_lock

__all__ = ["JobKey", "Journal", "JournalEntry", "JournalError", "JournalState", "fingerprint", "keys_for"]

_SCHEMA_VERSION = 2
# 1: the first format. 2: adds the columns of exactly-once submits (_ADDED_COLUMNS), added to a
# format-1 journal when it is opened.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    fingerprint TEXT NOT NULL,
    occurrence INTEGER NOT NULL,
    position INTEGER NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    task_id TEXT,
    status TEXT,
    error TEXT,
    cost_usd REAL,
    file_path TEXT,
    file_size INTEGER,
    file_sha256 TEXT,
    submit_attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    cache_key TEXT,
    generation INTEGER NOT NULL DEFAULT 0,
    first_attempt_at REAL,
    last_attempt_at REAL,
    found_again INTEGER,
    estimate_credits REAL,
    estimate_usd REAL,
    reserved_usd REAL,
    PRIMARY KEY (fingerprint, occurrence)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    occurrence INTEGER NOT NULL,
    at REAL NOT NULL,
    event TEXT NOT NULL,
    detail TEXT
);
"""
_ADDED_COLUMNS = (
    # (name, declaration) of the columns format 2 added to ``jobs``, for upgrading a format-1 journal.
    ("cache_key", "TEXT"),
    ("generation", "INTEGER NOT NULL DEFAULT 0"),
    ("first_attempt_at", "REAL"),
    ("last_attempt_at", "REAL"),
    ("found_again", "INTEGER"),
    ("estimate_credits", "REAL"),
    ("estimate_usd", "REAL"),
    ("reserved_usd", "REAL"),  # spend caps: what was reserved for the job before its submit was sent
)


class JournalState(enum.Enum):
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    UNCERTAIN = "uncertain"
    NOT_SENT = "not_sent"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@attrs.frozen
class JobKey:
    """Which job of a batch: the request's fingerprint and its occurrence among identical requests."""

    fingerprint: str
    occurrence: int


@attrs.frozen(kw_only=True)
class JournalEntry:
    """One row of the journal as read back."""

    key: JobKey
    position: int
    model: str
    state: JournalState
    task_id: str | None
    status: str | None
    error: str | None
    cost_usd: float | None
    file_path: str | None
    file_size: int | None
    file_sha256: str | None
    submit_attempts: int
    submitted_at: float | None = None
    """Wall-clock time (``time.time()``) the task id was recorded."""
    cache_key: str | None = None
    """The ``cache_key`` its submits carried (``None``: none, e.g. a journal of an older version)."""
    generation: int = 0
    """0, then one more each time the failed job was submitted again (each generation has its own key)."""
    first_attempt_at: float | None = None
    """Wall-clock time of the first submit attempt of this generation (the replay window counts from it)."""
    last_attempt_at: float | None = None
    found_again: bool | None = None
    """True: the task was found again by a replay (not billed twice); False: created by its attempt."""
    estimate_credits: float | None = None
    estimate_usd: float | None = None
    reserved_usd: float | None = None
    """What a spend cap reserved for the job, recorded before its submit was sent."""


@attrs.frozen(kw_only=True)
class _Attempt:
    cache_key: str | None
    generation: int
    first_attempt_at: float | None
    reserved_usd: float | None = None


fingerprint = request_fingerprint
"""The sha256 of the request's generation body (canonical JSON, without ``cache``): same request, same fingerprint."""


class Journal:
    """An open journal; use :meth:`open` and :meth:`aclose`."""

    def __init__(self, path: Path, connection: sqlite3.Connection, lock_file: IO[bytes] | None) -> None:
        self.path = path
        self._db = connection
        self._lock_file = lock_file
        self._guard = anyio.Lock()
        # The connection is used from worker threads, one statement batch at a time: this lock
        # holds even if an awaiting caller was cancelled while its thread was still working.
        self._thread_lock = threading.Lock()
        self._closed = False

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> Journal:
        """Open (or create) the journal at ``path`` and take its lock; raise :class:`JournalError` if in use."""
        resolved = Path(path)
        return await anyio.to_thread.run_sync(cls._open_sync, resolved)

    @classmethod
    def _open_sync(cls, given: Path) -> Journal:
        if given.exists() and given.is_dir():
            raise JournalError(
                f"the journal path {given} is a directory; pass a file path such as {given / 'journal.sqlite'}"
            )
        given.parent.mkdir(parents=True, exist_ok=True)
        # The journal's real identity, not the name it was given: through a symlink (of the file or of
        # a folder above it) two runs would otherwise take two different locks on one journal.
        path = given.resolve()
        refuse_hard_links(path, given)
        lock_file = take_lock(path)
        try:
            refuse_hard_links(path, given)  # a link made while the lock was being taken
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.executescript(_SCHEMA)
                row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is not None and int(row[0]) > _SCHEMA_VERSION:
                    raise JournalError(
                        f"the journal {path} was written by a newer fastrouter-async (format {row[0]}); "
                        "upgrade to use it"
                    )
                _upgrade(db)
            except BaseException:
                db.close()
                raise
        except sqlite3.DatabaseError as exc:
            release_lock(lock_file)
            raise JournalError(f"cannot use {path} as a journal: {exc}") from exc
        except BaseException:
            release_lock(lock_file)
            raise
        return cls(path, db, lock_file)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            async with self._guard:
                await anyio.to_thread.run_sync(self._close_sync)

    def _close_sync(self) -> None:
        try:
            with self._thread_lock:
                self._db.close()
        finally:
            release_lock(self._lock_file)

    async def _run(self, work: Any, *args: Any) -> Any:
        if self._closed:
            raise RuntimeError("the journal is closed")
        # Shielded: a write that has begun is finished and committed even if the caller is
        # cancelled meanwhile, so a recorded fact is never half-recorded.
        with anyio.CancelScope(shield=True):
            async with self._guard:
                try:
                    return await anyio.to_thread.run_sync(self._locked, work, *args)
                except sqlite3.Error as exc:
                    raise JournalError(f"could not write the journal {self.path}: {exc}") from exc

    def _locked(self, work: Any, *args: Any) -> Any:
        with self._thread_lock:
            return work(*args)

    # --- reading ------------------------------------------------------------------------------

    async def entries(self) -> dict[JobKey, JournalEntry]:
        """Every job the journal knows."""
        result: dict[JobKey, JournalEntry] = await self._run(self._entries_sync)
        return result

    def _entries_sync(self) -> dict[JobKey, JournalEntry]:
        rows = self._db.execute(
            "SELECT fingerprint, occurrence, position, model, state, task_id, status, error, cost_usd, "
            "file_path, file_size, file_sha256, submit_attempts, "
            "(SELECT max(at) FROM events AS e WHERE e.fingerprint = jobs.fingerprint "
            "AND e.occurrence = jobs.occurrence AND e.event = 'submitted'), "
            "cache_key, generation, first_attempt_at, last_attempt_at, found_again, estimate_credits, estimate_usd, "
            "reserved_usd FROM jobs"
        ).fetchall()
        found: dict[JobKey, JournalEntry] = {}
        for row in rows:
            key = JobKey(row[0], row[1])
            try:
                state = JournalState(row[4])
            except ValueError:
                state = JournalState.UNCERTAIN  # a word this version does not know: never resubmit blindly
            found[key] = JournalEntry(
                key=key,
                position=row[2],
                model=row[3],
                state=state,
                task_id=row[5],
                status=row[6],
                error=row[7],
                cost_usd=row[8],
                file_path=row[9],
                file_size=row[10],
                file_sha256=row[11],
                submit_attempts=row[12],
                submitted_at=row[13],
                cache_key=row[14],
                generation=row[15],
                first_attempt_at=row[16],
                last_attempt_at=row[17],
                found_again=None if row[18] is None else bool(row[18]),
                estimate_credits=row[19],
                estimate_usd=row[20],
                reserved_usd=row[21],
            )
        return found

    # --- writing ------------------------------------------------------------------------------

    async def submitting(
        self,
        key: JobKey,
        *,
        position: int,
        model: str,
        body: Mapping[str, Any],
        cache_key: str | None = None,
        generation: int = 0,
        first_attempt_at: float | None = None,
        reserved_usd: float | None = None,
    ) -> None:
        """The intent of one submit attempt: recorded, and on disk, before the attempt is sent.

        ``cache_key`` is the key the attempt carries, ``generation`` the job's generation and
        ``first_attempt_at`` the time of the generation's first attempt (this one's, if ``None``).
        """
        request = json.dumps(dict(body), default=str)
        attempt = _Attempt(
            cache_key=cache_key, generation=generation, first_attempt_at=first_attempt_at, reserved_usd=reserved_usd
        )
        await self._run(self._submitting_sync, key, position, model, request, attempt)

    def _submitting_sync(self, key: JobKey, position: int, model: str, body: str, attempt: _Attempt) -> None:
        cache_key, generation, first_attempt_at = attempt.cache_key, attempt.generation, attempt.first_attempt_at
        now = time.time()
        first = now if first_attempt_at is None else first_attempt_at
        with _transaction(self._db):
            self._db.execute(
                "INSERT INTO jobs (fingerprint, occurrence, position, model, request, state, submit_attempts, "
                "created_at, updated_at, cache_key, generation, first_attempt_at, last_attempt_at, reserved_usd) "
                "VALUES (?, ?, ?, ?, ?, 'submitting', 1, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (fingerprint, occurrence) DO UPDATE SET state = 'submitting', "
                "position = excluded.position, "
                "task_id = NULL, status = NULL, error = NULL, cost_usd = NULL, file_path = NULL, file_size = NULL, "
                "file_sha256 = NULL, submit_attempts = submit_attempts + 1, updated_at = excluded.updated_at, "
                "cache_key = excluded.cache_key, generation = excluded.generation, "
                "first_attempt_at = excluded.first_attempt_at, last_attempt_at = excluded.last_attempt_at, "
                "found_again = NULL, estimate_credits = NULL, estimate_usd = NULL, "
                "reserved_usd = coalesce(excluded.reserved_usd, reserved_usd)",
                (
                    key.fingerprint,
                    key.occurrence,
                    position,
                    model,
                    body,
                    now,
                    now,
                    cache_key,
                    generation,
                    first,
                    now,
                    attempt.reserved_usd,
                ),
            )
            attempts = self._db.execute(
                "SELECT submit_attempts FROM jobs WHERE fingerprint = ? AND occurrence = ?",
                (key.fingerprint, key.occurrence),
            ).fetchone()[0]
            detail = f"attempt {attempts}" + ("" if cache_key is None else f", cache key {cache_key}")
            self._event(key, now, "submitting", detail)

    async def submitted(self, key: JobKey, task_id: str, *, found_again: bool | None = None) -> None:
        """FastRouter answered with ``task_id``: created by this attempt (``found_again=False``) or found again."""
        detail = (
            task_id + {None: "", False: " (created)", True: " (found again by a replay: not billed twice)"}[found_again]
        )
        await self._update(
            key,
            "submitted",
            detail,
            state=JournalState.SUBMITTED,
            task_id=task_id,
            found_again=None if found_again is None else int(found_again),
        )

    async def estimate(self, key: JobKey, *, credits: float | None, usd: float | None) -> None:
        """The submit answer's estimate of the job's cost (a job found again by a replay shows no charge)."""
        detail = f"credits {credits}, usd {usd}"
        await self._update(key, "estimate", detail, estimate_credits=credits, estimate_usd=usd)

    async def not_sent(self, key: JobKey, reason: str) -> None:
        """The submit attempt created no job (refused, rate limited, or never sent)."""
        await self._update(key, "not_sent", reason, state=JournalState.NOT_SENT, error=reason)

    async def uncertain(self, key: JobKey, reason: str) -> None:
        await self._update(key, "uncertain", reason, state=JournalState.UNCERTAIN, error=reason)

    async def status(self, key: JobKey, word: str) -> None:
        """A status word seen while the job runs (ignored once the job is recorded as ended)."""
        await self._run(self._status_sync, key, word)

    def _status_sync(self, key: JobKey, word: str) -> None:
        now = time.time()
        with _transaction(self._db):
            changed = self._db.execute(
                "UPDATE jobs SET status = ?, updated_at = ? WHERE fingerprint = ? AND occurrence = ? "
                "AND state = 'submitted' AND (status IS NULL OR status != ?)",
                (word, now, key.fingerprint, key.occurrence, word),
            ).rowcount
            if changed:
                self._event(key, now, "status", word)

    async def succeeded(self, key: JobKey, *, cost_usd: float | None) -> None:
        await self._update(
            key, "succeeded", None, state=JournalState.SUCCEEDED, status="succeeded", cost_usd=cost_usd, error=None
        )

    async def failed(self, key: JobKey, error: str) -> None:
        await self._update(key, "failed", error, state=JournalState.FAILED, status="failed", error=error)

    async def problem(self, key: JobKey, error: str) -> None:
        """Something went wrong that does not end the job (a download, a poll): noted, state unchanged."""
        await self._update(key, "problem", error, error=error)

    async def target(self, key: JobKey, path: Path) -> None:
        """The path this job's video is about to be written to (reserved, so a re-run reuses it)."""
        await self._update(key, "target", str(path), file_path=str(path), file_size=None, file_sha256=None)

    async def file(self, key: JobKey, *, path: Path, size: int, sha256: str) -> None:
        await self._update(
            key, "file", f"{path} ({size} bytes)", file_path=str(path), file_size=size, file_sha256=sha256, error=None
        )

    async def _update(self, key: JobKey, event: str, detail: str | None, **columns: Any) -> None:
        await self._run(self._update_sync, key, event, detail, columns)

    def _update_sync(self, key: JobKey, event: str, detail: str | None, columns: Mapping[str, Any]) -> None:
        now = time.time()
        names = [f"{name} = ?" for name in columns]
        values = [value.value if isinstance(value, JournalState) else value for value in columns.values()]
        with _transaction(self._db):
            self._db.execute(
                f"UPDATE jobs SET {', '.join(names)}, updated_at = ? WHERE fingerprint = ? AND occurrence = ?",  # noqa: S608 - column names are ours
                (*values, now, key.fingerprint, key.occurrence),
            )
            self._event(key, now, event, detail)

    def _event(self, key: JobKey, now: float, event: str, detail: str | None) -> None:
        self._db.execute(
            "INSERT INTO events (fingerprint, occurrence, at, event, detail) VALUES (?, ?, ?, ?, ?)",
            (key.fingerprint, key.occurrence, now, event, detail),
        )


def keys_for(fingerprints: Sequence[str]) -> list[JobKey]:
    """Number identical requests in order: the second copy of a request is occurrence 1."""
    seen: dict[str, int] = {}
    keys = []
    for value in fingerprints:
        occurrence = seen.get(value, 0)
        seen[value] = occurrence + 1
        keys.append(JobKey(value, occurrence))
    return keys


def _upgrade(db: sqlite3.Connection) -> None:
    """Bring a journal of an older format (or a new one) to the current format, in one transaction."""
    with _transaction(db):
        present = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
        for name, declaration in _ADDED_COLUMNS:
            if name not in present:
                db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {declaration}")
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(_SCHEMA_VERSION),),
        )


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Any:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
