"""What the simulator saw and holds: recorded requests, counters, and the simulated jobs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import attrs

from ._plans import Fault, JobPlan

__all__ = ["CacheHit", "JobStage", "RecordRoute", "RecordedRequest", "SimulatedJob", "SimulatorRecords"]

RecordRoute = Literal["submit", "poll", "download", "other"]
JobStage = Literal["hidden", "running", "done"]


class CacheHit(NamedTuple):
    """One submit answered from the cache: the key it carried and the task it was given."""

    cache_key: str
    task_id: str


@attrs.define(kw_only=True, eq=False)
class RecordedRequest:
    """One request the simulator received, recorded when it arrived and completed when answered."""

    route: RecordRoute
    """``"submit"``, ``"poll"`` (any of the three poll routes), ``"download"`` or ``"other"``."""
    method: str
    path: str
    headers: dict[str, str]
    """A plain copy of the request headers, names as the client sent them (``Authorization`` included)."""
    json: Any
    """The decoded JSON body, or ``None`` when there was none or it was not JSON."""
    time: float
    """When it arrived, on the simulator's clock (the event loop's time by default)."""
    status: int | None = None
    """The status answered; ``None`` while being handled or when the connection was dropped."""
    dropped: bool = False
    """The connection was closed without a complete answer (``drop`` and ``truncate`` faults)."""
    fault: Fault | None = None
    """The fault that took this request, if any."""
    task_id: str | None = None
    """The task this request was about: the created one for a submit, the asked-for one otherwise."""
    model_sent: bool | None = None
    """Polls only: whether the request named a ``model``."""
    model_matched: bool | None = None
    """Polls only: whether the sent ``model`` equals the job's (``None`` if not sent or the job is unknown)."""
    query: str = ""
    """The query string, without ``?`` (download links carry their ``sig`` there)."""
    cache_hit: bool | None = None
    """Submits only: True if answered from the response cache, False if a ``cache_key`` submit created a job."""


@attrs.define(kw_only=True, eq=False)
class SimulatedJob:
    """A job the simulator accepted: its request, its plan, and how far it got."""

    task_id: str
    model: str
    prompt: str
    body: Mapping[str, Any]
    """The submitted JSON body."""
    plan: JobPlan
    created: float
    """Submit time on the simulator's clock."""
    created_date: str
    """Submit time as the ISO date shown in ``generations[].createdDate``."""
    generation_id: str
    poll_count: int = 0
    """Every poll for this job, including those answered 404 while it was hidden."""
    visible_polls: int = 0
    """Polls that saw the job (the ones compared with ``plan.polls``)."""
    done_at: float | None = None
    """When a poll first found it done (simulator clock); ``None`` while it runs."""
    cached_at: int | None = None
    """Wall-clock seconds of completion, used for ``fastrouter_assets.cached_at``."""
    billed: bool = True
    """Whether its submit was charged: every created job is (a cache hit creates no job and costs nothing)."""
    cache_key: str | None = None
    """The ``cache_key`` header of the submit that created it, if any."""
    cache_hit_count: int = 0
    """How many later submits the response cache answered with this job."""

    @property
    def done(self) -> bool:
        """Whether a poll has already reported the final outcome."""
        return self.done_at is not None


@attrs.define(kw_only=True, eq=False)
class SimulatorRecords:
    """Everything the simulator saw, for assertions.

    The counters (``submit_count``, ``poll_count``, ``download_count``,
    ``jobs_created``, ``in_flight``...) are kept even when the simulator does
    not keep the requests themselves (``record_requests=False``).

    ``in_flight`` counts jobs from the moment their submit was accepted until
    a poll first reported them done (succeeded, failed or vanished); jobs
    nobody polls stay in flight. ``max_in_flight`` is its high-water mark.

    ``rate_limited`` and ``concurrency_limited`` count the 429s of the account's
    limits: requests over its rate, and submits refused at its job cap (which
    count in ``submit_count``, not in ``jobs_created``).

    ``downloads_active`` counts download requests from arrival until their last
    body byte was sent (or the connection dropped); ``max_downloads_active`` is
    its high-water mark: how many downloads a client ran at once.
    """

    requests: list[RecordedRequest] = attrs.field(factory=list)
    """Every request, in arrival order (empty when the simulator was made with ``record_requests=False``)."""
    submit_count: int = 0
    """How many submit requests arrived (accepted or not); ``jobs_created`` counts the accepted ones."""
    poll_count: int = 0
    """How many poll requests arrived, on any of the three poll routes."""
    download_count: int = 0
    """How many download requests arrived."""
    jobs_created: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    downloads_active: int = 0
    max_downloads_active: int = 0
    rate_limited: int = 0
    """API requests answered 429 because the account's request rate was exceeded (``account_rate_limit``)."""
    concurrency_limited: int = 0
    """Submits answered 429 "too many concurrent tasks" (``account_max_jobs`` jobs in flight); no job was created."""
    billed_jobs: list[str] = attrs.field(factory=list)
    """The task id of every billed job, in submit order: every job created (cache misses included)."""
    cache_hits: list[CacheHit] = attrs.field(factory=list)
    """Every submit the response cache answered, in order, as ``(cache_key, task_id)`` (not billed)."""

    @property
    def billed_count(self) -> int:
        """How many jobs were billed (``len(billed_jobs)``)."""
        return len(self.billed_jobs)

    @property
    def submits(self) -> list[RecordedRequest]:
        return self._of("submit")

    @property
    def polls(self) -> list[RecordedRequest]:
        return self._of("poll")

    @property
    def downloads(self) -> list[RecordedRequest]:
        return self._of("download")

    def headers_seen(self, route: RecordRoute | Literal["any"] = "any") -> list[dict[str, str]]:
        """The headers of every request of ``route``, in arrival order."""
        return [r.headers for r in self.requests if route in ("any", r.route)]

    def reset(self) -> None:
        """Forget the requests and counts; ``in_flight`` stays true and becomes the new maximum."""
        self.requests.clear()
        self.submit_count = self.poll_count = self.download_count = 0
        self.jobs_created = 0
        self.rate_limited = self.concurrency_limited = 0
        self.billed_jobs.clear()
        self.cache_hits.clear()
        self.max_in_flight = self.in_flight
        self.max_downloads_active = self.downloads_active

    def _of(self, route: RecordRoute) -> list[RecordedRequest]:
        return [r for r in self.requests if r.route == route]
