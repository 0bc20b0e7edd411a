"""Reading a batch journal without running it: read-only, without its lock, while a batch may be writing it.

:func:`read_journal` is what ``fastrouter-video jobs DIR`` and the batch manifest use
to list every job a journal knows (each with its task id once submitted), including
jobs of requests that are no longer in the batch file.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import attrs

from ._journal import JournalError

__all__ = ["BatchJournal", "JournalRecord", "match_records", "read_journal"]

_SUBMITTED_STATES = frozenset({"submitted", "succeeded", "failed"})
_COLUMNS = (
    "fingerprint, occurrence, position, model, request, state, task_id, status, error, cost_usd, "
    "file_path, file_size, file_sha256, updated_at"
)
_NEWER_COLUMNS = ("cache_key", "found_again", "first_attempt_at", "generation", "estimate_credits", "estimate_usd")


@attrs.frozen(kw_only=True)
class JournalRecord:
    """One job of a batch journal, as last recorded."""

    fingerprint: str
    """The sha256 of the request body as sent (with ``occurrence``: which job of the batch)."""
    occurrence: int
    """0 for the first copy of a request in the batch, 1 for the second..."""
    position: int
    """0-based position of the request in the batch that last submitted it."""
    model: str
    prompt: str | None
    state: str
    """``submitting``, ``submitted``, ``uncertain``, ``not_sent``, ``succeeded`` or ``failed``."""
    task_id: str | None
    status: str | None
    """The last status word seen while it ran."""
    error: str | None
    cost_usd: float | None
    file_path: str | None
    file_size: int | None
    file_sha256: str | None
    updated_at: float
    """Wall-clock time (``time.time()``) of the last change."""
    cache_key: str | None = None
    """The ``cache_key`` its submits carried (``None``: none, or a journal of an older version)."""
    found_again: bool | None = None
    """True: a replay of its submit found the task created by an earlier attempt (a cache hit, not billed
    twice); False: created by its own attempt; ``None``: not known (not submitted, or an older journal)."""
    first_attempt_at: float | None = None
    """Wall-clock time of its first submit attempt (of this generation)."""
    generation: int = 0
    """0, then one more each time it was submitted again after failing."""
    estimate_credits: float | None = None
    """The submit answer's estimate, in FastRouter credits (none for a job found again)."""
    estimate_usd: float | None = None

    @property
    def submitted(self) -> bool:
        """FastRouter accepted the job (it has a task id and may be billed)."""
        return self.task_id is not None and self.state in _SUBMITTED_STATES

    @property
    def running(self) -> bool:
        """Submitted and not yet seen to end (or its video not yet downloaded)."""
        return self.state == "submitted" and self.task_id is not None


def read_journal(path: str | os.PathLike[str]) -> list[JournalRecord]:
    """Every job of the journal at ``path``, by position; blocking (run it in a worker thread from async code).

    Opens the file read-only and takes no lock, so it works while a batch is running on it;
    raises :class:`JournalError` if the file is missing or is not a journal.
    """
    file = Path(path)
    if not file.is_file():
        raise JournalError(f"no journal at {file}")
    try:
        db = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot read the journal {file}: {exc}") from None
    try:
        present = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
        # A journal of an older format lacks the newer columns: read them as NULL (it is opened read-only).
        extra = ", ".join(name if name in present else "NULL" for name in _NEWER_COLUMNS)
        query = f"SELECT {_COLUMNS}, {extra} FROM jobs ORDER BY position, fingerprint, occurrence"  # noqa: S608 - ours
        rows = db.execute(query).fetchall()
    except sqlite3.Error as exc:
        raise JournalError(f"cannot read the journal {file}: {exc}") from None
    finally:
        db.close()
    return [
        JournalRecord(
            fingerprint=row[0],
            occurrence=row[1],
            position=row[2],
            model=row[3],
            prompt=_prompt(row[4]),
            state=row[5],
            task_id=row[6],
            status=row[7],
            error=row[8],
            cost_usd=row[9],
            file_path=row[10],
            file_size=row[11],
            file_sha256=row[12],
            updated_at=row[13],
            cache_key=row[14],
            found_again=None if row[15] is None else bool(row[15]),
            first_attempt_at=row[16],
            generation=row[17] or 0,
            estimate_credits=row[18],
            estimate_usd=row[19],
        )
        for row in rows
    ]


@attrs.frozen
class BatchJournal:
    """A batch's journal, read: the record of each of its requests, and the records of jobs not in it."""

    jobs: Mapping[int, JournalRecord]
    """The record of each request of the batch that has one, by the request's 0-based index."""
    others: tuple[JournalRecord, ...]
    """Jobs the journal knows that are not requests of this batch (an edited prompt, another file run
    into the same journal): submitted ones may still be running or be paid for."""


def match_records(records: Sequence[JournalRecord], keys: Sequence[tuple[str, int]]) -> BatchJournal:
    """Split ``records`` into those of the batch whose job keys are ``keys`` (by index) and the others."""
    index_of = {key: index for index, key in enumerate(keys)}
    jobs: dict[int, JournalRecord] = {}
    others: list[JournalRecord] = []
    for record in records:
        index = index_of.get((record.fingerprint, record.occurrence))
        if index is None:
            others.append(record)
        else:
            jobs[index] = record
    return BatchJournal(MappingProxyType(jobs), tuple(others))


def _prompt(body: str) -> str | None:
    try:
        value = json.loads(body).get("prompt")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
