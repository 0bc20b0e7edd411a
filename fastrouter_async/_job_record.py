"""The record of the jobs a session submitted, in this process (a shared store keeps its own, too).

``session.job(task_id)`` looks the model and the submit time of a job up here, and
``session.jobs()`` lists these records when no store is shared. A job this session still follows
is read from the job itself when asked (nothing is copied while it runs); its record is made when
it ends, and the most recent ``KEPT_ENDED`` ended ones are kept, so a process that runs for months
does not grow without bound. A job whose handle was dropped before its end leaves the record.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Collection
from typing import Final, Protocol

from ._models import JobState
from ._shared import JobRecord, record_matches

__all__ = ["KEPT_ENDED", "MemoryJobRecord", "Recorded"]

KEPT_ENDED: Final = 4096
# Ended jobs remembered per session: enough to answer "what was task X" for the recent past,
# bounded so that a long-running process does not keep every job it ever submitted.


class Recorded(Protocol):
    """A job this session follows, as the record sees it."""

    @property
    def task_id(self) -> str: ...

    def as_record(self) -> JobRecord:
        """What the job is now, as a record."""


class MemoryJobRecord:
    """The record of one session's jobs, keyed by task id (see the module docstring)."""

    def __init__(self, kept_ended: int = KEPT_ENDED) -> None:
        self._running: weakref.WeakValueDictionary[str, Recorded] = weakref.WeakValueDictionary()
        self._ended: OrderedDict[str, JobRecord] = OrderedDict()
        self._kept_ended = kept_ended

    def __len__(self) -> int:
        return len(self._running) + len(self._ended)

    def accepted(self, job: Recorded) -> None:
        """A submit of this session was accepted as ``job``."""
        self._ended.pop(job.task_id, None)
        self._running[job.task_id] = job

    def ended(self, record: JobRecord) -> None:
        """A job of this session ended (a job not recorded is ignored)."""
        assert record.task_id is not None
        if self._running.pop(record.task_id, None) is None:
            return
        self._ended[record.task_id] = record
        while len(self._ended) > self._kept_ended:
            self._ended.popitem(last=False)

    def get(self, task_id: str) -> JobRecord | None:
        job = self._running.get(task_id)
        return job.as_record() if job is not None else self._ended.get(task_id)

    def list(
        self,
        *,
        states: Collection[JobState | None] | None = None,
        model: str | None = None,
        finished: bool | None = None,
        limit: int | None = None,
    ) -> list[JobRecord]:
        """Records in submit order, oldest first, filtered as :meth:`JobStore.list` does."""
        records = [*self._ended.values(), *(job.as_record() for job in list(self._running.values()))]
        found = [r for r in sorted(records, key=lambda r: r.submitted_at) if record_matches(r, states, model, finished)]
        return found if limit is None else found[: max(0, limit)]
