"""The record of the jobs a session submitted, in this process (a shared store keeps its own, too).

Every accepted submit is recorded with what another handle on the job needs (model, submit time,
cache key), each status change seen, and its end. ``session.job(task_id)`` looks the model and the
submit time up here, and ``session.jobs()`` lists these records when no store is shared. The
record keeps every unfinished job and the most recent ``KEPT_ENDED`` ended ones, so a process
that runs for months does not grow without bound.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Mapping
from typing import Any, Final

import attrs

from ._models import JobState
from ._shared import JobRecord, record_matches

__all__ = ["KEPT_ENDED", "MemoryJobRecord"]

KEPT_ENDED: Final = 4096
# Ended jobs remembered per session: enough to answer "what was task X" for the recent past,
# bounded so that a long-running process does not keep every job it ever submitted.


class MemoryJobRecord:
    """The record of one session's jobs, keyed by task id (see the module docstring)."""

    def __init__(self, kept_ended: int = KEPT_ENDED) -> None:
        self._running: dict[str, JobRecord] = {}
        self._ended: OrderedDict[str, JobRecord] = OrderedDict()
        self._kept_ended = kept_ended

    def __len__(self) -> int:
        return len(self._running) + len(self._ended)

    def accepted(self, job: JobRecord) -> None:
        assert job.task_id is not None
        self._ended.pop(job.task_id, None)
        self._running[job.task_id] = job

    def changed(self, task_id: str, state: JobState, details: Mapping[str, Any] | None = None) -> None:
        """A poll saw ``state``; an end moves the job to the ended ones (a job not recorded is ignored)."""
        job = self._running.get(task_id)
        if job is None:
            return
        job = attrs.evolve(job, state=state, details={**job.details, **(details or {})})
        if not state.done:
            self._running[task_id] = job
            return
        del self._running[task_id]
        self._ended[task_id] = job
        while len(self._ended) > self._kept_ended:
            self._ended.popitem(last=False)

    def get(self, task_id: str) -> JobRecord | None:
        return self._running.get(task_id) or self._ended.get(task_id)

    def list(
        self,
        *,
        states: Collection[JobState | None] | None = None,
        model: str | None = None,
        finished: bool | None = None,
        limit: int | None = None,
    ) -> list[JobRecord]:
        """Records in submit order, oldest first, filtered as :meth:`JobStore.list` does."""
        found = [
            job
            for job in sorted((*self._ended.values(), *self._running.values()), key=lambda job: job.submitted_at)
            if record_matches(job, states, model, finished)
        ]
        return found if limit is None else found[: max(0, limit)]
