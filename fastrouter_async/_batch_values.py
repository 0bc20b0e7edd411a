"""The values a batch reports: how each job ended (:class:`BatchOutcome`) and progress snapshots."""

from __future__ import annotations

import enum

import attrs

from ._errors import FastRouterError
from ._models import DownloadedFile, SubmitEstimate, VideoRequest, VideoResult

__all__ = ["BatchOutcome", "BatchProgress", "OutcomeStatus"]


class OutcomeStatus(enum.Enum):
    """How one job of a batch ended (for this run)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    """The submit may have created a job whose task id was lost; it was not submitted again."""
    NOT_SENT = "not_sent"
    """Never submitted: the batch was stopped by an account error (``BatchRun.stopped_by``) before this
    job's turn, or its submit was refused with that error. Nothing was created or billed; running the
    batch again (with the problem fixed) submits it."""


@attrs.frozen(kw_only=True)
class BatchOutcome:
    """What became of one request of a batch."""

    index: int
    """0-based position of the request in the input."""
    request: VideoRequest
    status: OutcomeStatus
    task_id: str | None = None
    result: VideoResult | None = None
    """The finished video (``None`` for failures and for jobs finished in an earlier run)."""
    file: DownloadedFile | None = None
    """The downloaded file, when the batch has an ``output_dir``."""
    error: FastRouterError | None = None
    cost_usd: float | None = None
    resumed: bool = False
    """The job was submitted by an earlier run and re-attached by its task id."""
    from_journal: bool = False
    """The job had finished in an earlier run: nothing was requested for it this time."""
    found_again: bool | None = None
    """True: a submit whose answer was lost (in this run, or in an earlier run that stopped mid-submit) was
    sent again with the same cache key, and FastRouter answered with the job the first attempt had created:
    found again, **not billed twice**. False: created by its submit. ``None``: not known (never submitted,
    replays off, a journal of an older version, or an answer that did not say)."""
    cache_key: str | None = None
    """The ``cache_key`` the job's submits carried (``None``: none, or not known)."""
    submit_estimate: SubmitEstimate | None = None
    """What the create answer said the job costs (``estimate_usage``); a job found again shows no credits.
    Never added to ``cost_usd``: the job's cost is what its finished result reports, counted once."""

    @property
    def ok(self) -> bool:
        return self.status is OutcomeStatus.SUCCEEDED


@attrs.frozen(kw_only=True)
class BatchProgress:
    """A snapshot of a running batch, for progress displays."""

    total: int
    waiting: int
    """Not started yet (waiting for a slot under ``max_concurrent_jobs``)."""
    submitting: int
    running: int
    """Submitted (or re-attached) and not yet seen to end."""
    downloading: int
    succeeded: int
    failed: int
    uncertain: int
    skipped: int
    """Finished in an earlier run (counted in ``succeeded``/``failed`` too)."""
    resumed: int
    """Re-attached to tasks submitted by an earlier run."""
    not_sent: int = 0
    """Never submitted, because an account error stopped the batch (see ``BatchRun.stopped_by``)."""

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.uncertain + self.not_sent
