"""VideoJob: the live handle of one submitted task (an entity: equal only to itself)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import weakref
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from ._config import check_wait_timeout
from ._errors import JobFailedError, JobTimeoutError
from ._estimates import learned_delay
from ._event_hub import polling_task
from ._events import JobEnded, StatusChanged
from ._job_events import JobEvents
from ._models import Cost, JobState, JobStatus, SubmitEstimate, VideoRequest, VideoResult
from ._polling import RetryCounter
from ._protocol import HttpCall
from ._schedule import poll_delay

if TYPE_CHECKING:
    from ._session import FastRouterSession, _Slot
    from ._spend import SpendHold

__all__ = ["VideoJob"]

logger = logging.getLogger("fastrouter_async")


@attrs.define(eq=False, repr=False)
class VideoJob:
    """A submitted video task.

    ``await job`` (or ``await job.result()``) polls until the task ends and
    returns a :class:`VideoResult`, raising :class:`JobFailedError` if the
    generation failed. ``await job.status()`` makes exactly one poll request.

    Waiting is cancel-safe: cancel it (a timeout, Ctrl-C) and the same job can
    be awaited again; its ``task_id``, ``model`` and ``submitted_at`` are all
    another process needs to pick it up with
    ``session.job(task_id, model=..., submitted_at=...)``.
    """

    task_id: str
    """FastRouter's id for the task; keep it to re-attach later."""
    model: str | None
    """The model the task was submitted with (sent along with polls)."""
    request: VideoRequest | None = None
    """The request, for jobs submitted by this session; ``None`` for re-attached ones."""
    _session: FastRouterSession = attrs.field(alias="session", kw_only=True)
    _submitted_at: float | None = attrs.field(default=None, alias="submitted_at", kw_only=True)
    """When the task was submitted, on the event loop's clock (``None``: unknown)."""
    _submitted_wall: float | None = attrs.field(default=None, alias="submitted_wall", kw_only=True)
    """The same moment as a unix timestamp, for other processes (see ``submitted_at``)."""
    _slot: _Slot | None = attrs.field(default=None, alias="slot", kw_only=True)
    cache_key: str | None = attrs.field(default=None, kw_only=True)
    """The ``cache_key`` its submit was sent with (``None``: replays off, or a re-attached job)."""
    found_again: bool | None = attrs.field(default=None, kw_only=True)
    """True: a replay of a submit whose answer was lost found the job the first attempt had created
    (unbilled); False: created by this submit's attempt; None: unknown (e.g. a re-attached job)."""
    submit_estimate: SubmitEstimate | None = attrs.field(default=None, kw_only=True)
    """The cost the create answer stated; a job found again shows no credits: it is never a second cost."""
    _spend_hold: SpendHold | None = attrs.field(default=None, alias="spend_hold", kw_only=True)
    """This job's reservation under a spend cap, settled when the job ends."""
    _last_status: JobStatus | None = attrs.field(default=None, init=False)
    _outcome: VideoResult | JobFailedError | None = attrs.field(default=None, init=False)
    _polls_done: int = attrs.field(default=0, init=False)
    _last_poll_at: float | None = attrs.field(default=None, init=False)
    _last_running_at: float | None = attrs.field(default=None, init=False)
    """When a poll last saw the job still running (for learning how long it took)."""
    _waiters: list[asyncio.Future[BaseException | None]] | None = attrs.field(default=None, init=False)
    """One future per ``result()`` in progress; the poller resolves them when the job ends."""
    _schedule_token: int | None = attrs.field(default=None, init=False)
    """Set while the job is on the session's poll schedule (see ``_poller``)."""
    _scheduled_at: float = attrs.field(default=0.0, init=False)
    """When the job was last put on the schedule (the poller measures lateness against the gap meant)."""
    _retries: RetryCounter | None = attrs.field(default=None, init=False)
    _call: HttpCall | None = attrs.field(default=None, init=False)
    _ended_event: JobEnded | None = attrs.field(default=None, init=False)
    """The event that told of the job's end (replayed by ``events()`` begun afterwards)."""

    def __attrs_post_init__(self) -> None:
        if self._slot is not None:
            # A handle dropped without being awaited still gives its slot back.
            weakref.finalize(self, self._slot.release_from_any_thread, asyncio.get_running_loop())

    def __repr__(self) -> str:
        state = self._last_status.describe() if self._last_status else "not polled yet"
        return f"<VideoJob task_id={self.task_id!r} model={self.model!r} {state}>"

    @property
    def submitted_at(self) -> datetime.datetime | None:
        """When FastRouter accepted the submit (aware, UTC); ``None`` for a job re-attached without it.

        Store it with the task id: ``session.job(task_id, model=..., submitted_at=...)``
        in another process then gets the same not-visible-yet grace window.
        """
        if self._submitted_wall is None:
            return None
        return datetime.datetime.fromtimestamp(self._submitted_wall, datetime.UTC)

    @property
    def last_status(self) -> JobStatus | None:
        """The most recent snapshot (``None`` until the first poll answered)."""
        return self._last_status

    @property
    def estimated_cost(self) -> Cost:
        """The submit answer's estimate (``kind="estimated"``); ``"free"`` for a cache hit or a job found
        again by a replay; ``"unknown"`` when the answer stated none (or the job was re-attached)."""
        if self.found_again:
            return Cost.free()
        estimate = self.submit_estimate
        if estimate is None:
            return Cost.unknown()
        cost = Cost.of("estimated", usd=estimate.usd, credits=estimate.credits)
        return Cost.free() if cost.usd == 0 else cost

    @property
    def cost(self) -> Cost:
        """The best-known cost: final once the job succeeded (``"unknown"`` if its answer did not say),
        ``"free"`` once it failed (FastRouter bills no failed job) or for a cache hit, else the estimate."""
        outcome = self._outcome
        if self.found_again:
            return Cost.free()
        if isinstance(outcome, VideoResult):
            return outcome.final_cost
        if outcome is not None:
            return Cost.free()
        return self.estimated_cost

    @property
    def done(self) -> bool:
        """True once a poll has seen the task succeed or fail."""
        return self._outcome is not None

    def __await__(self) -> Generator[Any, None, VideoResult]:
        return self.result().__await__()

    async def status(self) -> JobStatus:
        """Ask once how the task is doing: exactly one poll request, no retries.

        Inside the not-visible-yet window right after submit, a 404 comes back
        as a ``PENDING`` snapshot instead of :class:`NotFoundError`.
        """
        token = polling_task.set(self.task_id)
        try:
            snapshot = await self._session._poll_once(self)
        finally:
            polling_task.reset(token)
        self._record(snapshot)
        return snapshot

    def events(self) -> JobEvents:
        """Follow this job: ``async for event in job.events():`` yields its events as they happen.

        The events are :class:`StatusChanged` (the first answer counts as a change),
        :class:`PollRetried` and :class:`RateLimited` (for this job's polls), and last
        :class:`JobEnded`, after which the iteration ends (begun after the end, it yields
        just that one). Iterating makes the job be polled, as ``result()`` does, whether
        or not anything else awaits it; it raises what ``result()`` would raise when
        polling fails for good (not :class:`JobFailedError`: a failed job ends with a
        ``JobEnded`` event). Up to 256 events not yet taken are kept
        (the oldest are dropped beyond; ``JobEnded`` never is). Cancel-safe: events not
        yet taken stay buffered for the next iteration step. Events of the submit and of
        downloads are sent to the session's ``on_event`` callback.
        """
        return JobEvents(self, self._session._events, self._ended_event)

    async def result(self, *, timeout: float | None = None) -> VideoResult:
        """Poll until the task ends; return its :class:`VideoResult`.

        Raises :class:`JobFailedError` when the generation failed and
        :class:`JobTimeoutError` (a ``TimeoutError``) when ``timeout`` seconds
        pass first; the task itself keeps running either way. Polls come from
        the session's shared poller, on the session's poll policy; several
        ``result()`` calls on one job share its polls.
        """
        check_wait_timeout(timeout)
        if self._outcome is None:
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

    # --- internals ------------------------------------------------------------------------

    async def _wait_at_most(self, timeout: float, loop: asyncio.AbstractEventLoop) -> None:
        started = loop.time()
        with anyio.move_on_after(timeout) as scope:
            await self._until_done(loop)
        if scope.cancelled_caught and self._outcome is None:
            raise JobTimeoutError(self.task_id, self.model, loop.time() - started, self._last_status)

    async def _until_done(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait on the shared poller until the job has ended (or a poll failed for good: raised)."""
        while self._outcome is None:
            waiter = self._join_polling(loop)
            try:
                failure = await waiter
            finally:
                self._waiters_remove(waiter)
            if failure is not None:
                raise failure

    def _wake(self, failure: BaseException | None = None) -> None:
        """Resolve every ``result()`` in progress: the job ended, or ``failure`` stopped the wait."""
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(failure)

    @property
    def _wanted(self) -> bool:
        """Whether the poller should keep polling this job."""
        if self._outcome is not None:
            return False
        if self._waiters:
            return True
        return self._holds_slot and self._session.submits_waiting > 0

    def _next_delay(self, now: float) -> float:
        """Seconds from ``now`` (event-loop time) until the next poll, on the session's policy (learned or fixed)."""
        session = self._session
        policy = session._poll_policy
        if self._polls_done == 0:
            if self._submitted_at is None:
                return 0.0  # re-attached: ask right away
            return max(0.0, policy.first_delay - (now - self._submitted_at))
        if policy.learn and self._submitted_at is not None:
            log_mean, sigma = session._durations.log_normal(self.model, self.request)
            elapsed = now - self._submitted_at
            return learned_delay(policy, log_mean, sigma, elapsed, session._rng)
        return poll_delay(policy, self._polls_done, session._rng)

    def _due_at_jittered(self, now: float) -> float:
        """When the first scheduled poll of a new wait is due: now if overdue, else on schedule.

        Called once per ``result()`` started: it takes the loop's clock from the caller (anyio's
        clock would look up the async backend each time, a cost 100,000 waiters started at once feel).
        """
        if self._last_poll_at is None:
            return now + self._next_delay(now)
        return max(now, self._last_poll_at + self._next_delay(now))

    def _due_at(self) -> float:
        """When the next poll of this job is due, on the policy's schedule (without jitter)."""
        policy = self._session._poll_policy
        if self._last_poll_at is None:
            return (self._submitted_at or anyio.current_time()) + policy.first_delay
        return self._last_poll_at + policy.base_delay(self._polls_done)

    @property
    def _holds_slot(self) -> bool:
        return self._slot is not None and not self._slot.released

    @property
    def _being_awaited(self) -> bool:
        return bool(self._waiters)

    def _in_grace_window(self) -> bool:
        if self._submitted_at is None:
            return False
        return anyio.current_time() - self._submitted_at < self._session._poll_policy.not_found_grace

    def _record(self, snapshot: JobStatus) -> None:
        now = asyncio.get_running_loop().time()  # anyio's clock, without its backend lookup: once per poll
        previous_running_at = self._last_running_at
        self._polls_done += 1
        self._last_poll_at = now
        done = snapshot.state.done
        if not done:
            self._last_running_at = now
        previous = self._last_status
        # Kept per job for as long as it runs: a running answer's decoded JSON would be most of the
        # job's memory (about 2 KB), so the copy kept here drops it; status() returns it whole. An
        # answer equal to the one kept (equality ignores the payload: the usual "still processing")
        # keeps the copy already made.
        if done or snapshot.payload is None:
            self._last_status = snapshot
        elif previous is None or previous != snapshot:
            self._last_status = snapshot._without_payload()
        if previous is None or previous.state is not snapshot.state or previous.raw_status != snapshot.raw_status:
            logger.info("job %s (%s): %s", self.task_id, self.model, snapshot.describe())
            events = self._session._events
            if events.active:  # nobody listening: no event built
                events.emit(StatusChanged(task_id=self.task_id, model=self.model, status=snapshot))
        if self._outcome is not None or not done:
            return
        if snapshot.state is JobState.SUCCEEDED:
            self._outcome = self._session._result_from(self, snapshot)
            if self._submitted_at is not None and previous_running_at is not None:
                # It ended between the last "running" answer and this one: learn the midpoint.
                took = (previous_running_at + now) / 2 - self._submitted_at
                self._session._durations.observe(self.model, self.request, took)
        else:
            self._outcome = JobFailedError(
                self.task_id, self.model, snapshot.error or "the job failed", status=snapshot
            )
        self._schedule_token = None
        self._release_slot()
        if self._spend_hold is not None:  # settled to the final cost; a failed job costs nothing
            self._spend_hold.ended(self._outcome.final_cost if isinstance(self._outcome, VideoResult) else None)
        self._announce_end(snapshot, now)
        self._wake()

    def _announce_end(self, snapshot: JobStatus, now: float) -> None:
        ended = self._ended_event = JobEnded(
            task_id=self.task_id,
            model=self.model,
            state=snapshot.state,
            status=snapshot,
            cost_usd=snapshot.cost_usd,
            error=snapshot.error if snapshot.state is not JobState.SUCCEEDED else None,
            polls=self._polls_done,
            seconds=None if self._submitted_at is None else max(0.0, now - self._submitted_at),
        )
        self._session._events.emit(ended)

    async def _until_event(self, arrived: asyncio.Future[None]) -> None:
        """Keep this job polled (as ``result()`` does) until ``arrived`` resolves or the job ends."""
        waiter = self._join_polling(asyncio.get_running_loop())
        try:
            await asyncio.wait((waiter, arrived), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._waiters_remove(waiter)
        failure = waiter.result() if waiter.done() else None
        if failure is not None and not arrived.done():
            raise failure

    def _join_polling(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[BaseException | None]:
        """A new waiter for this job's end (a failure for good, or None), with the job on the poller's schedule."""
        self._session._ensure_open()
        waiter: asyncio.Future[BaseException | None] = loop.create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            poller = self._session._poller
            if not poller.is_scheduled(self):
                poller.schedule(self, self._due_at_jittered(loop.time()))
        except BaseException:
            self._waiters_remove(waiter)
            raise
        return waiter

    def _waiters_remove(self, waiter: asyncio.Future[BaseException | None]) -> None:
        assert self._waiters is not None
        self._waiters.remove(waiter)

    def _finish(self) -> VideoResult:
        outcome = self._outcome
        if isinstance(outcome, JobFailedError):
            # A fresh exception per raise, so tracebacks from several awaits do not pile up.
            raise JobFailedError(outcome.task_id, outcome.model, outcome.message, status=outcome.status)
        assert outcome is not None
        return outcome

    def _release_slot(self) -> None:
        if self._slot is not None:
            self._slot.release()

    def _resume_hint(self) -> str:
        state = self._last_status.describe() if self._last_status else "no status received yet"
        return (
            f"fastrouter_async: stopped waiting for job {self.task_id} ({self.model}); last status: {state}. "
            f"The job was not cancelled: await it again, or re-attach with "
            f"session.job({self.task_id!r}, model={self.model!r})."
        )
