"""The life of one submitted job: its polls, its end, its waiters, its slot (behind ``VideoJob``).

:class:`JobLife` is what the engine's poller polls (it is a :class:`~._poller.Polled`) and what
the job slots watch (a :class:`~._slots.SlotHolder`); :class:`~._job.VideoJob` is the public
handle over it. It keeps what the job needs to be polled on its policy (when it was submitted,
how many polls were made, the last "running" answer), the not-visible-yet grace window after
the submit, the end (a :class:`VideoResult` or a :class:`JobFailedError`) and the futures of
the ``result()`` calls waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import anyio

from ._config import check_wait_timeout
from ._errors import JobFailedError, JobTimeoutError, StoreError
from ._estimates import learned_delay
from ._event_hub import polling_task
from ._events import JobEnded, StatusChanged
from ._fetch import video_result
from ._models import JobState, JobStatus, SubmitEstimate, VideoRequest, VideoResult
from ._schedule import poll_delay
from ._shared import JobRecord
from ._sharing import Sharing, details_of, status_from_record

if TYPE_CHECKING:
    from ._engine import Engine
    from ._event_hub import EventHub
    from ._protocol import HttpCall
    from ._slots import Slot
    from ._spend import SpendHold
    from ._submits import SubmitIdentity
    from ._submitter import SubmitHooks

__all__ = ["JobLife", "attached", "submitted"]

logger = logging.getLogger("fastrouter_async")

Waiter = asyncio.Future[BaseException | None]


class JobLife:
    """One job's lifecycle (see the module docstring)."""

    __slots__ = (
        "__weakref__",
        "_call",
        "_engine",
        "_last_poll_at",
        "_last_running_at",
        "_polls_done",
        "_waiters",
        "cache_key",
        "ended_event",
        "found_again",
        "hold",
        "last_status",
        "model",
        "outcome",
        "request",
        "slot",
        "submit_estimate",
        "submitted_at",
        "submitted_wall",
        "task_id",
    )

    def __init__(
        self,
        engine: Engine,
        task_id: str,
        model: str | None,
        request: VideoRequest | None,
        *,
        submitted_at: float | None = None,
        submitted_wall: float | None = None,
        slot: Slot | None = None,
        hold: SpendHold | None = None,
        found_again: bool | None = None,
        cache_key: str | None = None,
        submit_estimate: SubmitEstimate | None = None,
    ) -> None:
        self._engine = engine
        self.task_id = task_id
        self.model = model
        self.request = request
        self.submitted_at = submitted_at
        """When the task was submitted, on the event loop's clock (``None``: unknown)."""
        self.submitted_wall = submitted_wall
        """The same moment as a unix timestamp, for other processes."""
        self.slot = slot
        self.hold = hold
        """The job's reservation under a spend cap, settled when the job ends."""
        self.found_again = found_again
        self.cache_key = cache_key
        self.submit_estimate = submit_estimate
        self.last_status: JobStatus | None = None
        self.outcome: VideoResult | JobFailedError | None = None
        self.ended_event: JobEnded | None = None
        """The event that told of the job's end (replayed by ``events()`` begun afterwards)."""
        self._polls_done = 0
        self._last_poll_at: float | None = None
        self._last_running_at: float | None = None  # when a poll last saw it running (to learn its duration)
        self._waiters: list[Waiter] | None = None  # one future per result() in progress
        self._call: HttpCall | None = None
        if slot is not None:
            engine.slots.hold(self)

    @property
    def events(self) -> EventHub:
        """The session's events (``job.events()`` follows this job's)."""
        return self._engine.events

    # --- as the poller sees it -------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.outcome is not None

    @property
    def awaited(self) -> bool:
        return bool(self._waiters)

    @property
    def wanted(self) -> bool:
        """Whether the poller should keep polling this job."""
        if self.outcome is not None:
            return False
        if self._waiters:
            return True
        return self.holds_slot and self._engine.slots.waiting > 0

    async def poll(self) -> JobStatus:
        sharing = self._engine.sharing
        if sharing is not None:
            try:
                known = await self._from_store(sharing)
            except StoreError as exc:  # polled here meanwhile: the job's status never depends on the store
                logger.warning("job %s: %s; polling it here", self.task_id, exc)
                known = None
            if known is not None:
                return known
        call = self._call
        if call is None:
            call = self._call = self._engine.api.poll_call(self.task_id, self.model)
        return await self._engine.api.poll_once(self.task_id, self.model, call, self.in_grace_window)

    async def _from_store(self, sharing: Sharing) -> JobStatus | None:
        """The job's status as the shared store shows it, when another process polls it (``None``: poll here).

        A job re-attached without its model or submit time takes them from the store first.
        """
        record = None
        if self.model is None or self.submitted_at is None:
            record = await sharing.record(self.task_id)
            if record is not None:
                self._adopt(record.model, record.submitted_at)
        if await sharing.watching(self.task_id):
            return None
        record = record or await sharing.record(self.task_id)
        if record is None:
            return None  # not a job of the store: nobody else can tell its status
        status = status_from_record(record, self.model)
        if (status is None and record.state is None) or (status is not None and not status.state.done):
            return JobStatus(
                task_id=self.task_id,
                model=self.model,
                state=record.state or JobState.PENDING,
                raw_status=f"polled by another process ({(record.state or JobState.PENDING).value})",
            )
        return status  # None: the store cannot give this job's result: polled here once

    def _adopt(self, model: str | None, submitted_wall: float | None) -> None:
        if self.model is None and model:
            self.model = model
            self._call = None
        if self.submitted_at is None and submitted_wall is not None:
            self.submitted_wall = submitted_wall
            self.submitted_at = anyio.current_time() - max(0.0, time.time() - submitted_wall)

    def next_delay(self, now: float) -> float:
        """Seconds from ``now`` (event-loop time) until the next poll, on the session's policy (learned or fixed)."""
        engine = self._engine
        policy = engine.poll_policy
        if self._polls_done == 0:
            if self.submitted_at is None:
                return 0.0  # re-attached: ask right away
            return max(0.0, policy.first_delay - (now - self.submitted_at))
        if policy.learn and self.submitted_at is not None:
            log_mean, sigma = engine.durations.log_normal(self.model, self.request)
            return learned_delay(policy, log_mean, sigma, now - self.submitted_at, engine.rng)
        return poll_delay(policy, self._polls_done, engine.rng)

    def due_at(self) -> float:
        """When the next poll of this job is due, on the policy's schedule (without jitter)."""
        policy = self._engine.poll_policy
        if self._last_poll_at is None:
            return (self.submitted_at or anyio.current_time()) + policy.first_delay
        return self._last_poll_at + policy.base_delay(self._polls_done)

    def mark_polled(self, now: float) -> None:
        self._last_poll_at = now

    def wake(self, failure: BaseException | None = None) -> None:
        """Resolve every ``result()`` in progress: the job ended, or ``failure`` stopped the wait."""
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(failure)

    def release_slot(self) -> None:
        if self.slot is not None:
            self.slot.release()

    # --- as the job slots see it ----------------------------------------------------------

    @property
    def holds_slot(self) -> bool:
        return self.slot is not None and not self.slot.released

    def watch_for_slot(self) -> None:
        poller = self._engine.poller
        if not poller.is_scheduled(self):
            poller.schedule(self, max(anyio.current_time(), self.due_at()))

    # --- the handle's calls ------------------------------------------------------------------

    def in_grace_window(self) -> bool:
        if self.submitted_at is None:
            return False
        return anyio.current_time() - self.submitted_at < self._engine.poll_policy.not_found_grace

    async def status(self) -> JobStatus:
        """Exactly one poll request, no retries; the answer is recorded."""
        token = polling_task.set(self.task_id)
        try:
            snapshot = await self.poll()
        finally:
            polling_task.reset(token)
        self.record(snapshot)
        return snapshot

    async def result(self, timeout: float | None) -> VideoResult:
        check_wait_timeout(timeout)
        if self.outcome is None:
            loop = asyncio.get_running_loop()
            try:
                if timeout is None:
                    await self._until_done(loop)  # no cancel scope: a waiter costs a future and two frames
                else:
                    await self._wait_at_most(timeout, loop)
            except anyio.get_cancelled_exc_class() as cancelled:
                cancelled.add_note(self._resume_hint())
                raise
        return self._finish()

    async def until_event(self, arrived: asyncio.Future[None]) -> None:
        """Keep this job polled (as ``result()`` does) until ``arrived`` resolves or the job ends."""
        waiter = self._join_polling(asyncio.get_running_loop())
        try:
            await asyncio.wait((waiter, arrived), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._waiters_remove(waiter)
        failure = waiter.result() if waiter.done() else None
        if failure is not None and not arrived.done():
            raise failure

    def record(self, snapshot: JobStatus) -> None:
        """Take in one poll's answer: log and tell a change, and settle everything once the job ended."""
        now = asyncio.get_running_loop().time()  # anyio's clock, without its backend lookup: once per poll
        previous_running_at = self._last_running_at
        self._polls_done += 1
        self._last_poll_at = now
        done = snapshot.state.done
        if not done:
            self._last_running_at = now
        previous = self.last_status
        # Kept per job for as long as it runs: a running answer's decoded JSON would be most of the
        # job's memory (about 2 KB), so the copy kept here drops it; status() returns it whole. An
        # answer equal to the one kept (equality ignores the payload: the usual "still processing")
        # keeps the copy already made.
        if done or snapshot.payload is None:
            self.last_status = snapshot
        elif previous is None or previous != snapshot:
            self.last_status = _without_payload(snapshot)
        if previous is None or previous.state is not snapshot.state or previous.raw_status != snapshot.raw_status:
            logger.info("job %s (%s): %s", self.task_id, self.model, snapshot.describe())
            sharing = self._engine.sharing
            if sharing is not None and sharing.watches(self.task_id):  # told to the other processes
                sharing.status(self.task_id, snapshot.state, details_of(snapshot))
            events = self._engine.events
            if events.active:  # nobody listening: no event built
                events.emit(StatusChanged(task_id=self.task_id, model=self.model, status=snapshot))
        if self.outcome is not None or not done:
            return
        self._end(snapshot, now, previous_running_at)

    # --- internals ------------------------------------------------------------------------

    def _end(self, snapshot: JobStatus, now: float, previous_running_at: float | None) -> None:
        engine = self._engine
        if snapshot.state is JobState.SUCCEEDED:
            result = self.outcome = video_result(self.task_id, self.model, snapshot, engine.fetcher)
            engine.costs.observe(self.request, result.final_cost, found_again=self.found_again)
            if self.submitted_at is not None and previous_running_at is not None:
                # It ended between the last "running" answer and this one: learn the midpoint.
                took = (previous_running_at + now) / 2 - self.submitted_at
                engine.durations.observe(self.model, self.request, took)
                if engine.sharing is not None:
                    engine.sharing.durations_learned()
        else:
            self.outcome = JobFailedError(self.task_id, self.model, snapshot.error or "the job failed", status=snapshot)
        engine.poller.unschedule(self)
        engine.record.ended(self.as_record())
        if engine.sharing is not None:
            engine.sharing.unwatch(self.task_id)
            engine.sharing.job_ended(self.task_id)  # its shared slot is given back at once
        self.release_slot()
        if self.hold is not None:  # settled to the final cost; a failed job costs nothing
            self.hold.ended(self.outcome.final_cost if isinstance(self.outcome, VideoResult) else None)
        ended = self.ended_event = JobEnded(
            task_id=self.task_id,
            model=self.model,
            state=snapshot.state,
            status=snapshot,
            cost_usd=snapshot.cost_usd,
            error=snapshot.error if snapshot.state is not JobState.SUCCEEDED else None,
            polls=self._polls_done,
            seconds=None if self.submitted_at is None else max(0.0, now - self.submitted_at),
        )
        engine.events.emit(ended)
        self.wake()

    async def _wait_at_most(self, timeout: float, loop: asyncio.AbstractEventLoop) -> None:
        started = loop.time()
        with anyio.move_on_after(timeout) as scope:
            await self._until_done(loop)
        if scope.cancelled_caught and self.outcome is None:
            raise JobTimeoutError(self.task_id, self.model, loop.time() - started, self.last_status)

    async def _until_done(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait on the shared poller until the job has ended (or a poll failed for good: raised)."""
        while self.outcome is None:
            waiter = self._join_polling(loop)
            try:
                failure = await waiter
            finally:
                self._waiters_remove(waiter)
            if failure is not None:
                raise failure

    def _due_at_jittered(self, now: float) -> float:
        """When the first scheduled poll of a new wait is due: now if overdue, else on schedule.

        Called once per ``result()`` started: it takes the loop's clock from the caller (anyio's
        clock would look up the async backend each time, a cost 100,000 waiters started at once feel).
        """
        if self._last_poll_at is None:
            return now + self.next_delay(now)
        return max(now, self._last_poll_at + self.next_delay(now))

    def _join_polling(self, loop: asyncio.AbstractEventLoop) -> Waiter:
        """A new waiter for this job's end (a failure for good, or None), with the job on the poller's schedule."""
        self._engine.ensure_open()
        waiter: Waiter = loop.create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            poller = self._engine.poller
            if not poller.is_scheduled(self):
                poller.schedule(self, self._due_at_jittered(loop.time()))
        except BaseException:
            self._waiters_remove(waiter)
            raise
        return waiter

    def _waiters_remove(self, waiter: Waiter) -> None:
        assert self._waiters is not None
        self._waiters.remove(waiter)

    def _finish(self) -> VideoResult:
        outcome = self.outcome
        if isinstance(outcome, JobFailedError):
            # A fresh exception per raise, so tracebacks from several awaits do not pile up.
            raise JobFailedError(outcome.task_id, outcome.model, outcome.message, status=outcome.status)
        assert outcome is not None
        return outcome

    def _resume_hint(self) -> str:
        state = self.last_status.describe() if self.last_status else "no status received yet"
        return (
            f"fastrouter_async: stopped waiting for job {self.task_id} ({self.model}); last status: {state}. "
            f"The job was not cancelled: await it again, or re-attach with "
            f"session.job({self.task_id!r}, model={self.model!r})."
        )

    def as_record(self) -> JobRecord:
        """The job as :meth:`FastRouterSession.jobs` lists it."""
        status = self.last_status
        return JobRecord(
            key=self.cache_key or self.task_id,
            model=self.model or "",
            submitted_at=self.submitted_wall or 0.0,
            cache_key=self.cache_key,
            task_id=self.task_id,
            state=JobState.PENDING if status is None else status.state,
            details={} if status is None else details_of(status),
        )

    def waits(self) -> int:
        """How many waits (``result()`` calls and event iterators) are on this job now."""
        return len(self._waiters or ())


async def submitted(
    engine: Engine,
    request: VideoRequest,
    slot: Slot | None,
    *,
    hooks: SubmitHooks | None = None,
    identity: SubmitIdentity | None = None,
    hold: SpendHold | None = None,
) -> JobLife:
    """Submit an already validated request on an already acquired slot (released on failure); recorded."""
    accepted = await engine.submitter.start(request, slot, hooks, identity, hold)
    win = accepted.win
    wall = win.submitted_at.timestamp()
    if accepted.slot is not None and accepted.slot.shared_holder is not None and engine.sharing is not None:
        engine.sharing.bind(accepted.slot.shared_holder, win.task_id)  # its shared slot follows the job
    life = JobLife(
        engine,
        win.task_id,
        request.model,
        request,
        submitted_at=anyio.current_time(),
        submitted_wall=wall,
        slot=accepted.slot,
        hold=accepted.hold,
        found_again=win.found_again,
        cache_key=win.cache_key,
        submit_estimate=win.submit_estimate,
    )
    engine.record.accepted(life)
    return life


def attached(
    engine: Engine,
    task_id: str,
    model: str | None,
    request: VideoRequest | None = None,
    slot: Slot | None = None,
    *,
    submitted_wall_time: float | None = None,
    spend_hold: SpendHold | None = None,
) -> JobLife:
    """A task submitted earlier, counting against the cap with ``slot``.

    With the wall-clock time of the submit, a 404 within the not-visible-yet grace
    window after it still counts as "pending" (the task may simply not be visible yet).
    """
    submitted_at = None
    if submitted_wall_time is not None:
        submitted_at = anyio.current_time() - max(0.0, time.time() - submitted_wall_time)
    return JobLife(
        engine,
        task_id,
        model,
        request,
        submitted_at=submitted_at,
        submitted_wall=submitted_wall_time,
        slot=slot,
        hold=spend_hold,
    )


def _without_payload(status: JobStatus) -> JobStatus:
    """``status`` without its decoded answer (what a job keeps while it runs)."""
    return JobStatus(
        task_id=status.task_id,
        model=status.model,
        state=status.state,
        raw_status=status.raw_status,
        urls=status.urls,
        error=status.error,
        cost_usd=status.cost_usd,
        credits_used=status.credits_used,
        source=status.source,
    )
