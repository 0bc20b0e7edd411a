"""SimulatorCore: the simulator's state and decisions, behind named methods the HTTP layer calls.

:class:`~._simulator.FastRouterSimulator` is the public face: its settings are
plain attributes, read here through the :class:`Settings` protocol, and its
methods delegate here. :mod:`._app` only translates HTTP to calls of
:meth:`SimulatorCore.create`, :meth:`~SimulatorCore.poll`,
:meth:`~SimulatorCore.download` and friends, and their outcomes back to HTTP.
Nothing here awaits, so concurrent requests always see consistent counts.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

import attrs

from . import _cache, _payloads
from ._assets import sample_video
from ._cache import CacheRequest, ResponseCache, by_cache_key
from ._limits import CONCURRENCY_CODE, RequestRate, concurrency_message
from ._plans import Fault, JobPlan
from ._records import CacheHit, JobStage, RecordedRequest, RecordRoute, SimulatedJob, SimulatorRecords

__all__ = ["MODEL_MISMATCH", "ArmedFault", "Created", "Polled", "Redirect", "Refused", "Settings", "SimulatorCore"]

MODEL_MISMATCH = "model_mismatch"  # the code of a poll refused for naming another model than the job's
PlanRule = Callable[[Mapping[str, Any]], JobPlan | None]


class Settings(Protocol):
    """The simulator settings the core reads, each time it needs them (they may change at any time)."""

    api_key: str | None
    default_plan: JobPlan
    assets_require_auth: bool
    redirect_assets_to: str | None
    record_requests: bool
    cache_pending_timeout: float
    account_rate_limit: float | None
    account_rate_burst: float | None
    account_max_jobs: int | None

    @property
    def records(self) -> SimulatorRecords: ...

    @property
    def videos_from(self) -> Settings | None: ...

    @property
    def jobs(self) -> Mapping[str, SimulatedJob]: ...


@attrs.frozen
class Refused:
    """A request answered with an error: ``status``, and the message and code of its body (defaults if None)."""

    status: int
    message: str | None = None
    code: str | None = None


@attrs.frozen
class Created:
    """A submit accepted: the job it created, or the one the response cache answered with (``cache_hit``)."""

    job: SimulatedJob
    cache_hit: bool | None
    """True: answered from the cache; False: a ``cache_key`` submit that created the job; None: no cache."""


@attrs.frozen
class Polled:
    """A poll of a known job: what it saw (``"hidden"`` answers 404, as for an unknown task)."""

    job: SimulatedJob
    stage: JobStage


@attrs.frozen
class Redirect:
    """A download answered with a redirect to ``location``."""

    location: str


@attrs.define(eq=False)
class ArmedFault:
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


class SimulatorCore:
    """Jobs, plans, faults, links and the response cache of one simulator, and the rules that change them."""

    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self.jobs: dict[str, SimulatedJob] = {}
        self.next_plans: collections.deque[JobPlan] = collections.deque()
        self.rules: list[PlanRule] = []
        self.faults: list[ArmedFault] = []
        self.cache = ResponseCache()
        self.links: dict[str, int | None] = {}  # sig -> None while valid, else the status it answers
        self.expired_hosted: dict[str, int] = {}  # task id -> the status its hosted copy answers
        self.request_rate = RequestRate()  # the account's request rate, when it has one

    def now(self) -> float:
        return self.clock()

    # -- what arrives --------------------------------------------------------

    def record(
        self, route: RecordRoute, *, method: str, path: str, headers: Mapping[str, str], json: Any, query: str
    ) -> RecordedRequest:
        """Count a request arriving on ``route`` (and keep it, if the simulator keeps requests); its record."""
        records, keep = self.settings.records, self.settings.record_requests
        record = RecordedRequest(
            route=route,
            method=method,
            path=path,
            headers=dict(headers) if keep else {},
            json=json,
            time=self.now(),
            query=query,
        )
        if route == "submit":
            records.submit_count += 1
        elif route == "poll":
            records.poll_count += 1
        elif route == "download":
            records.download_count += 1
        if keep:
            records.requests.append(record)
        return record

    def take_fault(self, route: RecordRoute) -> Fault | None:
        """The injected fault that takes this request of ``route``, if any (counted against its ``times``)."""
        if route == "other":
            return None
        chosen = next((armed for armed in self.faults if armed.take(route)), None)
        self.faults = [armed for armed in self.faults if not armed.exhausted]
        return chosen.fault if chosen is not None else None

    def over_rate(self, route: RecordRoute) -> float | None:
        """For an API request (submit or poll) over the account's rate: the seconds until one is allowed.

        ``None``: the request may go on (it took a token, or no rate is set, or it is not an API request).
        """
        rate = self.settings.account_rate_limit
        if rate is None:
            self.request_rate.forget()
            return None
        if route not in ("submit", "poll"):
            return None
        burst = self.settings.account_rate_burst
        wait = self.request_rate.take(self.now(), rate=rate, burst=burst if burst is not None else max(1.0, rate))
        if wait <= 0.0:
            return None
        self.settings.records.rate_limited += 1
        return wait

    def download_started(self) -> None:
        records = self.settings.records
        records.downloads_active += 1
        records.max_downloads_active = max(records.max_downloads_active, records.downloads_active)

    def download_ended(self) -> None:
        self.settings.records.downloads_active -= 1

    def authorized(self, authorization: str | None) -> bool:
        """Whether the ``Authorization`` header carries an accepted Bearer token."""
        token = _account(authorization)
        if not token:
            return False
        return self.settings.api_key is None or token == self.settings.api_key

    # -- the routes ----------------------------------------------------------

    def create(self, body: Any, headers: Mapping[str, str], authorization: str | None) -> Created | Refused:
        """A submit of ``body``: refused, answered from the response cache, or a new job."""
        if not self.authorized(authorization):
            return Refused(401)
        problem = _submit_problem(body)
        if problem is not None:
            return Refused(400, problem, "invalid_parameter")
        try:
            cache = _cache.read_request(headers, body, account=_account(authorization))
        except _cache.InvalidCacheRequest as refused:
            return Refused(400, refused.message, refused.code)
        hit = None if cache is None else self._cache_lookup(cache)
        if hit is not None:
            return Created(hit, cache_hit=True)
        cap, records = self.settings.account_max_jobs, self.settings.records
        if cap is not None and records.in_flight >= cap:  # only a submit that would create a job is refused
            records.concurrency_limited += 1
            return Refused(429, concurrency_message(cap), CONCURRENCY_CODE)
        return Created(self._create_job(body, cache), cache_hit=None if cache is None else False)

    def poll(self, task_id: str, model: Any, *, model_sent: bool) -> Polled | Refused:
        """A poll of ``task_id`` (naming ``model`` if ``model_sent``): refused, or what the job shows now."""
        job = self.jobs.get(task_id)
        if job is None:
            return Refused(404)
        if model_sent and model != job.model:
            return Refused(400, "Bad Request - Invalid taskId or model: model does not match the task", MODEL_MISMATCH)
        return Polled(job, self._advance(job))

    def download(
        self, task_id: str, *, sig: str | None, hosted: bool, authorization: str | None, path_qs: str
    ) -> bytes | Redirect | Refused:
        """A download of ``task_id``'s video: refused (expired link, no key), redirected, or its bytes."""
        expired = self._link_status(sig, task_id, hosted=hosted)
        if expired is not None:
            return Refused(expired, _EXPIRED_MESSAGE, "link_expired")
        if self.settings.assets_require_auth and not self.authorized(authorization):
            return Refused(401)
        if self.settings.redirect_assets_to:
            return Redirect(self.settings.redirect_assets_to.rstrip("/") + path_qs)
        return self.video_for(task_id)

    def video_for(self, task_id: str) -> bytes:
        """The video of ``task_id``: its plan's, else (unknown here) ``videos_from``'s, else the sample."""
        source: Settings | None = self.settings
        job = None
        while job is None and source is not None:
            job = source.jobs.get(task_id)
            source = source.videos_from
        if job is not None and job.plan.video is not None:
            return job.plan.video
        return sample_video()

    def new_link_sig(self) -> str:
        """A fresh provider link signature, valid until :meth:`expire_links`."""
        sig = _payloads.new_link_sig()
        self.links[sig] = None
        return sig

    # -- the public simulator's state ----------------------------------------

    def expire_links(self, status: int, *, hosted: bool) -> int:
        for sig in self.links:
            self.links[sig] = status
        if hosted:
            self.expired_hosted.update(dict.fromkeys(self.jobs, status))
        return len(self.links)

    def timeline(self) -> dict[str, Any]:
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
                for job in self.jobs.values()
            ],
        }

    def billed_jobs(self) -> list[SimulatedJob]:
        return [self.jobs[task_id] for task_id in self.settings.records.billed_jobs]

    def cache_stats(self) -> dict[str, Any]:
        records = self.settings.records
        billed = self.billed_jobs()
        return {
            "entries": self.cache.live(self.jobs, now=self.now(), pending_timeout=self.settings.cache_pending_timeout),
            "hits": len(records.cache_hits),
            "billed": len(billed),
            "keys": by_cache_key(billed, records.cache_hits),
        }

    # -- helpers -------------------------------------------------------------

    def _choose_plan(self, body: Mapping[str, Any]) -> JobPlan:
        if self.next_plans:
            return self.next_plans.popleft()
        for rule in self.rules:
            plan = rule(body)
            if plan is not None:
                return plan
        return self.settings.default_plan

    def _cache_lookup(self, request: CacheRequest) -> SimulatedJob | None:
        """The job the response cache answers ``request`` with (recorded as a hit), or ``None``."""
        job = self.cache.find(request, self.jobs, now=self.now(), pending_timeout=self.settings.cache_pending_timeout)
        if job is not None:
            job.cache_hit_count += 1
            self.settings.records.cache_hits.append(CacheHit(request.cache_key, job.task_id))
        return job

    def _create_job(self, body: Mapping[str, Any], cache: CacheRequest | None) -> SimulatedJob:
        task_id = _payloads.new_task_id()
        while task_id in self.jobs:  # pragma: no cover  (80 random bits)
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
        self.jobs[task_id] = job
        records = self.settings.records
        records.jobs_created += 1
        records.in_flight += 1
        records.max_in_flight = max(records.max_in_flight, records.in_flight)
        records.billed_jobs.append(task_id)
        if cache is not None:
            self.cache.store(cache, job, now=job.created)
        return job

    def _advance(self, job: SimulatedJob) -> JobStage:
        was_done = job.done
        stage = _count_poll(job, self.now())
        if job.done and not was_done:
            job.cached_at = int(time.time())
            self.settings.records.in_flight -= 1
        return stage

    def _link_status(self, sig: str | None, task_id: str, *, hosted: bool) -> int | None:
        """The status an expired link answers, or ``None`` if it is valid (or not one of ours)."""
        if hosted:
            return self.expired_hosted.get(task_id)
        return None if sig is None else self.links.get(sig)


_EXPIRED_MESSAGE = "The link has expired; poll the task again for a fresh one"


def _count_poll(job: SimulatedJob, now: float) -> JobStage:
    """Count one poll of ``job`` at ``now`` and say what it sees (see :class:`JobPlan` for the rules)."""
    job.poll_count += 1
    elapsed = now - job.created
    if job.poll_count <= job.plan.hidden_polls or elapsed < job.plan.visible_after:
        return "hidden"
    job.visible_polls += 1
    if job.done_at is None and job.visible_polls >= job.plan.polls and elapsed >= job.plan.duration:
        job.done_at = now
    return "done" if job.done else "running"


def _account(authorization: str | None) -> str:
    """The token of ``Authorization: Bearer <token>`` (the account a cache entry belongs to), or ``""``."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _submit_problem(body: Any) -> str | None:
    """Why a create body is refused, or ``None`` if it is acceptable."""
    if not isinstance(body, dict):
        return "Bad Request - the request body must be a JSON object with 'model' and 'prompt'"
    for field in ("model", "prompt"):
        if not _payloads.non_empty_str(body.get(field)):
            return f"Bad Request - '{field}' is required and must be a non-empty string"
    return None
