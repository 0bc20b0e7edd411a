"""The record of the jobs a session submitted (in process; the seam a shared store plugs into).

Every accepted submit is recorded with what another handle on the job needs (model, submit
time, cache key) and its end once seen. ``session.job(task_id)`` looks the model and the submit
time up here. The in-process record keeps every unfinished job and the most recent
``KEPT_ENDED`` ended ones, so a long-running web backend does not grow without bound.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, Protocol

import attrs

from ._models import JobState

__all__ = ["KEPT_ENDED", "JobRecord", "MemoryJobRecord", "RecordedJob"]

KEPT_ENDED: Final = 4096
# Ended jobs remembered per session: enough to answer "what was task X" for the recent past,
# bounded so that a process that runs for months does not keep every job it ever submitted.


@attrs.frozen(kw_only=True)
class RecordedJob:
    """What the record knows of one job."""

    task_id: str
    model: str | None
    submitted_wall: float | None
    cache_key: str | None
    state: JobState | None = None
    """The end state once seen; ``None`` while the job runs (or nobody saw it end)."""


class JobRecord(Protocol):
    """The engine's record of submitted jobs."""

    def accepted(self, job: RecordedJob) -> None:
        """A submit was accepted."""

    def ended(self, task_id: str, state: JobState) -> None:
        """A poll saw the job end."""

    def get(self, task_id: str) -> RecordedJob | None:
        """What is known of ``task_id`` (``None``: not a job of this record)."""


class MemoryJobRecord:
    """:class:`JobRecord` in this process's memory."""

    def __init__(self, kept_ended: int = KEPT_ENDED) -> None:
        self._running: dict[str, RecordedJob] = {}
        self._ended: OrderedDict[str, RecordedJob] = OrderedDict()
        self._kept_ended = kept_ended

    def __len__(self) -> int:
        return len(self._running) + len(self._ended)

    def accepted(self, job: RecordedJob) -> None:
        self._ended.pop(job.task_id, None)
        self._running[job.task_id] = job

    def ended(self, task_id: str, state: JobState) -> None:
        job = self._running.pop(task_id, None)
        if job is None:
            return  # re-attached by task id only: nothing worth keeping
        self._ended[task_id] = attrs.evolve(job, state=state)
        while len(self._ended) > self._kept_ended:
            self._ended.popitem(last=False)

    def get(self, task_id: str) -> RecordedJob | None:
        return self._running.get(task_id) or self._ended.get(task_id)
