"""What a session shows: its settings, counters and snapshots, what it learned and spent, its jobs.

:class:`SessionViews` is the read-only side of :class:`~fastrouter_async.FastRouterSession` (its
base class): everything here reads the engine, and nothing starts or changes a job.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._batch import prepare_requests
from ._budget import RequestBudget
from ._config import PollPolicy, ReplayPolicy
from ._costs import SpendEstimate
from ._models import JobState, VideoRequest
from ._poller import PollerStatistics
from ._shared import JobRecord

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["SessionViews"]


class SessionViews:
    """The read-only side of a session (see the module docstring)."""

    _engine: Engine
    _base_url: str
    _closed: bool
    _validate: bool

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def max_concurrent_jobs(self) -> int | None:
        return self._engine.slots.limit

    @property
    def request_budget(self) -> RequestBudget | None:
        return self._engine.budget

    @property
    def rate_limited(self) -> int:
        """How many "too many requests" 429 answers this session has received (each slowed the whole session)."""
        return self._engine.throttle.rate_limited

    @property
    def concurrency_limited(self) -> int:
        """How many submits were refused with "too many jobs at once" (each lowered the job cap instead)."""
        return self._engine.slots.times_limited

    @property
    def effective_max_concurrent_jobs(self) -> int | None:
        """The cap on jobs in flight right now: ``max_concurrent_jobs``, lowered while FastRouter
        refuses submits with "too many jobs at once" and restored as submits are accepted again."""
        return self._engine.slots.current

    @property
    def jobs_in_flight(self) -> int:
        """Jobs submitted by this session that hold a slot (not yet seen to end)."""
        return self._engine.slots.in_flight

    @property
    def submits_waiting(self) -> int:
        """Submits currently waiting for a slot (backpressure: the cap is reached)."""
        return self._engine.slots.waiting

    @property
    def max_concurrent_downloads(self) -> int | None:
        return self._engine.downloader.max_concurrent

    @property
    def max_download_bytes(self) -> int | None:
        return self._engine.downloader.max_bytes

    @property
    def downloads_in_flight(self) -> int:
        """Download requests of this session streaming right now (bounded by ``max_concurrent_downloads``)."""
        return self._engine.downloader.in_flight

    @property
    def poll_policy(self) -> PollPolicy:
        return self._engine.poll_policy

    @property
    def replay_policy(self) -> ReplayPolicy:
        """How submits whose answer was lost are sent again with the same cache key (exactly-once submits)."""
        return self._engine.replay_policy

    def poller_statistics(self) -> PollerStatistics:
        """How the shared poller keeps up with its schedule: jobs scheduled, polls, lateness, ``behind``."""
        return self._engine.poller.statistics()

    def export_durations(self) -> dict[str, Any]:
        """What this session has learned about how long jobs take, as JSON-ready data.

        Save it (``json.dump``) and hand it to :meth:`import_durations` of a later
        session, so that its polling starts warm instead of from the priors.
        Durations are in seconds as measured (a time-scaled simulator's, if that
        is what ran the jobs).
        """
        return self._engine.durations.export()

    def import_durations(self, data: Mapping[str, Any]) -> int:
        """Take over durations exported by :meth:`export_durations`; returns how many estimates were loaded.

        An estimate for a model and length replaces this session's own for that key.
        Malformed data raises :class:`InvalidRequestError` naming the field, and loads nothing.
        """
        return self._engine.durations.load(data)

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
        return self._engine.costs.estimate(prepare_requests(requests, check=self._validate))

    @property
    def max_spend_usd(self) -> float | None:
        """The spend cap in US dollars (``None``: no cap)."""
        ledger = self._engine.costs.ledger
        return None if ledger is None else ledger.cap_usd

    @property
    def spent_usd(self) -> float:
        """Final costs of the jobs of this session that ended under the cap (0 without a cap)."""
        ledger = self._engine.costs.ledger
        return 0.0 if ledger is None else ledger.spent

    @property
    def reserved_usd(self) -> float:
        """Estimates reserved for jobs of this session not ended yet (0 without a cap)."""
        ledger = self._engine.costs.ledger
        return 0.0 if ledger is None else ledger.reserved

    def export_costs(self) -> dict[str, Any]:
        """What this session's finished jobs cost, by model and parameters, as JSON-ready data
        (hand it to :meth:`import_costs` of a later session: its estimates then use it)."""
        return self._engine.costs.paid.export()

    def import_costs(self, data: Mapping[str, Any]) -> int:
        """Take over costs exported by :meth:`export_costs`; returns how many were loaded
        (malformed data raises :class:`InvalidRequestError` and loads nothing)."""
        return self._engine.costs.paid.load(data)

    # --- jobs -------------------------------------------------------------------------------

    @property
    def store(self) -> str | None:
        """The store shared with other processes, as it may be shown (no password); ``None``: none."""
        sharing = self._engine.sharing
        return None if sharing is None else sharing.shown_url

    async def jobs(
        self,
        *,
        states: Collection[JobState | None] | None = None,
        model: str | None = None,
        finished: bool | None = None,
        limit: int | None = None,
    ) -> list[JobRecord]:
        """The recorded jobs, oldest submit first: with a ``store``, every job of the account recorded
        there by any process; without one, this session's (its unfinished jobs and the 4,096 most
        recent ended ones). Filter by ``states`` (``None`` among them: submits whose task id is not
        known), ``model``, ``finished`` and ``limit``. Sends nothing to FastRouter."""
        sharing = self._engine.sharing
        if sharing is not None:
            return await sharing.records(states=states, model=model, finished=finished, limit=limit)
        return self._engine.record.list(states=states, model=model, finished=finished, limit=limit)

    async def job_record(self, task_id: str) -> JobRecord | None:
        """What is recorded of ``task_id`` (as :meth:`jobs` lists it), or ``None``; sends nothing to FastRouter.

        A web worker answers "what is the status of task X" with this, from the store, while the
        process that watches the job polls it.
        """
        sharing = self._engine.sharing
        if sharing is not None:
            return await sharing.record(task_id)
        return self._engine.record.get(task_id)
