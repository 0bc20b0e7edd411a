"""One poller per session: every waited-on job is polled from a single schedule.

Instead of one sleeping loop per ``result()``, the session keeps the jobs that
somebody waits for in a heap ordered by their next due time. One timer on the
event loop fires when the earliest job is due and hands the due jobs to a small
pool of worker tasks (at most ``MAX_CONCURRENT_POLLS``), which poll them under
the session's request budget, reschedule the ones still running, and wake the
waiters of the ones that ended. Idle, the poller costs nothing: no task runs
and no timer is set.

A job is *wanted* (kept on the schedule) while a ``result()`` waits for it, or
while it holds a ``max_concurrent_jobs`` slot that a waiting submit needs. A job
nobody wants any more is dropped when it comes due, unpolled.

The workers belong to the session: :meth:`Poller.aclose` cancels and awaits them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import deque
from typing import TYPE_CHECKING

from ._answers import unexpected_error
from ._errors import FastRouterError, NotFoundError
from ._event_hub import polling_task
from ._events import PollRetried
from ._polling import RetryCounter, is_transient

if TYPE_CHECKING:
    from ._job import VideoJob
    from ._session import FastRouterSession

__all__ = ["MAX_CONCURRENT_POLLS", "Poller"]

logger = logging.getLogger("fastrouter_async")

MAX_CONCURRENT_POLLS = 64
# Polls in flight at once. Enough to keep thousands of jobs polled over a loopback or a
# continent (64 requests of 100 ms each: 640 polls/s), while leaving most of the session's
# 100 pooled connections to submits and downloads. A request budget usually binds first.


class Poller:
    """The scheduler of one session (see the module docstring)."""

    def __init__(self, session: FastRouterSession) -> None:
        self._session = session
        self._heap: list[tuple[float, int, VideoJob]] = []
        self._seq = itertools.count()
        self._ready: deque[tuple[int, VideoJob]] = deque()  # (schedule token, job), due now
        self._workers: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._polling: set[VideoJob] = set()  # jobs whose poll is on its way
        self.polls = 0
        """Polls sent by the scheduler (``status()`` calls are not counted)."""

    @property
    def scheduled(self) -> int:
        """Jobs on the schedule or about to be polled."""
        return len(self._heap) + len(self._ready)

    def schedule(self, job: VideoJob, due: float) -> None:
        """Put ``job`` on the schedule for ``due`` (event-loop time), replacing any earlier entry."""
        if self._closed:
            return
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        seq = next(self._seq)
        job._schedule_token = seq  # entries with another token are stale and skipped
        heapq.heappush(self._heap, (due, seq, job))
        if self._timer is None or due < self._timer_at:
            self._arm(loop, due)

    def is_scheduled(self, job: VideoJob) -> bool:
        """Whether ``job`` is on the schedule or being polled (it will be rescheduled while wanted)."""
        return job._schedule_token is not None or job in self._polling

    async def aclose(self) -> None:
        """Stop: no more polls; running polls are cancelled and awaited."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        jobs = {job for _, _, job in self._heap} | {job for _, job in self._ready} | self._polling
        self._heap.clear()
        self._ready.clear()
        workers = list(self._workers)
        for worker in workers:
            worker.cancel()
        if workers:
            await asyncio.gather(*workers, return_exceptions=True)
        for job in jobs:
            job._schedule_token = None
            job._wake(RuntimeError(f"the FastRouterSession was closed while waiting for task {job.task_id}"))

    # --- internals ------------------------------------------------------------------------

    def _arm(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        self._timer = loop.call_at(due, self._release_due)

    def _release_due(self) -> None:
        """Timer callback: move the due jobs to the ready queue and make sure workers run."""
        self._timer = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, job = heapq.heappop(heap)
            if job._schedule_token == seq:
                self._ready.append((seq, job))
        while heap and heap[0][2]._schedule_token != heap[0][1]:
            heapq.heappop(heap)  # stale entries at the top would only wake the timer for nothing
        if heap:
            self._arm(loop, heap[0][0])
        # Every live worker is inside a poll (one leaves the set the moment it finds nothing ready),
        # so each ready job beyond the pool's free room waits for a worker that is already polling.
        missing = min(len(self._ready), MAX_CONCURRENT_POLLS - len(self._workers))
        for _ in range(missing):
            self._workers.add(loop.create_task(self._work()))

    async def _work(self) -> None:
        ready = self._ready
        try:
            while ready and not self._closed:
                seq, job = ready.popleft()
                if job._schedule_token != seq:
                    continue  # rescheduled since it came due (a status() or a poll answered meanwhile)
                job._schedule_token = None
                if job._wanted:
                    await self._poll(job)
        finally:
            # Leave the pool in the same step that found nothing ready: a worker that is done but
            # not yet reaped must never be counted on to poll a job that comes due next.
            self._workers.discard(asyncio.current_task())

    async def _poll(self, job: VideoJob) -> None:
        session = self._session
        loop = self._loop
        assert loop is not None
        self.polls += 1
        self._polling.add(job)
        token = polling_task.set(job.task_id)  # the request hook (tracing) tells polls apart by it
        try:
            snapshot = await session._poll_once(job)
        except FastRouterError as exc:
            counter = job._retries
            if counter is None:
                counter = job._retries = RetryCounter(session._retry_policy)
            delay = counter.delay_after(exc, session._rng, transient=is_transient(exc))
            if delay is not None:
                logger.warning("status of task %s: %s; asking again in %.2fs", job.task_id, exc, delay)
                self.schedule(job, loop.time() + delay)
                session._events.emit(
                    PollRetried(
                        task_id=job.task_id, model=job.model, attempt=counter.attempt, delay=delay, error=str(exc)
                    )
                )
                return
            job._retries = None
            self._failed(job, exc)
            return
        except Exception as exc:  # a bug must not leave waiters hanging forever
            if self._closed:
                return
            logger.exception("unexpected error polling job %s", job.task_id)
            self._failed(job, unexpected_error(exc, f"polling task {job.task_id}"))
            return
        finally:
            polling_task.reset(token)
            self._polling.discard(job)
        job._retries = None
        try:
            job._record(snapshot)
        except Exception as exc:  # this job's failure, never the end of the worker (and of other jobs' polls)
            logger.exception("unexpected error recording the status of job %s", job.task_id)
            self._failed(job, unexpected_error(exc, f"the status of task {job.task_id}"))
            return
        if job._outcome is None and job._wanted:
            self.schedule(job, loop.time() + job._next_delay())

    def _failed(self, job: VideoJob, exc: FastRouterError) -> None:
        """A poll failed for good: tell the waiters; a job nobody waits for keeps polling later."""
        if job._waiters:
            job._release_slot()  # the wait failed (gone, auth, retries exhausted): stop counting it
            job._wake(exc)
            return
        if isinstance(exc, NotFoundError):
            logger.warning("job %s (%s) is no longer known to the server; its slot is freed", job.task_id, job.model)
            job._release_slot()
            return
        # Polled only to free a slot: not fatal; the job keeps its slot and is asked again later.
        logger.warning("could not poll job %s (%s) while waiting for a slot: %s", job.task_id, job.model, exc)
        job._last_poll_at = self._loop.time() if self._loop else None
        if job._wanted:
            self.schedule(job, job._due_at())
