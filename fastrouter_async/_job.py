"""VideoJob: the live handle of one submitted task (an entity: equal only to itself).

The handle holds the task's identity and what its submit answered; its life (polls, end,
waiters, slot) is a :class:`~._job_life.JobLife` of the session's engine. :func:`start_job`
and :func:`attach_job` make handles for the session and the batch.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import weakref
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import attrs

from ._job_events import JobEvents
from ._job_life import JobLife, attached, submitted
from ._models import Cost, JobStatus, SubmitEstimate, VideoRequest, VideoResult

if TYPE_CHECKING:
    from ._engine import Engine
    from ._slots import Slot
    from ._spend import SpendHold
    from ._submits import SubmitIdentity
    from ._submitter import SubmitHooks

__all__ = ["VideoJob", "attach_job", "handle", "start_job"]

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

    _life: JobLife = attrs.field(alias="life")

    def __attrs_post_init__(self) -> None:
        slot = self._life.slot
        if slot is not None:
            # A handle dropped without being awaited still gives its slot back.
            weakref.finalize(self, slot.release_from_any_thread, asyncio.get_running_loop())

    def __repr__(self) -> str:
        last = self._life.last_status
        state = last.describe() if last else "not polled yet"
        return f"<VideoJob task_id={self.task_id!r} model={self.model!r} {state}>"

    @property
    def task_id(self) -> str:
        """FastRouter's id for the task; keep it to re-attach later."""
        return self._life.task_id

    @property
    def model(self) -> str | None:
        """The model the task was submitted with (sent along with polls); for a job re-attached without it,
        ``None`` until a shared store tells it."""
        return self._life.model

    @property
    def request(self) -> VideoRequest | None:
        """The request, for jobs submitted by this session; ``None`` for re-attached ones."""
        return self._life.request

    @property
    def cache_key(self) -> str | None:
        """The ``cache_key`` its submit was sent with (``None``: replays off, or a re-attached job)."""
        return self._life.cache_key

    @property
    def found_again(self) -> bool | None:
        """True: a replay of a submit whose answer was lost found the job the first attempt had created
        (unbilled); False: created by this submit's attempt; None: unknown (e.g. a re-attached job)."""
        return self._life.found_again

    @property
    def submit_estimate(self) -> SubmitEstimate | None:
        """The cost the create answer stated; a job found again shows no credits: it is never a second cost."""
        return self._life.submit_estimate

    @property
    def submitted_at(self) -> datetime.datetime | None:
        """When FastRouter accepted the submit (aware, UTC); ``None`` for a job re-attached without it.

        Store it with the task id: ``session.job(task_id, model=..., submitted_at=...)``
        in another process then gets the same not-visible-yet grace window.
        """
        wall = self._life.submitted_wall
        if wall is None:
            return None
        return datetime.datetime.fromtimestamp(wall, datetime.UTC)

    @property
    def last_status(self) -> JobStatus | None:
        """The most recent snapshot (``None`` until the first poll answered)."""
        return self._life.last_status

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
        outcome = self._life.outcome
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
        return self._life.outcome is not None

    def __await__(self) -> Generator[Any, None, VideoResult]:
        return self.result().__await__()

    async def status(self) -> JobStatus:
        """Ask once how the task is doing: exactly one poll request, no retries.

        Inside the not-visible-yet window right after submit, a 404 comes back
        as a ``PENDING`` snapshot instead of :class:`NotFoundError`.
        """
        return await self._life.status()

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
        life = self._life
        return JobEvents(life, life.events, life.ended_event, owner=self)

    async def result(self, *, timeout: float | None = None) -> VideoResult:
        """Poll until the task ends; return its :class:`VideoResult`.

        Raises :class:`JobFailedError` when the generation failed and
        :class:`JobTimeoutError` (a ``TimeoutError``) when ``timeout`` seconds
        pass first; the task itself keeps running either way. Polls come from
        the session's shared poller, on the session's poll policy; several
        ``result()`` calls on one job share its polls.
        """
        return await self._life.result(timeout)


def handle(life: JobLife) -> VideoJob:
    """The public handle on ``life``."""
    return VideoJob(life)


async def start_job(
    engine: Engine,
    request: VideoRequest,
    slot: Slot | None,
    *,
    hooks: SubmitHooks | None = None,
    identity: SubmitIdentity | None = None,
    hold: SpendHold | None = None,
) -> VideoJob:
    """Submit an already validated request on an already acquired slot (released on failure): its handle."""
    return handle(await submitted(engine, request, slot, hooks=hooks, identity=identity, hold=hold))


def attach_job(
    engine: Engine,
    task_id: str,
    model: str | None,
    *,
    submitted_wall_time: float | None = None,
) -> VideoJob:
    """A handle on a task submitted earlier (not counted against the cap)."""
    return handle(attached(engine, task_id, model, submitted_wall_time=submitted_wall_time))
