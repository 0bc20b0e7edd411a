"""FastRouterSimulator: the state of a FastRouter look-alike (jobs, plans, faults, records).

The HTTP side lives in :mod:`._app` and the serving helper in :mod:`._server`;
this module decides *what* happens, they decide how it goes over the wire.
Everything here runs on one event loop and never awaits while changing state,
so any number of concurrent requests see consistent counts.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import anyio
import attrs

from . import _payloads
from ._app import build_app
from ._assets import CHECKSUM_HEADERS, EtagMode, sample_video
from ._cache import (
    DEFAULT_PENDING_TIMEOUT,
    CacheHit,
    CacheHitStyle,
    CacheRequest,
    ResponseCache,
    by_cache_key,
    job_matches,
)
from ._plans import Fault, JobPlan
from ._records import JobStage, RecordRoute, SimulatedJob, SimulatorRecords
from ._server import SimulatorServer

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["DEFAULT_PLAN", "BodyPredicate", "Clock", "FastRouterSimulator", "PlanFactory"]

Clock = Callable[[], float]
BodyPredicate = Callable[[Mapping[str, Any]], bool]
PlanFactory = Callable[[Mapping[str, Any]], JobPlan | None]

DEFAULT_PLAN: Final = JobPlan()  # succeed at the first poll: the fastest useful job for tests


@attrs.define(eq=False)
class _ArmedFault:
    """An injected fault and how many matching requests it has seen."""

    fault: Fault
    seen: int = 0

    @property
    def exhausted(self) -> bool:
        times = self.fault.times
        return times is not None and self.seen >= self.fault.skip + times

    def take(self, route: RecordRoute) -> bool:
        """Count a request of ``route``; True if this fault applies to it."""
        if not self.fault.matches(route) or self.exhausted:
            return False
        self.seen += 1
        return self.seen > self.fault.skip


class FastRouterSimulator:
    """A FastRouter look-alike: accepts video jobs, answers polls, serves the videos.

    ``api_key`` is the only Bearer token accepted (``None`` accepts any
    non-empty token). ``default_plan`` says how jobs behave unless
    :meth:`plan_next` or :meth:`plan_for` say otherwise. Downloads answer
    without authentication unless ``assets_require_auth``; with
    ``redirect_assets_to`` (an origin such as ``"http://127.0.0.1:8001"``)
    they answer ``302`` to the same path on that origin instead.
    ``asset_origin`` is the origin written into ``fastrouter_assets.urls``
    (default: the origin the poll was sent to).

    How videos are served (downloads, and ``video_body`` polls):
    ``download_ranges=False`` ignores ``Range`` headers and sends no
    ``Accept-Ranges`` (a server without range support); ``download_etag`` is
    ``"strong"`` (the quoted SHA-256 of the bytes), ``"weak"`` or ``"none"``;
    ``download_checksums`` names checksum headers to send, among
    ``"content-md5"``, ``"content-digest"``, ``"repr-digest"``, ``"digest"`` and
    ``"x-goog-hash"``; ``download_content_length=False`` streams the body
    chunked, without ``Content-Length``. Provider links carry a ``sig`` query
    parameter, new in every poll answer; :meth:`expire_links` makes those issued
    so far (and, if asked, the hosted copies) answer 403/404/410.

    Downloads of a task id this simulator does not know serve the bundled
    sample, or, with ``videos_from=other_simulator``, that simulator's video for
    the task: a second simulator then plays a CDN holding the real files.

    ``clock`` replaces the event
    loop's clock for ``JobPlan.duration``/``visible_after`` and record times;
    pass a callable returning seconds to drive time by hand.

    ``record_requests=False`` keeps no :class:`RecordedRequest` (``records.requests``
    stays empty) while every counter and each job's ``poll_count`` still
    count: a simulator can then serve millions of requests without growing
    by more than its jobs.

    Submits with a ``cache_key`` header go through FastRouter's response
    cache, as documented (see :mod:`._cache` for the exact rules): a repeat
    answers the same task id and is not billed. ``cache_pending_timeout``
    is how long an unfinished task is matched (FastRouter's 30 minutes);
    ``cache_hit_style`` is ``"cached"`` (a hit says ``cached: true``, the
    newer docs) or ``"legacy"`` (``credits_used: 0`` and ``provider: ""``,
    the older docs). :meth:`billed_count` and :meth:`cache_stats` say what
    was billed.

    All of these are plain attributes and may be changed at any time.

    What the simulator saw is in :attr:`records` (a :class:`SimulatorRecords`)
    and the jobs it accepted in :attr:`jobs`. One simulator may be served by
    several servers at once; they share its state.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        default_plan: JobPlan = DEFAULT_PLAN,
        asset_origin: str | None = None,
        assets_require_auth: bool = False,
        redirect_assets_to: str | None = None,
        download_ranges: bool = True,
        download_etag: EtagMode = "strong",
        download_checksums: tuple[str, ...] = (),
        download_content_length: bool = True,
        videos_from: FastRouterSimulator | None = None,
        clock: Clock | None = None,
        record_requests: bool = True,
        cache_pending_timeout: float = DEFAULT_PENDING_TIMEOUT,
        cache_hit_style: CacheHitStyle = "cached",
    ) -> None:
        unknown = set(download_checksums) - set(CHECKSUM_HEADERS)
        if unknown:
            raise ValueError(f"unknown checksum headers {sorted(unknown)}; known: {', '.join(CHECKSUM_HEADERS)}")
        self.api_key = api_key
        self.default_plan = default_plan
        self.asset_origin = asset_origin
        self.assets_require_auth = assets_require_auth
        self.redirect_assets_to = redirect_assets_to
        self.download_ranges = download_ranges
        self.download_etag: EtagMode = download_etag
        self.download_checksums: tuple[str, ...] = tuple(download_checksums)
        self.download_content_length = download_content_length
        self.videos_from = videos_from
        self.record_requests = record_requests
        self.cache_pending_timeout = cache_pending_timeout
        self.cache_hit_style: CacheHitStyle = cache_hit_style
        self.model_list: object = None
        """What ``GET /api/v1/models`` answers: any JSON value, raw ``bytes``, or ``None`` for a default list."""
        self.records = SimulatorRecords()
        self._cache = ResponseCache()
        self._clock: Clock = clock or anyio.current_time
        self._jobs: dict[str, SimulatedJob] = {}
        self._next_plans: collections.deque[JobPlan] = collections.deque()
        self._rules: list[PlanFactory] = []
        self._faults: list[_ArmedFault] = []
        self._links: dict[str, int | None] = {}  # sig -> None while valid, else the status it answers
        self._expired_hosted: dict[str, int] = {}  # task id -> the status its hosted copy answers

    def __repr__(self) -> str:
        return (
            f"<FastRouterSimulator jobs={len(self._jobs)} in_flight={self.records.in_flight} "
            f"faults={len(self._faults)}>"
        )

    # -- plans ---------------------------------------------------------------

    def plan_next(self, *plans: JobPlan) -> None:
        """Queue plans for the next submits, one per accepted submit, in order (before any rule)."""
        self._next_plans.extend(plans)

    def plan_for(self, match: str | BodyPredicate, plan: JobPlan) -> None:
        """Use ``plan`` for submits that ``match``: a prompt substring, or a callable given the JSON body.

        Rules (these and :meth:`plan_with` ones) are tried in the order they were
        added; the first match wins. Queued :meth:`plan_next` plans come first,
        ``default_plan`` last.
        """
        predicate = _prompt_contains(match) if isinstance(match, str) else match

        def rule(body: Mapping[str, Any]) -> JobPlan | None:
            return plan if predicate(body) else None

        self._rules.append(rule)

    def plan_with(self, factory: PlanFactory) -> None:
        """Add a rule whose plan is computed for each submit: ``factory(body)`` given the JSON body.

        The factory returns the :class:`JobPlan` to use, or ``None`` to leave the
        submit to later rules and ``default_plan``. It is one rule among the
        :meth:`plan_for` ones, tried in the order they were added.
        ``sim.plan_with(RealisticDurations(seed=1))`` gives every job a duration
        drawn for its model and length.
        """
        self._rules.append(factory)

    def clear_plans(self) -> None:
        """Forget queued plans and rules (``default_plan`` stays)."""
        self._next_plans.clear()
        self._rules.clear()

    # -- faults --------------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        """Arm ``fault`` after those already injected, and return it."""
        self._faults.append(_ArmedFault(fault))
        return fault

    def clear_faults(self) -> None:
        """Disarm every fault."""
        self._faults.clear()

    @property
    def faults(self) -> tuple[Fault, ...]:
        """The faults that may still apply to a request, in injection order."""
        return tuple(armed.fault for armed in self._faults if not armed.exhausted)

    # -- links ---------------------------------------------------------------

    def expire_links(self, status: int = 410, *, hosted: bool = False) -> int:
        """Make every provider link issued so far answer ``status`` (403, 404 or 410); return how many.

        Polls made afterwards issue fresh provider links (a new ``sig``), which
        work until expired in turn, as signed links do. With ``hosted=True`` the
        hosted copies (``/videos-content/{task_id}``) of every job created so far
        answer ``status`` too, for good: their URL never changes, so a poll
        cannot renew them (FastRouter keeps them for 30 days).
        """
        if status not in (403, 404, 410):
            raise ValueError(f"expired links answer 403, 404 or 410, not {status}")
        for sig in self._links:
            self._links[sig] = status
        if hosted:
            self._expired_hosted.update(dict.fromkeys(self._jobs, status))
        return len(self._links)

    # -- state ---------------------------------------------------------------

    @property
    def jobs(self) -> Mapping[str, SimulatedJob]:
        """Every job created, by task id (a read-only view)."""
        return MappingProxyType(self._jobs)

    def now(self) -> float:
        """The simulator's clock (the event loop's time unless a ``clock`` was given)."""
        return self._clock()

    def timeline(self) -> dict[str, Any]:
        """Every job's timeline, as ``GET /_simulator/jobs`` answers it (simulator clock, in seconds).

        ``{"now": ..., "jobs": [{"task_id", "model", "created", "finishes_at",
        "poll_count", "done_at"}, ...]}``, jobs in submit order. ``finishes_at`` is
        ``created + plan.duration`` (``None`` for a job that never finishes);
        ``done_at`` is when a poll first found the job done (``None`` until then).
        """
        return {
            "now": self.now(),
            "jobs": [
                {
                    "task_id": job.task_id,
                    "model": job.model,
                    "created": job.created,
                    "finishes_at": job.created + job.plan.duration if math.isfinite(job.plan.duration) else None,
                    "poll_count": job.poll_count,
                    "done_at": job.done_at,
                }
                for job in self._jobs.values()
            ],
        }

    def stats(self) -> dict[str, int]:
        """The counters, as ``GET /_simulator/stats`` answers them (kept even without ``record_requests``)."""
        records = self.records
        return {
            "jobs_created": records.jobs_created,
            "in_flight": records.in_flight,
            "max_in_flight": records.max_in_flight,
            "polls": records.poll_count,
            "submits": records.submit_count,
            "downloads": records.download_count,
        }

    def cache_stats(self) -> dict[str, Any]:
        """What the response cache did, as ``GET /_simulator/cache`` answers it.

        ``{"entries": ..., "hits": ..., "billed": ..., "keys": {cache_key: {"billed": ..., "hits": ...}}}``:
        the entries that would answer a request now, the submits answered from the cache, every billed
        job (with or without a key), and per ``cache_key`` the jobs it created and the hits it got.
        """
        billed = [self._jobs[task_id] for task_id in self.records.billed_jobs]
        return {
            "entries": self._cache.live(self._jobs, now=self.now(), pending_timeout=self.cache_pending_timeout),
            "hits": len(self.records.cache_hits),
            "billed": len(billed),
            "keys": by_cache_key(billed, self.records.cache_hits),
        }

    def billed_count(
        self,
        *,
        prompt: str | None = None,
        model: str | None = None,
        cache_key: str | None = None,
        where: BodyPredicate | None = None,
    ) -> int:
        """How many billed jobs match every filter given: the exact ``prompt``, ``model``, ``cache_key``, a body test.

        ``assert sim.billed_count(prompt="a cat") == 1`` checks that a request was paid for once,
        however many times it was sent with its ``cache_key``.
        """
        billed = (self._jobs[task_id] for task_id in self.records.billed_jobs)
        return sum(job_matches(job, prompt=prompt, model=model, cache_key=cache_key, where=where) for job in billed)

    def reset_records(self) -> None:
        """Forget recorded requests and counts (see :meth:`SimulatorRecords.reset`); jobs are kept."""
        self.records.reset()

    # -- serving -------------------------------------------------------------

    def app(self) -> web.Application:
        """A new ``aiohttp.web.Application`` answering for this simulator, to mount or run yourself."""
        return build_app(self)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> SimulatorServer:
        """Serve on ``host:port`` (``0``: a free port) for the duration of ``async with``.

        ``async with sim.serve() as server:`` starts the server and yields the
        :class:`SimulatorServer`, whose ``base_url`` is what a client needs.
        """
        return SimulatorServer(self, host=host, port=port)

    # -- used by the HTTP layer ----------------------------------------------

    def _authorized(self, header: str | None) -> bool:
        token = self._account(header)
        if not token:
            return False
        return self.api_key is None or token == self.api_key

    def _account(self, header: str | None) -> str:
        """The token of ``Authorization: Bearer <token>`` (the account a cache entry belongs to), or ``""``."""
        scheme, _, token = (header or "").strip().partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""

    def _take_fault(self, route: RecordRoute) -> Fault | None:
        if route == "other":
            return None
        chosen = next((armed for armed in self._faults if armed.take(route)), None)
        self._faults = [armed for armed in self._faults if not armed.exhausted]
        return chosen.fault if chosen is not None else None

    def _choose_plan(self, body: Mapping[str, Any]) -> JobPlan:
        if self._next_plans:
            return self._next_plans.popleft()
        for rule in self._rules:
            plan = rule(body)
            if plan is not None:
                return plan
        return self.default_plan

    def _cache_lookup(self, request: CacheRequest) -> SimulatedJob | None:
        """The job the response cache answers ``request`` with (recorded as a hit), or ``None``."""
        job = self._cache.find(request, self._jobs, now=self.now(), pending_timeout=self.cache_pending_timeout)
        if job is not None:
            job.cache_hit_count += 1
            self.records._cache_hit(CacheHit(request.cache_key, job.task_id))
        return job

    def _create_job(self, body: Mapping[str, Any], cache: CacheRequest | None = None) -> SimulatedJob:
        task_id = _payloads.new_task_id()
        while task_id in self._jobs:  # pragma: no cover  (80 random bits)
            task_id = _payloads.new_task_id()
        job = SimulatedJob(
            task_id=task_id,
            model=body["model"],
            prompt=body["prompt"],
            body=MappingProxyType(dict(body)),
            plan=self._choose_plan(body),
            created=self.now(),
            created_date=_payloads.iso_timestamp(),
            generation_id=_payloads.new_generation_id(),
            cache_key=None if cache is None else cache.cache_key,
        )
        self._jobs[task_id] = job
        self.records._job_started()
        self.records._job_billed(task_id)
        if cache is not None:
            self._cache.store(cache, job, now=job.created)
        return job

    def _advance(self, job: SimulatedJob) -> JobStage:
        was_done = job.done
        stage = job._count_poll(self.now())
        if job.done and not was_done:
            job.cached_at = int(time.time())
            self.records._job_finished()
        return stage

    def _new_link_sig(self) -> str:
        sig = _payloads.new_link_sig()
        self._links[sig] = None
        return sig

    def _link_status(self, sig: str | None, task_id: str, *, hosted: bool) -> int | None:
        """The status an expired link answers, or ``None`` if it is valid (or not one of ours)."""
        if hosted:
            return self._expired_hosted.get(task_id)
        return None if sig is None else self._links.get(sig)

    def _video_for(self, task_id: str) -> bytes:
        job = self._jobs.get(task_id)
        if job is None and self.videos_from is not None:
            return self.videos_from._video_for(task_id)
        if job is not None and job.plan.video is not None:
            return job.plan.video
        return sample_video()


def _prompt_contains(text: str) -> BodyPredicate:
    def predicate(body: Mapping[str, Any]) -> bool:
        prompt = body.get("prompt")
        return isinstance(prompt, str) and text in prompt

    return predicate
