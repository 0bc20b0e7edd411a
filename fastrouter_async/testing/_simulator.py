"""FastRouterSimulator, a FastRouter look-alike, and SimulatorServer, which serves one on a local port.

The simulator's settings are plain attributes; its state and the decisions
about requests live in :mod:`._core` (:class:`~._core.SimulatorCore`), and
the HTTP side in :mod:`._app`, which only translates between the two. The
server lives here because the simulator makes servers and a server names its
simulator: one module, no import cycle.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, Final

import anyio
from aiohttp import web
from yarl import URL

from ._app import build_app
from ._assets import CHECKSUM_HEADERS, EtagMode
from ._cache import DEFAULT_PENDING_TIMEOUT, CacheHitStyle, job_matches
from ._core import ArmedFault, SimulatorCore
from ._limits import checked_burst, checked_max_jobs, checked_rate
from ._plans import Fault, JobPlan
from ._records import SimulatedJob, SimulatorRecords

__all__ = ["DEFAULT_PLAN", "BodyPredicate", "Clock", "FastRouterSimulator", "PlanFactory", "SimulatorServer"]

Clock = Callable[[], float]
BodyPredicate = Callable[[Mapping[str, Any]], bool]
PlanFactory = Callable[[Mapping[str, Any]], JobPlan | None]

DEFAULT_PLAN: Final = JobPlan()  # succeed at the first poll: the fastest useful job for tests


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

    The account's limits, off by default, make the simulator answer 429 as a
    provider does: ``account_rate_limit`` is a request rate (submits and polls
    per second, a token bucket holding ``account_rate_burst`` requests, one
    second's worth by default) and a request over it is answered 429 with a
    ``Retry-After`` of the seconds until it would be allowed;
    ``account_max_jobs`` refuses a submit that would create a job while that
    many are in flight (``records.in_flight``) with a 429 saying "too many
    concurrent tasks". The simulator is one account: every key counts against
    them. ``records.rate_limited`` and ``records.concurrency_limited`` count
    those answers.

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
        account_rate_limit: float | None = None,
        account_rate_burst: float | None = None,
        account_max_jobs: int | None = None,
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
        self._account_rate_limit = checked_rate(account_rate_limit)
        self._account_rate_burst = checked_burst(account_rate_burst)
        self._account_max_jobs = checked_max_jobs(account_max_jobs)
        self._core = SimulatorCore(self, clock or anyio.current_time)

    def __repr__(self) -> str:
        core = self._core
        return (
            f"<FastRouterSimulator jobs={len(core.jobs)} in_flight={self.records.in_flight} faults={len(core.faults)}>"
        )

    # -- the account's limits ------------------------------------------------

    @property
    def account_rate_limit(self) -> float | None:
        """API requests (submits and polls) per second the account may send; ``None``: no limit."""
        return self._account_rate_limit

    @account_rate_limit.setter
    def account_rate_limit(self, value: float | None) -> None:
        self._account_rate_limit = checked_rate(value)

    @property
    def account_rate_burst(self) -> float | None:
        """How many requests may go out back to back after a quiet spell; ``None``: one second's worth."""
        return self._account_rate_burst

    @account_rate_burst.setter
    def account_rate_burst(self, value: float | None) -> None:
        self._account_rate_burst = checked_burst(value)

    @property
    def account_max_jobs(self) -> int | None:
        """How many jobs the account may have in flight at once; ``None``: no cap."""
        return self._account_max_jobs

    @account_max_jobs.setter
    def account_max_jobs(self, value: int | None) -> None:
        self._account_max_jobs = checked_max_jobs(value)

    # -- plans ---------------------------------------------------------------

    def plan_next(self, *plans: JobPlan) -> None:
        """Queue plans for the next submits, one per accepted submit, in order (before any rule)."""
        self._core.next_plans.extend(plans)

    def plan_for(self, match: str | BodyPredicate, plan: JobPlan) -> None:
        """Use ``plan`` for submits that ``match``: a prompt substring, or a callable given the JSON body.

        Rules (these and :meth:`plan_with` ones) are tried in the order they were
        added; the first match wins. Queued :meth:`plan_next` plans come first,
        ``default_plan`` last.
        """
        predicate = _prompt_contains(match) if isinstance(match, str) else match

        def rule(body: Mapping[str, Any]) -> JobPlan | None:
            return plan if predicate(body) else None

        self._core.rules.append(rule)

    def plan_with(self, factory: PlanFactory) -> None:
        """Add a rule whose plan is computed for each submit: ``factory(body)`` given the JSON body.

        The factory returns the :class:`JobPlan` to use, or ``None`` to leave the
        submit to later rules and ``default_plan``. It is one rule among the
        :meth:`plan_for` ones, tried in the order they were added.
        ``sim.plan_with(RealisticDurations(seed=1))`` gives every job a duration
        drawn for its model and length.
        """
        self._core.rules.append(factory)

    def clear_plans(self) -> None:
        """Forget queued plans and rules (``default_plan`` stays)."""
        self._core.next_plans.clear()
        self._core.rules.clear()

    # -- faults --------------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        """Arm ``fault`` after those already injected, and return it."""
        self._core.faults.append(ArmedFault(fault))
        return fault

    def clear_faults(self) -> None:
        """Disarm every fault."""
        self._core.faults.clear()

    @property
    def faults(self) -> tuple[Fault, ...]:
        """The faults that may still apply to a request, in injection order."""
        return tuple(armed.fault for armed in self._core.faults if not armed.exhausted)

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
        return self._core.expire_links(status, hosted=hosted)

    # -- state ---------------------------------------------------------------

    @property
    def jobs(self) -> Mapping[str, SimulatedJob]:
        """Every job created, by task id (a read-only view)."""
        return MappingProxyType(self._core.jobs)

    def now(self) -> float:
        """The simulator's clock (the event loop's time unless a ``clock`` was given)."""
        return self._core.now()

    def timeline(self) -> dict[str, Any]:
        """Every job's timeline, as ``GET /_simulator/jobs`` answers it (simulator clock, in seconds).

        ``{"now": ..., "jobs": [{"task_id", "model", "created", "finishes_at",
        "poll_count", "done_at"}, ...]}``, jobs in submit order. ``finishes_at`` is
        ``created + plan.duration`` (``None`` for a job that never finishes);
        ``done_at`` is when a poll first found the job done (``None`` until then).
        """
        return self._core.timeline()

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
            "rate_limited": records.rate_limited,
            "concurrency_limited": records.concurrency_limited,
        }

    def cache_stats(self) -> dict[str, Any]:
        """What the response cache did, as ``GET /_simulator/cache`` answers it.

        ``{"entries": ..., "hits": ..., "billed": ..., "keys": {cache_key: {"billed": ..., "hits": ...}}}``:
        the entries that would answer a request now, the submits answered from the cache, every billed
        job (with or without a key), and per ``cache_key`` the jobs it created and the hits it got.
        """
        return self._core.cache_stats()

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
        billed = self._core.billed_jobs()
        return sum(job_matches(job, prompt=prompt, model=model, cache_key=cache_key, where=where) for job in billed)

    def reset_records(self) -> None:
        """Forget recorded requests and counts (see :meth:`SimulatorRecords.reset`); jobs are kept."""
        self.records.reset()

    # -- serving -------------------------------------------------------------

    def app(self) -> web.Application:
        """A new ``aiohttp.web.Application`` answering for this simulator, to mount or run yourself."""
        return build_app(self._core, self)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> SimulatorServer:
        """Serve on ``host:port`` (``0``: a free port) for the duration of ``async with``.

        ``async with sim.serve() as server:`` starts the server and yields the
        :class:`SimulatorServer`, whose ``base_url`` is what a client needs.
        """
        return SimulatorServer(self, host=host, port=port)


def _prompt_contains(text: str) -> BodyPredicate:
    def predicate(body: Mapping[str, Any]) -> bool:
        prompt = body.get("prompt")
        return isinstance(prompt, str) and text in prompt

    return predicate


# Requests still running when the server closes get this long to finish. Slow
# faults are woken at shutdown, so nothing normally needs more than a moment.
SHUTDOWN_TIMEOUT: Final = 2.0


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class SimulatorServer:
    """A :class:`FastRouterSimulator` listening on ``host:port``.

    Usually obtained from ``async with simulator.serve() as server:``. For a
    fixture without ``async with``: ``server = await SimulatorServer(sim).start()``
    and later ``await server.aclose()``. A server runs once: after ``aclose()``
    create a new one (the simulator, with its jobs and records, can be reused).
    """

    def __init__(self, simulator: FastRouterSimulator, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        self._state = _State.NEW

    def __repr__(self) -> str:
        where = self.origin if self._state is _State.RUNNING else self._state.value
        return f"<SimulatorServer {where}>"

    @property
    def port(self) -> int:
        """The port listened on (the one chosen by the OS when asked for port 0)."""
        if self._port is None or self._state is not _State.RUNNING:
            raise RuntimeError(f"the simulator server is {self._state.value}, not running")
        return self._port

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``: where downloads (``/videos-content``, ``/cdn``) are served."""
        return str(URL.build(scheme="http", host=self.host, port=self.port))

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/api/v1``: the base URL to give a FastRouter client."""
        return f"{self.origin}/api/v1"

    async def start(self) -> SimulatorServer:
        """Bind and start serving; returns ``self``."""
        if self._state is not _State.NEW:
            raise RuntimeError(f"the simulator server is {self._state.value}; create a new one to serve again")
        runner = web.AppRunner(self.simulator.app(), shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            self._state = _State.CLOSED
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._state = _State.RUNNING
        return self

    async def aclose(self) -> None:
        """Stop listening, close every connection and wait for handlers to end. Idempotent."""
        runner, self._runner = self._runner, None
        self._state = _State.CLOSED
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> SimulatorServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
