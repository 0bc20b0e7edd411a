"""The engine: the one narrow interface the layers above use (jobs, batches, the session).

An :class:`Engine` holds the parts of one session, each owning one concern, built in one place
and closed in one order:

- ``api``: budgeted requests, one submit, one poll (``_api``);
- ``submitter``: the whole of a submit, never blindly retried (``_submitter``);
- ``slots``: ``max_concurrent_jobs`` and the jobs holding a slot (``_slots``);
- ``poller``: the shared poll schedule (``_poller``);
- ``fetcher``: downloads of results (``_fetch`` over ``_download``);
- ``record``: the record of submitted jobs (``_job_record``);
- ``events``, ``durations``, ``costs``: what the session tells, learns and spends.

It knows nothing of ``VideoJob``, ``BatchRun`` or ``FastRouterSession``. The slots, the request
budget and the record sit behind small interfaces: versions shared across processes replace the
in-process ones without touching the layers above.
"""

from __future__ import annotations

import functools
import math
import random
from typing import TYPE_CHECKING, Protocol

import anyio
import attrs

from ._api import Api
from ._budget import RequestBudget, Throttle
from ._config import PollPolicy, PollRoute, ReplayPolicy, RetryPolicy, Secret, Timeouts
from ._download import Downloader
from ._estimates import DurationEstimates
from ._event_hub import EventHub, announcing
from ._fetch import Fetcher
from ._job_record import MemoryJobRecord
from ._otel import Telemetry
from ._poller import Poller
from ._sharing import Sharing
from ._slots import JobSlots, Slot
from ._spend import SessionCosts
from ._stores import DEFAULT_LEASE
from ._submits import AcceptedCallback, Announcer
from ._submitter import Submitter
from ._transport import Transport

if TYPE_CHECKING:
    import aiohttp

    from ._models import VideoRequest

__all__ = ["CLOSED_MESSAGE", "Closable", "Engine", "EngineSettings"]

CLOSED_MESSAGE = "this FastRouterSession is closed; create a new one (jobs can be re-attached by task id)"


class Closable(Protocol):
    """Something left open on the engine (a batch) that its closing closes first."""

    async def aclose(self) -> None: ...


@attrs.frozen(kw_only=True)
class EngineSettings:
    """What the session checked and hands the engine."""

    secret: Secret
    base_url: str
    poll_route: PollRoute
    timeouts: Timeouts
    poll_policy: PollPolicy
    retry_policy: RetryPolicy
    replay_policy: ReplayPolicy
    budget: RequestBudget | None
    max_concurrent_jobs: int | None
    max_concurrent_downloads: int | None
    max_download_bytes: int | None
    allow_link_local_downloads: bool
    on_accepted: AcceptedCallback | None
    on_accepted_timeout: float
    telemetry: bool
    telemetry_prompts: bool
    store: str | None = attrs.field(default=None, repr=False)  # a Redis URL may carry a password
    """The URL of a store shared with other processes (``None``: everything in this process)."""
    store_lease: float = DEFAULT_LEASE
    """Seconds a store's lease (a job slot, a download) lasts unrenewed; a watch lease lasts this plus
    the poll policy's ``max_interval``."""


class Engine:
    """The parts of one session (see the module docstring)."""

    def __init__(
        self,
        settings: EngineSettings,
        *,
        events: EventHub,
        costs: SessionCosts,
        http_session: aiohttp.ClientSession | None,
    ) -> None:
        retry_policy = settings.retry_policy
        self.poll_policy = settings.poll_policy
        self.retry_policy = retry_policy
        self.replay_policy = settings.replay_policy
        self.budget = settings.budget
        self.events = events
        self.costs = costs
        self.rng = random.Random()
        self.closed = False
        self.used = False  # set by the first use; an unused session needs no closing
        self.open_batches: set[Closable] = set()
        self.durations = DurationEstimates(scale=settings.poll_policy.duration_scale)
        self.record = MemoryJobRecord()
        self.transport = Transport(
            base_url=settings.base_url, secret=settings.secret, timeouts=settings.timeouts, http_session=http_session
        )
        self.throttle = Throttle(settings.budget, first_pause=retry_policy.base_delay, max_pause=retry_policy.max_delay)
        self.api = Api(
            transport=self.transport,
            secret=settings.secret,
            base_url=settings.base_url,
            poll_route=settings.poll_route,
            throttle=self.throttle,
            retry_policy=retry_policy,
            rng=self.rng,
            events=events,
            ensure_open=self.ensure_open,
        )
        self.sharing = (
            None
            if settings.store is None
            else Sharing(
                settings.store,
                api_key=settings.secret.reveal,
                capacity=settings.max_concurrent_jobs,
                budget=settings.budget,
                lease=settings.store_lease,
                watch_ttl=settings.store_lease + settings.poll_policy.max_interval,
                durations=self.durations if settings.poll_policy.learn else None,
            )
        )
        self.api.sharing = self.sharing
        self.slots = JobSlots(settings.max_concurrent_jobs)
        self.submitter = Submitter(
            self.api,
            self.slots,
            announcer=Announcer(
                announcing(events, settings.on_accepted, self.estimated_seconds),  # sends JobSubmitted first
                timeout=settings.on_accepted_timeout,
                secret=settings.secret.reveal,
            ),
            replay_policy=settings.replay_policy,
            rng=self.rng,
            hold=costs.hold,
            acquire=self.acquire_slot,
            sharing=self.sharing,
        )
        self.poller = Poller(events, retry_policy=retry_policy, rng=self.rng)
        self.downloader = Downloader(
            self.transport,
            retry_policy=retry_policy,
            rng=self.rng,
            max_concurrent=settings.max_concurrent_downloads,
            max_bytes=settings.max_download_bytes,
            allow_link_local=settings.allow_link_local_downloads,
        )
        self.fetcher = Fetcher(self.api, self.downloader, events, self.ensure_open)
        self.telemetry = Telemetry.start(
            events,
            self.transport,
            submit_url=self.api.submit_url,
            enabled=settings.telemetry,
            prompts=settings.telemetry_prompts,
        )

    def ensure_open(self) -> None:
        """Raise ``RuntimeError`` once closed; marks the session used."""
        if self.closed:
            raise RuntimeError(CLOSED_MESSAGE)
        self.used = True

    async def acquire_slot(self) -> Slot | None:
        """A job slot (``None`` without ``max_concurrent_jobs``); ``RuntimeError`` if the session closed meanwhile."""
        slot = await self.slots.acquire()
        sharing = self.sharing
        if slot is not None and sharing is not None and sharing.limits_jobs:
            try:
                with self.slots.waiting_elsewhere():
                    holder = await sharing.acquire_slot(self.slots.watch_holders)
            except BaseException:
                slot.release()
                raise
            slot.share(holder, functools.partial(sharing.release_slot, holder))
        if self.closed:
            if slot is not None:
                slot.release()
            self.ensure_open()
        return slot

    def estimated_seconds(self, model: str, request: VideoRequest) -> float:
        """The learned median duration of a job like ``request`` (for ``JobSubmitted``)."""
        return math.exp(self.durations.log_normal(model, request)[0])

    async def aclose(self) -> None:
        """Close every part, in order: batches left open, slots, polls, events, telemetry, HTTP. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.slots.close()  # wakes every submit waiting for a slot
        with anyio.CancelScope(shield=True):
            for batch in list(self.open_batches):  # batches left open: stopped cleanly, journals closed
                await batch.aclose()
            await self.poller.aclose()  # result() calls still waiting get the RuntimeError of a closed session
            await self.events.aclose()  # an async on_event finishes the queued events (bounded)
            if self.sharing is not None:
                await self.sharing.aclose()  # leases given back: other processes take over at once
            if self.telemetry is not None:
                self.telemetry.close()  # spans of jobs nobody saw end are ended as such
            await self.transport.aclose()
