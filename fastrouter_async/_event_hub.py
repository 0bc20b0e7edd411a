"""Delivering a session's events: to its ``on_event`` callback, to internal consumers, to one job's followers.

Ordering guarantees (documented in docs/observability.md):

* Internal consumers, followers of a job and a plain (sync) ``on_event`` callback are
  called inline, at the moment the event happens, in the order events happen.
* An async ``on_event`` callback never holds up the poller: its events go to a bounded
  queue that one task of the session works through, awaiting one call at a time, so it
  too sees the events in order (later than they happened). When the queue is full,
  events are dropped (and counted) rather than letting memory grow.
* A callback's errors are logged (scrubbed of the key) and never reach the job.

The queue's task belongs to the session: ``aclose`` lets it finish the queued events
for at most ``EVENT_DRAIN_TIMEOUT`` seconds, then cancels it.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

import anyio

from ._errors import InvalidRequestError
from ._events import Event, JobEnded, JobSubmitted
from ._models import AcceptedJob, VideoRequest
from ._protocol import scrub

__all__ = [
    "EVENT_DRAIN_TIMEOUT",
    "EVENT_QUEUE_SIZE",
    "EventCallback",
    "EventHub",
    "announcing",
    "check_on_event",
    "polling_task",
]

logger = logging.getLogger("fastrouter_async")

EventCallback = Callable[[Event], object]
"""``on_event``: a plain function, or an async one (awaited on the session's event task)."""

EVENT_QUEUE_SIZE: Final = 10_000
# Events waiting for an async on_event callback. A slow callback (a database write of
# 10 ms) against thousands of jobs polled every few seconds stays far below this; a
# callback that hangs costs at most this many small values before events are dropped.

EVENT_DRAIN_TIMEOUT: Final = 5.0
# Seconds aclose() gives an async on_event callback to work through the events already
# queued: enough for a few database writes, short enough that closing never hangs.

polling_task: contextvars.ContextVar[str | None] = contextvars.ContextVar("fastrouter_polling_task", default=None)
"""The task id a request in progress polls (set around each poll; read by the request hook)."""


def check_on_event(callback: object) -> EventCallback | None:
    """The session's ``on_event`` argument, checked."""
    if callback is not None and not callable(callback):
        raise InvalidRequestError("on_event", callback, "a function taking an event (sync or async), or None")
    return callback


def announcing(
    hub: EventHub,
    on_accepted: Callable[[AcceptedJob], object] | None,
    estimate: Callable[[str, VideoRequest], float | None],
) -> Callable[[AcceptedJob], object]:
    """An ``on_accepted`` that first sends :class:`JobSubmitted`, then calls the application's own."""

    def accepted(job: AcceptedJob) -> object:
        if hub.active:
            hub.emit(
                JobSubmitted(
                    task_id=job.task_id,
                    model=job.model,
                    request=job.request,
                    submitted_at=job.submitted_at,
                    estimated_seconds=estimate(job.model, job.request),
                )
            )
        return None if on_accepted is None else on_accepted(job)

    return accepted


def _is_async(callback: object) -> bool:
    return inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(getattr(callback, "__call__", None))  # noqa: B004


class EventHub:
    """One session's event delivery (see the module docstring)."""

    def __init__(self, callback: EventCallback | None, *, secret: Callable[[], str]) -> None:
        self._callback = callback
        self._callback_is_async = callback is not None and _is_async(callback)
        self._secret = secret
        self._consumers: list[Callable[[Event], None]] = []
        self._followers: dict[str, list[Callable[[Event], None]]] = {}
        self._queue: deque[Event | Awaitable[object]] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self.dropped = 0
        """Events an async callback never saw (the queue was full, or the session closed)."""

    @property
    def active(self) -> bool:
        """Whether anything listens (emitters may skip building events otherwise)."""
        return self._callback is not None or bool(self._consumers) or bool(self._followers)

    def add_consumer(self, consumer: Callable[[Event], None]) -> None:
        """An internal consumer (OpenTelemetry), called inline with every event."""
        self._consumers.append(consumer)

    def follow(self, task_id: str, follower: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``follower`` inline with each event about ``task_id`` until its ``JobEnded``; returns an unfollow."""
        followers = self._followers.setdefault(task_id, [])
        followers.append(follower)

        def unfollow() -> None:
            current = self._followers.get(task_id)
            if current is not None and follower in current:
                current.remove(follower)
                if not current:
                    del self._followers[task_id]

        return unfollow

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to everyone listening; never raises."""
        for consumer in self._consumers:
            self._call(consumer, event, "an event consumer")
        if self._followers:
            task_id = getattr(event, "task_id", None)
            followers = self._followers.get(task_id) if task_id is not None else None
            if followers:
                for follower in list(followers):
                    self._call(follower, event, "a job's event follower")
                if isinstance(event, JobEnded):
                    self._followers.pop(event.task_id, None)
        callback = self._callback
        if callback is None:
            return
        if self._callback_is_async:
            self._enqueue(event)
            return
        outcome = self._call(callback, event, "on_event")
        if inspect.isawaitable(outcome):  # a callable object whose __call__ returns an awaitable
            self._enqueue(outcome)

    async def aclose(self) -> None:
        """Let an async callback finish the queued events (bounded), then stop; followers are dropped."""
        self._closed = True
        self._followers.clear()
        worker = self._worker
        if worker is not None:
            with anyio.CancelScope(shield=True):
                await asyncio.wait([worker], timeout=EVENT_DRAIN_TIMEOUT)
                if not worker.done():
                    logger.warning(
                        "on_event did not finish the %d queued events within %.3gs; they are dropped",
                        len(self._queue) + 1,
                        EVENT_DRAIN_TIMEOUT,
                    )
                    worker.cancel()
                    await asyncio.wait([worker])
        self._discard_queue()

    # --- internals ------------------------------------------------------------------------

    def _call(self, function: Callable[[Event], object], event: Event, who: str) -> object:
        try:
            return function(event)
        except Exception as exc:  # a listener's failure must never break the job it hears about
            self._log_failure(who, event, exc)
            return None

    def _log_failure(self, who: str, event: Event, exc: BaseException) -> None:
        # No traceback: its text is the application's and is logged scrubbed, like everything else.
        logger.error(
            "%s failed on %s for task %s: %s",
            who,
            type(event).__name__,
            getattr(event, "task_id", None),
            scrub(f"{type(exc).__name__}: {exc}", self._secret()),
        )

    def _enqueue(self, item: Event | Awaitable[object]) -> None:
        if self._closed or len(self._queue) >= EVENT_QUEUE_SIZE:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                reason = "the session is closed" if self._closed else f"{EVENT_QUEUE_SIZE} events are waiting"
                logger.warning("on_event: an event was dropped (%s; %d so far)", reason, self.dropped)
            _close(item)
            return
        self._queue.append(item)
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        queue = self._queue
        try:
            while queue:
                item = queue.popleft()
                await self._deliver(item)
        finally:
            self._worker = None

    async def _deliver(self, item: Event | Awaitable[object]) -> None:
        callback = self._callback
        assert callback is not None
        event: Event | None = None
        try:
            if inspect.isawaitable(item):
                await item
                return
            event = item
            outcome = callback(event)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as exc:
            if event is None:
                logger.error("on_event failed: %s", scrub(f"{type(exc).__name__}: {exc}", self._secret()))  # noqa: TRY400
            else:
                self._log_failure("on_event", event, exc)

    def _discard_queue(self) -> None:
        while self._queue:
            _close(self._queue.popleft())
            self.dropped += 1


def _close(item: object) -> None:
    """Close a coroutine that will never run (no "never awaited" warning)."""
    close = getattr(item, "close", None)
    if inspect.iscoroutine(item) and close is not None:
        close()
