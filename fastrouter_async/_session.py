"""FastRouterSession: the facade. Checks arguments, owns the lifecycle, delegates to the engine."""

from __future__ import annotations

import datetime
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ._arguments import poll_route_of, request_from_fields
from ._batch import BatchRun, output_dir_path, prepare_requests
from ._batch_spend import BatchSpend
from ._budget import RequestBudget, coerce_budget
from ._catalog import Price
from ._catalog_cache import cached_catalog
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
    check_limit,
    check_number,
    check_wait_timeout,
    resolve_api_key,
    resolve_base_url,
)
from ._engine import Engine, EngineSettings
from ._errors import InvalidRequestError
from ._event_hub import EventCallback, EventHub, check_on_event
from ._job import VideoJob, attach_job, start_job
from ._models import VideoRequest, VideoResult
from ._session_views import SessionViews
from ._spend import SessionCosts, check_cap
from ._stores import DEFAULT_LEASE, parse_store_url
from ._submits import DEFAULT_ON_ACCEPTED_TIMEOUT, AcceptedCallback, check_on_accepted, submitted_wall_time
from ._validate import validate as validate_request
from ._watcher import DEFAULT_SCAN_INTERVAL, FileNamer, Watcher

if TYPE_CHECKING:
    import aiohttp

__all__ = ["FastRouterSession"]


class FastRouterSession(SessionViews):
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

    ``store`` shares the account's limits and the record of its jobs with every
    session of the same API key that opens the same store, in this process or
    others (docs/many-workers.md): ``"sqlite:///path/to/file"`` for the
    processes of one host, ``"redis://host:6379/0"`` for any number of hosts
    (``fastrouter-async[redis]``), ``"memory:"`` for this process only. Then
    ``max_concurrent_jobs`` and ``request_budget`` hold across all of them, a
    429 pauses them all, and each unfinished job is polled by one of them at a
    time while the others read its status from the store. ``None`` (the
    default): nothing is shared. ``store_lease`` (seconds, default 30) is how
    long a lease of the store (a job slot, a download in progress) lasts
    without a renewal, so how soon a process that dies hands its slots and
    its jobs over to the others (a job's watch lease lasts this plus the poll
    policy's ``max_interval``); every process of one store must use the same.
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
        store: str | None = None,
        store_lease: float = DEFAULT_LEASE,
    ) -> None:
        costs = SessionCosts(
            cap_usd=check_cap("max_spend_usd", max_spend_usd),
            unknown_price_usd=check_cap("unknown_price_usd", unknown_price_usd),
            listed=_listed_prices,
        )
        secret = resolve_api_key(api_key)
        on_accepted, on_accepted_timeout = check_on_accepted(on_accepted, on_accepted_timeout)
        events = EventHub(check_on_event(on_event), secret=secret.reveal)
        base_url = resolve_base_url(base_url)
        check_number("store_lease", store_lease, "a finite number of seconds > 0", above=0, below=math.inf)
        check_limit("max_concurrent_jobs", max_concurrent_jobs, "an integer >= 1, or None for no bound")
        check_limit("max_concurrent_downloads", max_concurrent_downloads, "an integer >= 1, or None for no bound")
        check_limit("max_download_bytes", max_download_bytes, "a number of bytes >= 1, or None for no bound")
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
        self._base_url = base_url
        self._validate = validate
        self._closed = False  # mirrored from the engine, so that __del__ never needs more than this object
        settings = EngineSettings(
            secret=secret,
            base_url=base_url,
            poll_route=poll_route_of(poll_route),
            timeouts=timeouts,
            poll_policy=poll_policy,
            retry_policy=retry_policy,
            replay_policy=replay_policy,
            budget=coerce_budget(request_budget),
            max_concurrent_jobs=max_concurrent_jobs,
            max_concurrent_downloads=max_concurrent_downloads,
            max_download_bytes=max_download_bytes,
            allow_link_local_downloads=allow_link_local_downloads,
            on_accepted=on_accepted,
            on_accepted_timeout=on_accepted_timeout,
            telemetry=telemetry,
            telemetry_prompts=telemetry_prompts,
            store=_checked_store(store),
            store_lease=float(store_lease),
        )
        self._engine = Engine(settings, events=events, costs=costs, http_session=http_session)

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
        self._closed = True
        await self._engine.aclose()

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        # Only warns: closing needs the event loop, which a finalizer must not touch (as svcs and aiohttp do).
        engine = getattr(self, "_engine", None)
        if engine is not None and engine.used and not engine.closed:
            base_url = getattr(self, "_base_url", "?")
            _warn(
                f"unclosed FastRouterSession (base_url={base_url!r}): "
                "use `async with FastRouterSession(...)` or `await session.aclose()`",
                ResourceWarning,
                source=self,
            )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<FastRouterSession {state} base_url={self._base_url!r} "
            f"max_concurrent_jobs={self.max_concurrent_jobs} jobs_in_flight={self.jobs_in_flight}>"
        )

    def _ensure_open(self) -> None:
        self._engine.ensure_open()

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
            request = request_from_fields(fields, extra)
        if self._validate:
            validate_request(request)
        self._ensure_open()
        engine = self._engine
        return await start_job(engine, request, await engine.acquire_slot())

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
        task_id = task_id.strip()
        if model is None or wall is None:
            known = self._engine.record.get(task_id)  # a job this session submitted: its model and submit time
            if known is not None:
                model = known.model if model is None else model
                wall = known.submitted_at if wall is None else wall
        return attach_job(self._engine, task_id, model, submitted_wall_time=wall)

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
            self._engine,
            prepared,
            output_dir=output_dir_path(output_dir),
            filename=filename,
            journal=None if journal is None else Path(journal),
            resubmit_uncertain=bool(resubmit_uncertain),
            retry_failed=bool(retry_failed),
            timeout=timeout,
            spend=BatchSpend(cap, self._engine.costs.estimate(prepared)),
        )

    async def watch(
        self,
        output_dir: str | os.PathLike[str] | None = None,
        *,
        until_idle: bool = False,
        scan_interval: float = DEFAULT_SCAN_INTERVAL,
        filename: FileNamer | None = None,
    ) -> None:
        """Follow the store's jobs that no process watches, to their end; download each video once.

        The watcher role of a web backend (docs/many-workers.md): processes that
        submit need not wait, since watchers (this session, and any other that
        runs ``watch()`` on the same ``store``) take every unfinished job of the
        store nobody watches, poll it (one process per job) and record how it
        ended. With ``output_dir`` each succeeded video is downloaded there once
        across all the watchers (as ``TASK_ID.mp4``, or ``filename(record)``), and
        its ``file``, ``size`` and ``sha256`` are added to the job's record
        (:meth:`job_record` shows them); a download that fails records
        ``download_error`` instead. Downloads stay under
        ``max_concurrent_downloads``; any number of jobs are followed at once.

        Runs until cancelled or until the session is closed (it then returns); with
        ``until_idle=True`` it also returns once the store has no unfinished job
        left (and, with ``output_dir``, no video left to write). ``scan_interval``
        is how often (seconds) it looks for jobs nobody watches. Stopping it gives
        its leases back, so the other watchers continue its jobs at once; a
        watcher that dies hands them over within ``store_lease`` (plus the poll
        policy's ``max_interval``). A store that cannot be used for a while is
        logged and tried again at the next scan. Without a ``store``:
        :class:`InvalidRequestError`.
        """
        self._ensure_open()
        check_number("scan_interval", scan_interval, "a finite number of seconds > 0", above=0, below=math.inf)
        if filename is not None and not callable(filename):
            raise InvalidRequestError("filename", filename, "a function (JobRecord) -> file name, or None")
        watcher = Watcher(
            self._engine,
            output_dir=output_dir_path(output_dir),
            until_idle=bool(until_idle),
            scan_interval=float(scan_interval),
            filename=filename,
        )
        await watcher.run()


def _listed_prices() -> Mapping[str, Price] | None:
    """The prices of the cached model list (``fastrouter-video models --refresh``), if there is one."""
    catalog = cached_catalog()
    return None if catalog is None else catalog.prices()


def _checked_store(store: object) -> str | None:
    """``store`` once read (``InvalidRequestError`` naming the field, its password hidden, when it cannot be)."""
    if store is None:
        return None
    parse_store_url(store)
    assert isinstance(store, str)
    return store
