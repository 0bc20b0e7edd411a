"""The values a batch reports: how each job ended (:class:`BatchOutcome`) and progress snapshots."""

from __future__ import annotations

import enum

import attrs

from ._errors import FastRouterError, JobFailedError, NotFoundError
from ._models import Cost, DownloadedFile, SubmitEstimate, VideoRequest, VideoResult

__all__ = ["BatchOutcome", "BatchProgress", "OutcomeStatus"]


class OutcomeStatus(enum.Enum):
    """How one job of a batch ended (for this run)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    """The submit may have created a job whose task id was lost; it was not submitted again."""
    NOT_SENT = "not_sent"
    """Never submitted: the batch was stopped by an account error or by its spend cap
    (``BatchRun.stopped_by``) before this job's turn, or its submit was refused with that error.
    Nothing was created or billed; running the batch again (with the problem fixed, or a higher cap)
    submits it."""


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
    estimated_usd: float | None = None
    """What the job was estimated to cost before it was sent (``session.estimate``; ``None``: unknown)."""
    submitted_elsewhere: bool = False
    """Another process running the same batch through the session's ``store`` submitted this job; this
    one followed it (docs/batch.md, "Several processes on one batch")."""
    downloaded_elsewhere: bool = False
    """Another process running the same batch through the session's ``store`` downloaded the video; this
    one checked the file (size and sha256) in the shared output folder."""

    @property
    def final_cost(self) -> Cost:
        """What the job was billed: ``"final"`` from its result (or the journal, for a job finished in an
        earlier run), ``"free"`` for a job that failed or was never sent, ``"unknown"`` when not stated,
        for an uncertain submit and for a job whose wait ended while it may still run."""
        if self.result is not None:  # also a job whose download failed: it was billed
            return self.result.final_cost
        if self.status is OutcomeStatus.SUCCEEDED:
            return Cost.of("final", usd=self.cost_usd, credits=None)
        if self.status is OutcomeStatus.NOT_SENT or isinstance(self.error, JobFailedError | NotFoundError):
            return Cost.free()
        return Cost.unknown()  # uncertain, or stopped waiting while the job may still run

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
    """Never submitted, because an account error or the spend cap stopped the batch (see ``BatchRun.stopped_by``)."""
    spent_usd: float = 0.0
    """Final costs of the batch's jobs that ended (with a journal, earlier runs' too)."""
    reserved_usd: float = 0.0
    """Estimates reserved for the jobs submitted and not ended yet."""
    rest_usd: float = 0.0
    """The estimate of the jobs not sent yet (those of known price)."""
    rest_unknown: int = 0
    """How many jobs not sent yet have an unknown price (not in ``rest_usd``)."""
    max_spend_usd: float | None = None
    """The batch's spend cap (``None``: none)."""

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.uncertain + self.not_sent
