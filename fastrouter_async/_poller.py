"""One poller per session: every waited-on job is polled from a single schedule.

Instead of one sleeping loop per ``result()``, the session keeps the jobs that
somebody waits for in a heap ordered by their next due time. One timer on the
event loop fires when the earliest job is due and starts a small pool of worker
tasks (at most ``MAX_CONCURRENT_POLLS``), which take the due jobs off the heap one
at a time (so a burst of 100,000 due jobs is never moved in one step), poll them
under the session's request budget, reschedule the ones still running, and wake
the waiters of the ones that ended. Idle, the poller costs nothing: no task runs
and no timer is set.

Falling behind: each poll's *lateness* (how long after its due time it started)
is measured. A poll is late when it starts more than ``LATE_SHARE`` of its
intended gap (from the moment it was scheduled to its due time), and at least
``LATE_FLOOR`` seconds, after it was due. After
``BEHIND_AFTER`` late polls in a row the poller is *behind*: it sends
:class:`PollerBehind` and logs one warning; it is caught up (:class:`PollerCaughtUp`)
once nothing due waits for a worker, or after ``BEHIND_AFTER`` polls in a row on time.

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
from typing import TYPE_CHECKING, Final, Protocol

import attrs

from ._answers import unexpected_error
from ._errors import FastRouterError, NotFoundError
from ._event_hub import EventHub, polling_task
from ._events import PollerBehind, PollerCaughtUp, PollRetried
from ._retry import RetryCounter, is_transient

if TYPE_CHECKING:
    import random

    from ._config import RetryPolicy
    from ._models import JobStatus

__all__ = ["BEHIND_AFTER", "LATE_FLOOR", "LATE_SHARE", "MAX_CONCURRENT_POLLS", "Polled", "Poller", "PollerStatistics"]

logger = logging.getLogger("fastrouter_async")

MAX_CONCURRENT_POLLS = 64
# Polls in flight at once. Enough to keep thousands of jobs polled over a loopback or a
# continent (64 requests of 100 ms each: 640 polls/s), while leaving most of the session's
# 100 pooled connections to submits and downloads. A request budget usually binds first.

LATE_SHARE: Final = 0.5
LATE_FLOOR: Final = 0.5
# A poll is late when it starts more than half its intended gap after its due time (2.5 s for a
# 5 s gap: the job is then polled at least 1.5 x less often than the policy says), and never for
# less than 0.5 s: a poll due "now" (the first of a wait begun after its due time) is not late
# because a burst of a thousand such polls took half a second to send.
BEHIND_AFTER: Final = 20
# Late polls in a row before the poller reports it is behind (and on-time polls in a row before it
# reports it caught up): one slow moment (a garbage collection, a burst of answers) is not a trend.
LATENESS_WEIGHT: Final = 0.05
# The weight of each poll in the running average of lateness (about the last 20-40 polls).
CAPACITY_HINT: Final = (
    "one process sends about 2,000-3,500 polls/s; wait on fewer jobs per process, poll less often "
    "(a PollPolicy with longer gaps), or split the jobs among more processes "
    "(docs/performance.md, 'Polling capacity')"
)


class Polled(Protocol):
    """A job, as the poller sees it."""

    @property
    def task_id(self) -> str: ...

    @property
    def model(self) -> str | None: ...

    @property
    def wanted(self) -> bool:
        """Whether it should stay on the schedule (somebody waits for its end, or for its slot)."""

    @property
    def ended(self) -> bool:
        """Whether a poll has seen it end."""

    @property
    def awaited(self) -> bool:
        """Whether a ``result()`` (or an events iterator) waits for it now."""

    async def poll(self) -> JobStatus:
        """One poll request (no retries)."""

    def record(self, status: JobStatus) -> None:
        """Take in the status a poll brought (wakes the waiters once it ended)."""

    def next_delay(self, now: float) -> float:
        """Seconds from ``now`` until its next poll, on its poll policy."""

    def due_at(self) -> float:
        """When its next poll is due on the policy's schedule (no jitter)."""

    def mark_polled(self, now: float) -> None:
        """A poll was tried at ``now`` (and failed): the schedule counts from here."""

    def wake(self, failure: BaseException | None = None) -> None:
        """Resolve the waits on it: it ended, or ``failure`` stopped them."""

    def release_slot(self) -> None:
        """Stop counting it against ``max_concurrent_jobs``."""


@attrs.frozen(kw_only=True)
class PollerStatistics:
    """How a session's poller keeps up with its schedule (``session.poller_statistics()``)."""

    scheduled: int
    """Jobs on the schedule, due or not (including entries about to be dropped as stale)."""
    polling: int
    """Polls on their way now."""
    polls: int
    """Polls sent by the scheduler since the session opened (``status()`` calls are not counted)."""
    behind: bool
    """Whether polls start late, so that jobs are polled less often than the poll policy says."""
    lateness: float
    """A running average of how many seconds after their due time the recent polls started."""
    max_lateness: float
    """The largest lateness of any poll since the session opened, in seconds."""
    workers: int = 0
    """Worker tasks polling right now (at most ``MAX_CONCURRENT_POLLS``)."""
    retrying: int = 0
    """Jobs whose last poll failed and is being retried."""
    due: int = 0
    """Schedule entries due now that no worker has taken yet (a backlog when the poller is behind;
    entries left stale by a reschedule count until a worker drops them)."""


class Poller:
    """The scheduler of one session (see the module docstring).

    What it knows of a job sits in its own side table: the token of the job's live heap
    entry (older entries of the same job are stale and skipped) and, while a poll of it is
    being retried, the retry counter.
    """

    def __init__(self, events: EventHub, *, retry_policy: RetryPolicy, rng: random.Random) -> None:
        self._events = events
        self._retry_policy = retry_policy
        self._rng = rng
        self._heap: list[tuple[float, int, Polled, float]] = []  # (due, token, job, when it was scheduled)
        self._tokens: dict[Polled, int] = {}  # the live entry of each job on the schedule
        self._retries: dict[Polled, RetryCounter] = {}  # jobs whose polls are being retried
        self._seq = itertools.count()
        self._workers: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._polling: set[Polled] = set()  # jobs whose poll is on its way
        self._polls = 0  # polls sent by the scheduler (``status()`` calls are not counted)
        self._lateness = 0.0  # running average, seconds
        self._max_lateness = 0.0
        self._streak = 0  # late polls in a row (while on time) or on-time polls in a row (while behind)
        self._behind_since: float | None = None

    def statistics(self) -> PollerStatistics:
        """A snapshot of how the poller keeps up."""
        return PollerStatistics(
            scheduled=len(self._heap),
            polling=len(self._polling),
            polls=self._polls,
            behind=self._behind_since is not None,
            lateness=self._lateness,
            max_lateness=self._max_lateness,
            workers=len(self._workers),
            retrying=len(self._retries),
            due=0 if self._loop is None else _count_due(self._heap, self._loop.time(), len(self._heap))[0],
        )

    def schedule(self, job: Polled, due: float) -> None:
        """Put ``job`` on the schedule for ``due`` (event-loop time), replacing any earlier entry."""
        if self._closed:
            return
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        seq = next(self._seq)
        self._tokens[job] = seq  # entries with another token are stale and skipped
        heapq.heappush(self._heap, (due, seq, job, loop.time()))
        if self._timer is None or due < self._timer_at:
            self._arm(loop, due)

    def is_scheduled(self, job: Polled) -> bool:
        """Whether ``job`` is on the schedule or being polled (it will be rescheduled while wanted)."""
        return job in self._tokens or job in self._polling

    def unschedule(self, job: Polled) -> None:
        """Take ``job`` off the schedule (its heap entry goes stale); a poll on its way is not stopped."""
        self._tokens.pop(job, None)
        self._retries.pop(job, None)

    async def aclose(self) -> None:
        """Stop: no more polls; running polls are cancelled and awaited."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        jobs = {entry[2] for entry in self._heap} | self._polling
        self._heap.clear()
        self._tokens.clear()
        self._retries.clear()
        workers = list(self._workers)
        for worker in workers:
            worker.cancel()
        if workers:
            await asyncio.gather(*workers, return_exceptions=True)
        for job in jobs:
            job.wake(RuntimeError(f"the FastRouterSession was closed while waiting for task {job.task_id}"))

    # --- internals ------------------------------------------------------------------------

    def _arm(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        self._timer = loop.call_at(due, self._release_due)

    def _release_due(self) -> None:
        """Timer callback: start workers for the due jobs (they take them off the heap themselves)."""
        self._timer = None
        loop = self._loop
        assert loop is not None
        room = MAX_CONCURRENT_POLLS - len(self._workers)
        # Every live worker is inside a poll (one leaves the set the moment it finds nothing due), so
        # each due job beyond the pool's free room waits for a worker that is already polling.
        due, next_at = _count_due(self._heap, loop.time(), room)
        for _ in range(due):
            self._workers.add(loop.create_task(self._work()))
        if next_at is not None:
            self._arm(loop, next_at)  # a job coming due while these workers poll gets a worker of its own
        elif not self._workers:
            self._rearm(loop)

    def _rearm(self, loop: asyncio.AbstractEventLoop) -> None:
        """Drop stale entries at the top (they would only wake the timer for nothing); arm for the next due."""
        heap, tokens = self._heap, self._tokens
        while heap and tokens.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)
        if heap and (self._timer is None or heap[0][0] < self._timer_at):
            self._arm(loop, heap[0][0])

    async def _work(self) -> None:
        heap, tokens = self._heap, self._tokens
        loop = self._loop
        assert loop is not None
        try:
            while heap and not self._closed:
                due, seq, job, scheduled_at = heap[0]
                if tokens.get(job) != seq:
                    heapq.heappop(heap)  # rescheduled since (a status() or a poll answered meanwhile)
                    continue
                now = loop.time()
                if due > now:
                    break
                heapq.heappop(heap)
                del tokens[job]
                if job.wanted:
                    self._started_late_by(now - due, due - scheduled_at)
                    await self._poll(job)
        finally:
            # Leave the pool in the same step that found nothing due: a worker that is done but
            # not yet reaped must never be counted on to poll a job that comes due next.
            self._workers.discard(asyncio.current_task())  # type: ignore[arg-type,unused-ignore]
        if not self._closed:
            if self._behind_since is not None:
                self._caught_up(loop.time())  # every due poll has started: no backlog left
            self._rearm(loop)

    def _started_late_by(self, lateness: float, gap: float) -> None:
        """Account for one poll that starts ``lateness`` seconds after its due time."""
        lateness = max(0.0, lateness)
        self._lateness += LATENESS_WEIGHT * (lateness - self._lateness)
        self._max_lateness = max(self._max_lateness, lateness)
        late = lateness > max(LATE_FLOOR, LATE_SHARE * gap)
        behind = self._behind_since is not None
        self._streak = self._streak + 1 if late != behind else 0
        if self._streak < BEHIND_AFTER:
            return
        loop = self._loop
        assert loop is not None
        if behind:
            self._caught_up(loop.time())
            return
        self._streak = 0
        self._behind_since = loop.time()
        logger.warning(
            "polls start %.1fs late on average (%d jobs on the schedule): jobs are polled less often than the "
            "poll policy says; %s",
            self._lateness,
            len(self._heap),
            CAPACITY_HINT,
        )
        self._events.emit(PollerBehind(lateness=self._lateness, jobs_scheduled=len(self._heap)))

    def _caught_up(self, now: float) -> None:
        since = self._behind_since
        assert since is not None
        self._behind_since = None
        self._streak = 0
        logger.info("polls start on time again, after %.1fs behind", now - since)
        self._events.emit(
            PollerCaughtUp(lateness=self._lateness, jobs_scheduled=len(self._heap), seconds_behind=now - since)
        )

    async def _poll(self, job: Polled) -> None:
        loop = self._loop
        assert loop is not None
        self._polls += 1
        self._polling.add(job)
        token = polling_task.set(job.task_id)  # the request hook (tracing) tells polls apart by it
        try:
            snapshot = await job.poll()
        except FastRouterError as exc:
            counter = self._retries.get(job)
            if counter is None:
                counter = self._retries[job] = RetryCounter(self._retry_policy)
            delay = counter.delay_after(exc, self._rng, transient=is_transient(exc))
            if delay is not None:
                logger.warning("status of task %s: %s; asking again in %.2fs", job.task_id, exc, delay)
                self.schedule(job, loop.time() + delay)
                self._events.emit(
                    PollRetried(
                        task_id=job.task_id, model=job.model, attempt=counter.attempt, delay=delay, error=str(exc)
                    )
                )
                return
            del self._retries[job]
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
        if self._retries:
            self._retries.pop(job, None)
        try:
            job.record(snapshot)
        except Exception as exc:  # this job's failure, never the end of the worker (and of other jobs' polls)
            logger.exception("unexpected error recording the status of job %s", job.task_id)
            self._failed(job, unexpected_error(exc, f"the status of task {job.task_id}"))
            return
        if not job.ended and job.wanted:
            now = loop.time()
            self.schedule(job, now + job.next_delay(now))

    def _failed(self, job: Polled, exc: FastRouterError) -> None:
        """A poll failed for good: tell the waiters; a job nobody waits for keeps polling later."""
        if job.awaited:
            job.release_slot()  # the wait failed (gone, auth, retries exhausted): stop counting it
            job.wake(exc)
            return
        if isinstance(exc, NotFoundError):
            logger.warning("job %s (%s) is no longer known to the server; its slot is freed", job.task_id, job.model)
            job.release_slot()
            return
        # Polled only to free a slot: not fatal; the job keeps its slot and is asked again later.
        logger.warning("could not poll job %s (%s) while waiting for a slot: %s", job.task_id, job.model, exc)
        if self._loop is not None:
            job.mark_polled(self._loop.time())
        if job.wanted:
            self.schedule(job, job.due_at())


def _count_due(heap: list[tuple[float, int, Polled, float]], now: float, limit: int) -> tuple[int, float | None]:
    """How many entries of ``heap`` are due at ``now`` (up to ``limit``: O(limit) entries are visited).

    Also when the next one after them is due, if all due entries were counted (``None`` otherwise,
    or when none is left): the due entries are a subtree at the top of the heap, so the earliest
    entry not due is one of its children.
    """
    found = 0
    next_at: float | None = None
    stack = [0] if heap else []
    while stack:
        if found >= limit:
            return found, None
        i = stack.pop()
        at = heap[i][0]
        if at <= now:
            found += 1
            stack.extend(child for child in (2 * i + 1, 2 * i + 2) if child < len(heap))
        elif next_at is None or at < next_at:
            next_at = at
    return found, next_at
