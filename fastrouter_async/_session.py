"""FastRouterSession: owns the HTTP session, the job limiter and the policies."""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import math
import os
import random
import time
import warnings
import weakref
from collections.abc import Callable, Hashable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

import anyio

from ._answers import detached, poll_outcome, submit_outcome
from ._batch import BatchRun, output_dir_path, prepare_requests
from ._batch_spend import BatchSpend
from ._budget import RequestBudget, Throttle, coerce_budget
from ._catalog import Price
from ._catalog_cache import cached_catalog
from ._concurrency import JobCap, is_concurrency_limit, is_concurrency_limit_error
from ._config import (
    DEFAULT_MAX_CONCURRENT_DOWNLOADS,
    DEFAULT_MAX_CONCURRENT_JOBS,
    DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_POLL_POLICY,
    DEFAULT_REPLAY_POLICY,
    DEFAULT_RETRY_POLICY,
    DEFAULT_TIMEOUTS,
    PollPolicy,
    PollRoute,
    ReplayPolicy,
    RetryPolicy,
    Timeouts,
    check_wait_timeout,
    resolve_api_key,
    resolve_base_url,
)
from ._costs import SpendEstimate
from ._download import Downloader, DownloadProgress
from ._errors import (
    APIConnectionError,
    DownloadError,
    FastRouterError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    SubmitUncertainError,
    UnexpectedResponseError,
)
from ._estimates import DurationEstimates
from ._event_hub import EventCallback, EventHub, announcing, check_on_event, polling_task
from ._events import DownloadFinished, DownloadProgressed, RateLimited
from ._job import VideoJob
from ._models import AcceptedJob, DownloadedFile, JobState, JobStatus, VideoRequest, VideoResult
from ._otel import Telemetry
from ._poller import Poller, PollerStatistics
from ._protocol import (
    HttpCall,
    Response,
    SubmitAccepted,
    poll_call,
    retry_after_seconds,
    submit_call,
    submit_estimate,
)
from ._replays import SubmitAttempts, found_again, replaying
from ._retry import RetryCounter, is_transient, retrying
from ._spend import SessionCosts, SpendHold, SpendLedger, check_cap
from ._submits import (
    DEFAULT_ON_ACCEPTED_TIMEOUT,
    AcceptedCallback,
    Announcer,
    SubmitIdentity,
    SubmitWin,
    check_on_accepted,
    complete_despite_cancellation,
    submitted_wall_time,
)
from ._transport import Transport, loggable
from ._validate import validate as validate_request

if TYPE_CHECKING:
    import aiohttp

__all__ = ["FastRouterSession"]

logger = logging.getLogger("fastrouter_async")

_PARSE_IN_THREAD_BYTES = 256 * 1024
# Status answers are a few hundred bytes and parse in microseconds. One that carries the video
# inline (base64) can be megabytes: parsing it on the event loop would stall every other job.


class SubmitHooks(Protocol):
    """What a batch journal needs to hear about one submit (internal)."""

    async def before_send(self, attempt: int) -> None:
        """Called before each attempt is sent (0: the first; 1..n: replays with the same cache key);
        the intent must be durable when it returns."""

    async def accepted(self, task_id: str, *, found_again: bool | None) -> None:
        """Called with the task id, even when the caller has been cancelled meanwhile; ``found_again``
        tells whether a replay found the job an earlier attempt created (see ``VideoJob.found_again``)."""

    async def not_created(self, reason: str) -> None:
        """Called when an attempt definitely created no job."""


class _Slot:
    """One unit of ``max_concurrent_jobs``, held by one job and released exactly once."""

    __slots__ = ("__weakref__", "_limiter", "_released")

    def __init__(self, limiter: anyio.CapacityLimiter) -> None:
        self._limiter = limiter
        self._released = False

    @property
    def released(self) -> bool:
        return self._released

    async def acquire(self) -> None:
        await self._limiter.acquire_on_behalf_of(self)

    def acquire_nowait(self) -> None:
        """Take the slot at once, or raise ``anyio.WouldBlock``."""
        self._limiter.acquire_on_behalf_of_nowait(self)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limiter.release_on_behalf_of(self)

    def release_from_any_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called by the garbage collector when a job handle is dropped."""
        if self._released:
            return
        if loop.is_closed():
            self._released = True
            return
        try:
            if _running_loop() is loop:
                self.release()
            else:
                loop.call_soon_threadsafe(self.release)
        except RuntimeError:  # the loop closed in between: nothing left to wake
            self._released = True


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class FastRouterSession:
    """An async session with FastRouter's video API.

    ::

        async with FastRouterSession(max_concurrent_jobs=8) as session:
            job = await session.submit(model="google/veo3", prompt="a cat surfing", length=8)
            video = await job
            await video.download("out/cat.mp4")

    ``api_key`` falls back to ``FASTROUTER_API_KEY`` and ``base_url`` to
    ``FASTROUTER_BASE_URL``; both are read here, once. ``max_concurrent_jobs``
    bounds the jobs in flight (from submit until the job is seen to end); a
    ``submit`` beyond it waits for a slot (``None``: no bound).
    ``max_concurrent_downloads`` separately bounds the downloads streaming at
    once, and ``max_download_bytes`` (default 8 GiB; ``None``: no bound)
    refuses any video larger than that many bytes. Download links (and
    their redirects) to link-local and cloud-metadata addresses are refused
    unless ``allow_link_local_downloads=True``. Pass
    ``http_session`` to use your own ``aiohttp.ClientSession``: it is then
    never closed by this session. ``request_budget`` (a :class:`RequestBudget`
    or requests per second) paces every submit and poll of the session; with
    or without one, a 429 slows the whole session, not just one job, except a
    submit's "too many jobs at once", which lowers the cap on jobs in flight
    (``effective_max_concurrent_jobs``) instead.

    ``on_accepted`` (a function, sync or async, taking an :class:`AcceptedJob`)
    hears of every submit FastRouter accepted, before ``submit()`` returns, and
    also when its caller was cancelled meanwhile: write the task id to durable
    storage there and no paid job is ever lost. An async callback is awaited for
    at most ``on_accepted_timeout`` seconds; its errors are logged, never raised.

    ``replay_policy`` (a :class:`ReplayPolicy`) makes submits exactly-once: each
    carries a ``cache_key``, and one whose answer was lost is sent again with the
    same key, which FastRouter's response cache answers with the same task,
    unbilled (``ReplayPolicy(enabled=False)``: no key, no replays).

    ``on_event`` (a function, sync or async) hears every :data:`Event` of the
    session: submits, status changes, retried polls, 429s, download progress,
    downloads finished and job ends (docs/observability.md). A sync one is called
    inline, in order; an async one runs on a task of the session, one event at a
    time and in order, never holding up polling. Its errors are logged, never raised.
    With ``opentelemetry-api`` installed and an SDK configured, each job is traced
    and measured (``telemetry=False`` turns it off; ``telemetry_prompts=True``
    adds prompts to the spans).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        max_concurrent_jobs: int | None = DEFAULT_MAX_CONCURRENT_JOBS,
        poll_policy: PollPolicy = DEFAULT_POLL_POLICY,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        poll_route: PollRoute | str = PollRoute.GET_VIDEO_RESPONSE,
        validate: bool = True,
        request_budget: RequestBudget | float | None = None,
        http_session: aiohttp.ClientSession | None = None,
        max_concurrent_downloads: int | None = DEFAULT_MAX_CONCURRENT_DOWNLOADS,
        max_download_bytes: int | None = DEFAULT_MAX_DOWNLOAD_BYTES,
        allow_link_local_downloads: bool = False,
        on_accepted: AcceptedCallback | None = None,
        on_accepted_timeout: float = DEFAULT_ON_ACCEPTED_TIMEOUT,
        replay_policy: ReplayPolicy = DEFAULT_REPLAY_POLICY,
        on_event: EventCallback | None = None,
        telemetry: bool = True,
        telemetry_prompts: bool = False,
        max_spend_usd: float | None = None,
        unknown_price_usd: float | None = None,
    ) -> None:
        self._costs = SessionCosts(
            cap_usd=check_cap("max_spend_usd", max_spend_usd),
            unknown_price_usd=check_cap("unknown_price_usd", unknown_price_usd),
            listed=_listed_prices,
        )
        self._secret = resolve_api_key(api_key)
        on_accepted, on_accepted_timeout = check_on_accepted(on_accepted, on_accepted_timeout)
        self._events = EventHub(check_on_event(on_event), secret=self._secret.reveal)
        self._announcer = Announcer(
            announcing(self._events, on_accepted, self._estimated_seconds),  # sends JobSubmitted first
            timeout=on_accepted_timeout,
            secret=self._secret.reveal,
        )
        self._base_url = resolve_base_url(base_url)
        if max_concurrent_jobs is not None and (
            not isinstance(max_concurrent_jobs, int) or isinstance(max_concurrent_jobs, bool) or max_concurrent_jobs < 1
        ):
            raise InvalidRequestError(
                "max_concurrent_jobs", max_concurrent_jobs, "an integer >= 1, or None for no bound"
            )
        for limit_name, limit, allowed in (
            ("max_concurrent_downloads", max_concurrent_downloads, "an integer >= 1, or None for no bound"),
            ("max_download_bytes", max_download_bytes, "a number of bytes >= 1, or None for no bound"),
        ):
            if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
                raise InvalidRequestError(limit_name, limit, allowed)
        if not isinstance(allow_link_local_downloads, bool):
            raise InvalidRequestError("allow_link_local_downloads", allow_link_local_downloads, "True or False")
        for name, value, cls in (
            ("poll_policy", poll_policy, PollPolicy),
            ("retry_policy", retry_policy, RetryPolicy),
            ("timeouts", timeouts, Timeouts),
            ("replay_policy", replay_policy, ReplayPolicy),
        ):
            if not isinstance(value, cls):
                raise InvalidRequestError(name, value, f"a {cls.__name__} instance")
        self._max_concurrent_jobs = max_concurrent_jobs
        self._job_cap = JobCap(max_concurrent_jobs)
        self._budget = coerce_budget(request_budget)
        self._throttle = Throttle(self._budget, first_pause=retry_policy.base_delay, max_pause=retry_policy.max_delay)
        self._poll_policy = poll_policy
        self._retry_policy = retry_policy
        self._replay_policy = replay_policy
        self._poll_route = _poll_route(poll_route)
        self._validate = validate
        self._transport = Transport(
            base_url=self._base_url, secret=self._secret, timeouts=timeouts, http_session=http_session
        )
        self._submit_url = f"{self._base_url}/videos"  # submit_call's URL: its 429s may be about jobs, not requests
        self._limiter: anyio.CapacityLimiter | None = None
        self._slot_holders: weakref.WeakSet[VideoJob] = weakref.WeakSet()
        self._poller = Poller(self)
        self._durations = DurationEstimates(scale=poll_policy.duration_scale)
        self._batches: set[BatchRun] = set()
        self._closed = False
        self._used = False  # set by the first use; an unused session needs no closing
        self._rng = random.Random()
        self._downloader = Downloader(
            self._transport,
            retry_policy=retry_policy,
            rng=self._rng,
            max_concurrent=max_concurrent_downloads,
            max_bytes=max_download_bytes,
            allow_link_local=allow_link_local_downloads,
        )
        self._telemetry = Telemetry.start(
            self._events, self._transport, submit_url=self._submit_url, enabled=telemetry, prompts=telemetry_prompts
        )

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._ensure_open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session (and its aiohttp session, unless it was handed in). Idempotent.

        Submits still waiting for a slot fail with ``RuntimeError``; jobs keep
        their task ids and can be re-attached from a new session.
        """
        if self._closed:
            return
        self._closed = True
        if self._limiter is not None:
            self._limiter.total_tokens = math.inf  # wakes every submit waiting for a slot
        with anyio.CancelScope(shield=True):
            for batch in list(self._batches):  # batches left open: stopped cleanly, journals closed
                await batch.aclose()
            await self._poller.aclose()  # result() calls still waiting get the RuntimeError of a closed session
            await self._events.aclose()  # an async on_event finishes the queued events (bounded)
            if self._telemetry is not None:
                self._telemetry.close()  # spans of jobs nobody saw end are ended as such
            await self._transport.aclose()

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        # Only warns: closing needs the event loop, which a finalizer must not touch (as svcs and aiohttp do).
        if getattr(self, "_used", False) and not getattr(self, "_closed", True):
            base_url = getattr(self, "_base_url", "?")
            _warn(
                f"unclosed FastRouterSession (base_url={base_url!r}): "
                "use `async with FastRouterSession(...)` or `await session.aclose()`",
                ResourceWarning,
                source=self,
            )

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def max_concurrent_jobs(self) -> int | None:
        return self._max_concurrent_jobs

    @property
    def request_budget(self) -> RequestBudget | None:
        return self._budget

    @property
    def rate_limited(self) -> int:
        """How many "too many requests" 429 answers this session has received (each slowed the whole session)."""
        return self._throttle.rate_limited

    @property
    def concurrency_limited(self) -> int:
        """How many submits were refused with "too many jobs at once" (each lowered the job cap instead)."""
        return self._job_cap.times_limited

    @property
    def effective_max_concurrent_jobs(self) -> int | None:
        """The cap on jobs in flight right now: ``max_concurrent_jobs``, lowered while FastRouter
        refuses submits with "too many jobs at once" and restored as submits are accepted again."""
        return self._job_cap.current

    @property
    def jobs_in_flight(self) -> int:
        """Jobs submitted by this session that hold a slot (not yet seen to end)."""
        return 0 if self._limiter is None else int(self._limiter.borrowed_tokens)

    @property
    def submits_waiting(self) -> int:
        """Submits currently waiting for a slot (backpressure: the cap is reached)."""
        return 0 if self._limiter is None else self._limiter.statistics().tasks_waiting

    @property
    def max_concurrent_downloads(self) -> int | None:
        return self._downloader.max_concurrent

    @property
    def max_download_bytes(self) -> int | None:
        return self._downloader.max_bytes

    @property
    def downloads_in_flight(self) -> int:
        """Download requests of this session streaming right now (bounded by ``max_concurrent_downloads``)."""
        return self._downloader.in_flight

    @property
    def poll_policy(self) -> PollPolicy:
        return self._poll_policy

    @property
    def replay_policy(self) -> ReplayPolicy:
        """How submits whose answer was lost are sent again with the same cache key (exactly-once submits)."""
        return self._replay_policy

    def poller_statistics(self) -> PollerStatistics:
        """How the shared poller keeps up with its schedule: jobs scheduled, polls, lateness, ``behind``."""
        return self._poller.statistics()

    def export_durations(self) -> dict[str, Any]:
        """What this session has learned about how long jobs take, as JSON-ready data.

        Save it (``json.dump``) and hand it to :meth:`import_durations` of a later
        session, so that its polling starts warm instead of from the priors.
        Durations are in seconds as measured (a time-scaled simulator's, if that
        is what ran the jobs).
        """
        return self._durations.export()

    def import_durations(self, data: Mapping[str, Any]) -> int:
        """Take over durations exported by :meth:`export_durations`; returns how many estimates were loaded.

        An estimate for a model and length replaces this session's own for that key.
        Malformed data raises :class:`InvalidRequestError` naming the field, and loads nothing.
        """
        return self._durations.load(data)

    # --- costs ------------------------------------------------------------------------------

    def estimate(
        self, requests: VideoRequest | Mapping[str, Any] | Iterable[VideoRequest | Mapping[str, Any]]
    ) -> SpendEstimate:
        """What ``requests`` (one request, or many) will cost, before anything is sent (docs/costs.md).

        Each request is validated, then estimated from the best source that knows its price: what
        this session (or an earlier one, see :meth:`import_costs`) paid for the same model and
        parameters, FastRouter's cached model list (``fastrouter-video models --refresh``), the
        shipped dated price table, else ``"unknown"`` (never a guessed figure). Sends nothing.
        """
        if isinstance(requests, VideoRequest | Mapping):
            requests = [requests]
        return self._costs.estimate(prepare_requests(requests, check=self._validate))

    @property
    def max_spend_usd(self) -> float | None:
        """The spend cap in US dollars (``None``: no cap)."""
        ledger = self._costs.ledger
        return None if ledger is None else ledger.cap_usd

    @property
    def spent_usd(self) -> float:
        """Final costs of the jobs of this session that ended under the cap (0 without a cap)."""
        ledger = self._costs.ledger
        return 0.0 if ledger is None else ledger.spent

    @property
    def reserved_usd(self) -> float:
        """Estimates reserved for jobs of this session not ended yet (0 without a cap)."""
        ledger = self._costs.ledger
        return 0.0 if ledger is None else ledger.reserved

    def export_costs(self) -> dict[str, Any]:
        """What this session's finished jobs cost, by model and parameters, as JSON-ready data
        (hand it to :meth:`import_costs` of a later session: its estimates then use it)."""
        return self._costs.paid.export()

    def import_costs(self, data: Mapping[str, Any]) -> int:
        """Take over costs exported by :meth:`export_costs`; returns how many were loaded
        (malformed data raises :class:`InvalidRequestError` and loads nothing)."""
        return self._costs.paid.load(data)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<FastRouterSession {state} base_url={self._base_url!r} "
            f"max_concurrent_jobs={self._max_concurrent_jobs} jobs_in_flight={self.jobs_in_flight}>"
        )

    def _ensure_open(self) -> None:
        if self._closed:
            raise RuntimeError(
                "this FastRouterSession is closed; create a new one (jobs can be re-attached by task id)"
            )
        self._used = True

    # --- submitting -----------------------------------------------------------------------

    async def submit(
        self,
        request: VideoRequest | None = None,
        /,
        *,
        model: str | None = None,
        prompt: str | None = None,
        image: str | None = None,
        length: int | None = None,
        seconds: int | None = None,
        resolution: str | None = None,
        aspect_ratio: str | None = None,
        size: str | None = None,
        mode: str | None = None,
        seed: int | None = None,
        generate_audio: bool | None = None,
        cache_key: str | None = None,
        **extra: Any,
    ) -> VideoJob:
        """Submit one generation task and return its :class:`VideoJob`.

        Pass keyword arguments, or one :class:`VideoRequest`. The request is
        validated before anything is sent (:class:`InvalidRequestError`). Waits
        for a slot when ``max_concurrent_jobs`` jobs are in flight.

        The submit creates a paid job, so it is retried only when no job can
        have been created (the connection failed before sending; 429). Every
        submit carries a ``cache_key`` (``cache_key=``, yours for this job, or
        a fresh one): when the answer is lost after sending (timeout, 5xx,
        broken connection) the same request is sent again with the same key,
        and FastRouter's response cache answers the task the first attempt
        created, unbilled, or creates it once if it never arrived (see
        :class:`ReplayPolicy`). Past the replay window, or with replays off,
        :class:`SubmitUncertainError` is raised and nothing is resubmitted.
        """
        fields = {
            "model": model,
            "prompt": prompt,
            "image": image,
            "length": length,
            "seconds": seconds,
            "resolution": resolution,
            "aspect_ratio": aspect_ratio,
            "size": size,
            "mode": mode,
            "seed": seed,
            "generate_audio": generate_audio,
            "cache_key": cache_key,
        }
        if request is not None:
            given = sorted([k for k, v in fields.items() if v is not None] + list(extra))
            if given:
                raise TypeError(f"pass either a VideoRequest or keyword arguments, not both (got {', '.join(given)})")
            if not isinstance(request, VideoRequest):
                raise TypeError(f"submit() takes a VideoRequest, not {type(request).__name__}")
        else:
            request = _request_from_fields(fields, extra)
        if self._validate:
            validate_request(request)
        self._ensure_open()
        return await self._start_job(request, await self._acquire_slot(), None)

    async def _start_job(
        self,
        request: VideoRequest,
        slot: _Slot | None,
        hooks: SubmitHooks | None,
        identity: SubmitIdentity | None = None,
        hold: SpendHold | None = None,
    ) -> VideoJob:
        """Submit an already validated request on an already acquired slot (released on failure).

        ``identity`` is the job's cache key and the time of its first attempt (a resumed batch job);
        ``None``: the request's own ``cache_key``, or a fresh one, first sent now.

        A submit refused with "too many jobs at once" lowers the job cap, gives its slot
        back, waits for a slot under the lower cap (and a backoff), and tries again.
        """
        if hold is None:
            try:
                hold = self._costs.hold(request)  # reserved before anything is sent (spend caps)
            except BaseException:
                if slot is not None:
                    slot.release()
                raise
        refusals = RetryCounter(self._retry_policy)
        attempts = SubmitAttempts.start(request, identity, self._replay_policy)  # one key for every attempt
        while True:
            try:
                accepted = await self._submit_with_retries(request, hooks, attempts)
                break
            except RateLimitError as exc:
                if not is_concurrency_limit_error(exc):
                    if slot is not None:
                        slot.release()
                    if hold is not None and attempts.replays == 0:
                        hold.release()  # refused before any replay: no job was created
                    raise
                self._set_job_cap(self._job_cap.limited(self.jobs_in_flight))  # this submit's slot counts
                if slot is not None:
                    slot.release()
                    slot = None
                delay = refusals.delay_after(exc, self._rng, transient=True)
                if delay is None:
                    raise
                logger.warning(
                    "submit of %s: too many jobs at once (%s); at most %s in flight from now on, retrying in %.2fs",
                    request.describe(),
                    exc.message,
                    self._job_cap.current if self._job_cap.current is not None else "any number",
                    delay,
                )
                await anyio.sleep(delay)
                slot = await self._acquire_slot()
            except BaseException as exc:
                if slot is not None:
                    slot.release()
                refused = isinstance(exc, FastRouterError) and not isinstance(exc, SubmitUncertainError)
                if hold is not None and refused and attempts.replays == 0:
                    # Refused: no job was created. An uncertain submit, or one refused on a replay (an
                    # earlier attempt may have created the job), stays reserved.
                    hold.release()
                raise
        self._set_job_cap(self._job_cap.accepted())
        logger.info("submitted %s as task %s", request.describe(), accepted.task_id)
        job = VideoJob(
            accepted.task_id,
            request.model,
            request,
            session=self,
            submitted_at=anyio.current_time(),
            submitted_wall=accepted.submitted_at.timestamp(),
            slot=slot,
            cache_key=accepted.cache_key,
            found_again=accepted.found_again,
            submit_estimate=accepted.submit_estimate,
            spend_hold=hold,
        )
        if hold is not None and accepted.found_again and identity is None and attempts.replays == 0:
            hold.settle(0.0)  # a cache hit on a job another submit created (and paid for): this one is free
        if slot is not None:
            self._slot_holders.add(job)
        return job

    def _attach(
        self,
        task_id: str,
        model: str | None,
        request: VideoRequest | None,
        slot: _Slot | None,
        *,
        submitted_wall_time: float | None = None,
        spend_hold: SpendHold | None = None,
    ) -> VideoJob:
        """Re-attach to a task submitted earlier, counting it against the cap with ``slot``.

        With the wall-clock time of the submit, a 404 within the not-visible-yet grace
        window after it still counts as "pending" (the task may simply not be visible yet).
        """
        submitted_at = None
        if submitted_wall_time is not None:
            submitted_at = anyio.current_time() - max(0.0, time.time() - submitted_wall_time)
        job = VideoJob(
            task_id,
            model,
            request,
            session=self,
            slot=slot,
            submitted_at=submitted_at,
            submitted_wall=submitted_wall_time,
            spend_hold=spend_hold,
        )
        if slot is not None:
            self._slot_holders.add(job)
        return job

    def job(
        self, task_id: str, *, model: str | None = None, submitted_at: float | datetime.datetime | None = None
    ) -> VideoJob:
        """A handle on an existing task, e.g. one submitted before a restart or by another worker.

        Pass the ``model`` it was submitted with: FastRouter's status routes
        want it for non-``fr_`` task ids. Pass ``submitted_at`` (a unix timestamp
        or an aware ``datetime``: ``VideoJob.submitted_at`` or
        ``AcceptedJob.submitted_at`` of the submit) and a 404 within the
        not-visible-yet grace window after it counts as "pending", as it does
        for the submitting session; without it a 404 raises ``NotFoundError`` at
        once. Re-attached jobs do not count against ``max_concurrent_jobs``.
        """
        if not isinstance(task_id, str) or not task_id.strip():
            raise InvalidRequestError("task_id", task_id, "the non-empty task id returned by submit")
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise InvalidRequestError("model", model, "the model id the task was submitted with, or None")
        wall = submitted_wall_time(submitted_at)
        self._ensure_open()
        return self._attach(task_id.strip(), model, None, None, submitted_wall_time=wall)

    async def generate(self, request: VideoRequest | None = None, /, **kwargs: Any) -> VideoResult:
        """Submit and wait: ``await session.generate(model=..., prompt=...)``."""
        job = await self.submit(request, **kwargs)
        return await job.result()

    def generate_many(
        self,
        requests: Iterable[VideoRequest | Mapping[str, Any]],
        *,
        output_dir: str | os.PathLike[str] | None = None,
        filename: Callable[[int, VideoRequest], str] | None = None,
        journal: str | os.PathLike[str] | None = None,
        resubmit_uncertain: bool = False,
        retry_failed: bool = False,
        timeout: float | None = None,
        max_spend_usd: float | None = None,
    ) -> BatchRun:
        """Generate many videos; iterate the answer for one :class:`BatchOutcome` per request, as each ends.

        ::

            async with session.generate_many(requests, output_dir="videos", journal="videos/journal.sqlite") as batch:
                async for outcome in batch:
                    print(outcome.index, outcome.status.value, outcome.file or outcome.error)

        ``requests`` holds :class:`VideoRequest` objects or mappings of submit
        fields; all are validated before anything is sent. Jobs in flight stay
        under ``max_concurrent_jobs``; one failing job never stops the others.
        With ``output_dir`` each video is downloaded there (``filename(index,
        request)`` names it; default ``0001-the-prompt.mp4``). With ``journal``
        (a SQLite file) each job's life is recorded, and running the same batch
        again resumes it: finished jobs are skipped, submitted jobs re-attached,
        never-submitted jobs submitted, and jobs whose submit outcome is unknown
        reported as ``UNCERTAIN`` and left alone unless ``resubmit_uncertain``.
        Jobs that failed in an earlier run are reported again unless
        ``retry_failed``. ``timeout`` bounds each job's wait for its result.
        ``max_spend_usd`` caps what the batch's jobs may cost, counting earlier runs of the same
        journal (docs/costs.md): a job that would exceed it is not sent, nor is any after it
        (``NOT_SENT``, ``stopped_by`` is the :class:`SpendCapError`).
        """
        self._ensure_open()
        prepared = prepare_requests(requests, check=self._validate)
        check_wait_timeout(timeout)
        cap = check_cap("max_spend_usd", max_spend_usd)
        if filename is not None and not callable(filename):
            raise InvalidRequestError("filename", filename, "a function (index, request) -> file name, or None")
        if journal is not None and not isinstance(journal, str | os.PathLike):
            raise InvalidRequestError("journal", journal, "a file path for the SQLite journal, or None")
        return BatchRun(
            self,
            prepared,
            output_dir=output_dir_path(output_dir),
            filename=filename,
            journal=None if journal is None else Path(journal),
            resubmit_uncertain=bool(resubmit_uncertain),
            retry_failed=bool(retry_failed),
            timeout=timeout,
            spend=BatchSpend(cap, self._costs.estimate(prepared)),
        )

    def _spend_hold(self, request: VideoRequest, ledger: SpendLedger, key: Hashable) -> SpendHold | None:
        """Reserve ``request``'s estimate in a batch's ``ledger`` and under the session's cap
        (:class:`SpendCapError` when either would be exceeded)."""
        return self._costs.hold(request, ledger, key, track_unknown=not math.isfinite(ledger.cap_usd))

    def _set_job_cap(self, cap: int | None) -> None:
        """Apply a new effective job cap (``None``: unchanged); jobs in flight above it are not touched."""
        if cap is not None and self._limiter is not None and not self._closed:
            self._limiter.total_tokens = cap  # a higher cap wakes submits waiting for a slot

    async def _acquire_slot(self) -> _Slot | None:
        if self._max_concurrent_jobs is None:
            return None
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._job_cap.current or self._max_concurrent_jobs)
        slot = _Slot(self._limiter)
        try:
            slot.acquire_nowait()
        except anyio.WouldBlock:
            self._watch_slot_holders()
            await slot.acquire()
        if self._closed:
            slot.release()
            self._ensure_open()
        return slot

    def _watch_slot_holders(self) -> None:
        """A submit is about to wait for a slot: have the poller find out which jobs ended.

        A slot is freed when a poll sees its job end. When the caller submits several
        jobs before awaiting any, nothing would poll them and the next submit would
        wait forever; so while a submit waits, the poller also polls, on their normal
        schedule, the jobs that hold slots (and drops them again, unpolled, once no
        submit waits any more).
        """
        now = anyio.current_time()
        for job in list(self._slot_holders):
            if job._holds_slot and not self._poller.is_scheduled(job):
                self._poller.schedule(job, max(now, job._due_at()))

    async def _submit_with_retries(
        self,
        request: VideoRequest,
        hooks: SubmitHooks | None = None,
        attempts: SubmitAttempts | None = None,
    ) -> AcceptedJob:
        """Submit ``request``: retried while no job can have been created, replayed with the same
        cache key when an answer is lost (see ``_replays``), else :class:`SubmitUncertainError`."""
        if attempts is None:
            attempts = SubmitAttempts.start(request, None, self._replay_policy)
        call = submit_call(self._base_url, request, cache_key=attempts.cache_key, cache_ttl=self._replay_policy.ttl)
        what = f"submit of {request.describe()}"
        return await replaying(
            functools.partial(
                retrying,
                functools.partial(self._submit_attempt, call, request, hooks, attempts),
                policy=self._retry_policy,
                should_retry=_submit_may_retry,
                rng=self._rng,
                what=what,
            ),
            attempts,
            policy=self._replay_policy,
            retry_policy=self._retry_policy,
            rng=self._rng,
            what=what,
        )

    async def _submit_attempt(
        self, call: HttpCall, request: VideoRequest, hooks: SubmitHooks | None, attempts: SubmitAttempts
    ) -> AcceptedJob:
        """One attempt (the first, a retry that sent nothing before, or a replay), completed despite cancellation."""
        self._ensure_open()
        # The budget is waited for first, where a cancellation still sends nothing (and before
        # a journal records the intent, so that the window in which a crash leaves the outcome
        # unknown spans the HTTP exchange alone).
        ticket = await self._throttle.acquire()
        if attempts.first_attempt_at is None:
            attempts.first_attempt_at = time.time()  # the replay window counts from the first send
        send = functools.partial(self._submit_and_record, call, request, hooks, ticket, attempts)
        if hooks is None:
            # Once sent, the request runs to completion even if the caller is cancelled:
            # abandoning it half-way would lose the task id of a job that is being paid for.
            return await complete_despite_cancellation(send, request, self._announcer)
        try:
            await hooks.before_send(attempts.replays)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await hooks.not_created("stopped before the submit was sent")
            raise
        try:
            return await complete_despite_cancellation(send, request, self._announcer)
        except SubmitUncertainError:
            raise
        except FastRouterError as exc:  # refused, rate limited or never sent: no job exists
            await hooks.not_created(str(exc))
            raise

    async def _submit_and_record(
        self, call: HttpCall, request: VideoRequest, hooks: SubmitHooks | None, ticket: int, attempts: SubmitAttempts
    ) -> SubmitWin:
        accepted = await self._submit_once(call, request, ticket)
        again = found_again(accepted, attempts)
        if hooks is not None:
            await hooks.accepted(accepted.task_id, found_again=again)  # inside the shielded completion
        if again:
            logger.info(
                "%s found task %s, created by an earlier attempt (not billed again)",
                request.describe(),
                accepted.task_id,
            )
        return SubmitWin(
            task_id=accepted.task_id,
            cache_key=attempts.cache_key,
            found_again=again,
            estimate=submit_estimate(accepted.payload),
        )

    async def _submit_once(self, call: HttpCall, request: VideoRequest, ticket: int | None = None) -> SubmitAccepted:
        """One submit: the accepted job, or a documented error raised without the frames below."""
        try:
            return await self._submit_answer(call, request, ticket)
        except FastRouterError as exc:
            failure = detached(exc)
        raise failure

    async def _submit_answer(self, call: HttpCall, request: VideoRequest, ticket: int | None) -> SubmitAccepted:
        """The accepted job of one submit, or a documented error (``_answers.submit_outcome``)."""
        try:
            response = await self._budgeted_request(call, ticket)
        except APIConnectionError as exc:
            if not exc.request_sent:
                raise  # nothing reached the server: safe to retry
            raise SubmitUncertainError(request, str(exc)) from exc
        except UnexpectedResponseError as exc:  # an answer too large to be a create answer
            raise SubmitUncertainError(request, str(exc)) from exc
        return submit_outcome(response, request, call=call, secret=self._secret, now=time.time())

    async def _budgeted_request(self, call: HttpCall, ticket: int | None = None) -> Response:
        """One API request, paced by the session's budget; a 429 slows the whole session.

        ``ticket`` is passed when the caller already waited for the budget.
        """
        if ticket is None:
            ticket = await self._throttle.acquire()
        response = await self._transport.request(call)
        self._tell_throttle(call, response, ticket)
        return response

    def _tell_throttle(self, call: HttpCall, response: Response, ticket: int) -> None:
        """A request sent in episode ``ticket`` got ``response``: slow the session down, or let it recover.

        A submit's 429 that says "too many jobs at once" is not about the request rate:
        the submit waits for fewer jobs in flight (see ``_start_job``) and polls go on.
        """
        if response.status != 429:
            self._throttle.succeeded(ticket)
            return
        if call.method == "POST" and call.url == self._submit_url and is_concurrency_limit(response.body):
            return
        wait = retry_after_seconds(response.headers, now=time.time())
        if wait is not None:
            wait = min(max(wait, 0.0), self._retry_policy.max_retry_after)
        self._throttle.rate_limited_by(ticket, wait)
        self._events.emit(
            RateLimited(method=call.method, url=loggable(call.url), retry_after=wait, task_id=polling_task.get())
        )

    # --- polling --------------------------------------------------------------------------

    async def _poll_once(self, job: VideoJob) -> JobStatus:
        """One poll: the job's status, or a documented error raised without the frames below."""
        try:
            return await self._poll_answer(job)
        except FastRouterError as exc:
            failure = detached(exc)
        raise failure

    async def _poll_answer(self, job: VideoJob) -> JobStatus:
        self._ensure_open()
        call = job._call
        if call is None:
            call = job._call = poll_call(self._poll_route, self._base_url, job.task_id, job.model)
        response = await self._budgeted_request(call)
        try:
            if response.body is not None and len(response.body) > _PARSE_IN_THREAD_BYTES:
                interpret = functools.partial(
                    poll_outcome,
                    response,
                    task_id=job.task_id,
                    model=job.model,
                    call=call,
                    secret=self._secret,
                    now=time.time(),
                )
                return await anyio.to_thread.run_sync(interpret)  # an inline video: megabytes of JSON
            return poll_outcome(
                response, task_id=job.task_id, model=job.model, call=call, secret=self._secret, now=time.time()
            )
        except NotFoundError:
            if not job._in_grace_window():
                raise
        return JobStatus(task_id=job.task_id, model=job.model, state=JobState.PENDING, raw_status="not visible yet")

    async def _poll_with_retries(self, job: VideoJob) -> JobStatus:
        return await retrying(
            lambda: self._poll_once(job),
            policy=self._retry_policy,
            should_retry=is_transient,
            rng=self._rng,
            what=f"status of task {job.task_id}",
        )

    def _result_from(self, job: VideoJob, status: JobStatus) -> VideoResult:
        assert status.source is not None
        result = VideoResult(
            task_id=job.task_id,
            model=job.model,
            url=status.urls[0] if status.urls else None,
            urls=status.urls,
            cost_usd=status.cost_usd,
            credits_used=status.credits_used,
            source=status.source,
            payload=status.payload,
            fetcher=self,
        )
        self._costs.observe(job.request, result.final_cost, found_again=job.found_again)
        return result

    # --- downloading ----------------------------------------------------------------------

    async def _download_result(
        self,
        result: VideoResult,
        path: Path,
        *,
        overwrite: bool,
        progress: DownloadProgress | None,
        max_bytes: int | None,
    ) -> DownloadedFile:
        self._ensure_open()
        if max_bytes is not None and (not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 1):
            raise InvalidRequestError("max_bytes", max_bytes, "a number of bytes >= 1, or None for the session's limit")

        async def refresh() -> VideoResult:
            # Expired links: poll the task once (the normal poll path, with its retries) for fresh ones.
            # A download never submits: the job stays the one already paid for.
            self._ensure_open()
            job = VideoJob(result.task_id, result.model, None, session=self)
            status = await self._poll_with_retries(job)
            if status.state is not JobState.SUCCEEDED:
                raise DownloadError(f"task {result.task_id} now reports {status.describe()}", task_id=result.task_id)
            return self._result_from(job, status)

        progress, started = self._downloads_told(result, progress), anyio.current_time()
        file = await self._downloader.download(
            result,
            path,
            overwrite=overwrite,
            progress=progress,
            max_bytes=max_bytes,
            refresh=refresh,
            poll_body=poll_call(self._poll_route, self._base_url, result.task_id, result.model),
        )
        self._events.emit(
            DownloadFinished(
                task_id=result.task_id,
                model=result.model,
                path=file.path,
                bytes=file.size,
                seconds=anyio.current_time() - started,
            )
        )
        return file

    def _downloads_told(self, result: VideoResult, progress: DownloadProgress | None) -> DownloadProgress | None:
        """``progress``, also sending a :class:`DownloadProgressed` event per chunk when anything listens."""
        events = self._events
        if not events.active:
            return progress
        task_id = result.task_id

        def told(received: int, total: int | None) -> object:
            events.emit(DownloadProgressed(task_id=task_id, received=received, total=total))
            return None if progress is None else progress(received, total)

        return told

    def _estimated_seconds(self, model: str, request: VideoRequest) -> float:
        """The learned median duration of a job like ``request`` (for ``JobSubmitted``)."""
        return math.exp(self._durations.log_normal(model, request)[0])


def _listed_prices() -> Mapping[str, Price] | None:
    """The prices of the cached model list (``fastrouter-video models --refresh``), if there is one."""
    catalog = cached_catalog()
    return None if catalog is None else catalog.prices()


def _request_from_fields(fields: Mapping[str, Any], extra: Mapping[str, Any]) -> VideoRequest:
    extra = _merge_extra(extra)
    for required in ("model", "prompt"):
        if fields[required] is None:
            example = "'google/veo3'" if required == "model" else "'a cat surfing at sunset'"
            raise InvalidRequestError(required, None, f"a non-empty string is required, e.g. {example}")
    return VideoRequest(**fields, extra=extra)


def _merge_extra(keywords: Mapping[str, Any]) -> dict[str, Any]:
    """``submit(extra={...}, other=...)``: an ``extra`` mapping joins the other pass-through keywords.

    Without this, ``extra=`` (the VideoRequest spelling) would be sent as a parameter named "extra".
    """
    merged = {k: v for k, v in keywords.items() if k != "extra"}
    if "extra" not in keywords:
        return merged
    nested = keywords["extra"]
    if not isinstance(nested, Mapping):
        raise InvalidRequestError(
            "extra", nested, "a mapping of further API parameters, e.g. {'negativePrompt': 'blurry'}"
        )
    for key, value in nested.items():
        if key in merged:
            raise InvalidRequestError(
                f"extra[{key!r}]", value, "each further parameter once (it was also passed as a keyword)"
            )
        merged[key] = value
    return merged


def _submit_may_retry(exc: FastRouterError) -> bool:
    """Submits are retried only when no job can have been created."""
    if isinstance(exc, RateLimitError):
        return not is_concurrency_limit_error(exc)  # "too many jobs at once": _start_job waits for a slot first
    return isinstance(exc, APIConnectionError) and not exc.request_sent


def _poll_route(value: PollRoute | str) -> PollRoute:
    if isinstance(value, PollRoute):
        return value
    for route in PollRoute:
        if value in (route.value, route.name, route.name.lower()):
            return route
    allowed = ", ".join(repr(r.value) for r in PollRoute)
    raise InvalidRequestError("poll_route", value, f"a PollRoute or one of {allowed}")
