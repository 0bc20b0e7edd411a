"""``job.events()``: an async iterator over one job's events, ending with its ``JobEnded``."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Final, Protocol

from ._events import Event, JobEnded

if TYPE_CHECKING:
    from ._event_hub import EventHub


class FollowedJob(Protocol):
    """The job an events iterator follows."""

    @property
    def task_id(self) -> str: ...

    @property
    def ended(self) -> bool: ...

    async def until_event(self, arrived: asyncio.Future[None]) -> None:
        """Keep the job polled until ``arrived`` resolves or the job ends (raises what ends the wait)."""


__all__ = ["JOB_EVENTS_BUFFER", "JobEvents"]

JOB_EVENTS_BUFFER: Final = 256
# Events kept for an iterator that has not taken them yet. A job changes status a handful of
# times; this only fills when the loop body is stuck for many polls, and then the oldest go.


class JobEvents:
    """The events of one job as they happen (see :meth:`VideoJob.events`)."""

    __slots__ = ("_arrived", "_buffer", "_finished", "_job", "_owner", "_unfollow")

    def __init__(self, job: FollowedJob, hub: EventHub, ended: JobEnded | None, *, owner: object = None) -> None:
        self._job = job
        self._owner = owner  # the handle iterated, kept alive while its events are followed
        self._buffer: deque[Event] = deque(maxlen=JOB_EVENTS_BUFFER)
        self._arrived: asyncio.Future[None] | None = None
        self._finished = False
        if ended is not None:
            self._buffer.append(ended)
            self._unfollow = None
        else:
            self._unfollow = hub.follow(job.task_id, self._push)

    def __aiter__(self) -> JobEvents:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._buffer:
                event = self._buffer.popleft()
                if isinstance(event, JobEnded):
                    self.close()
                return event
            if self._finished or self._job.ended:
                self.close()
                raise StopAsyncIteration
            arrived = self._arrived = asyncio.get_running_loop().create_future()
            try:
                await self._job.until_event(arrived)
            finally:
                self._arrived = None

    def close(self) -> None:
        """Stop following the job (iteration then ends once the buffered events are taken)."""
        self._finished = True
        if self._unfollow is not None:
            self._unfollow()
            self._unfollow = None

    def _push(self, event: Event) -> None:
        self._buffer.append(event)
        arrived = self._arrived
        if arrived is not None and not arrived.done():
            arrived.set_result(None)
