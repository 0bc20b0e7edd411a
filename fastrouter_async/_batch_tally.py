"""A batch's tally: how many jobs are at each stage, the error that stopped submits, each outcome made.

The outcomes themselves are built here too, so the run, the resume plan and the job runner
(``_batch``, ``_batch_resume``, ``_batch_job``) count and describe jobs the same way.
"""

from __future__ import annotations

import logging
from typing import Any

from ._batch_plan import Item
from ._batch_spend import BatchSpend
from ._batch_values import BatchOutcome, OutcomeStatus
from ._errors import FastRouterError, SpendCapError, SubmitUncertainError
from ._journal import JournalEntry, JournalState
from ._models import DownloadedFile, VideoResult

__all__ = ["STAGES", "Tally", "bucket", "facts", "finished_earlier", "uncertain_outcome"]

logger = logging.getLogger("fastrouter_async")

STAGES = (
    "waiting",
    "submitting",
    "running",
    "downloading",
    "succeeded",
    "failed",
    "uncertain",
    "skipped",
    "resumed",
    "not_sent",
)

DIED_WHILE_SUBMITTING = (
    "an earlier run stopped after recording the intent to submit and before recording FastRouter's answer"
)


class Tally:
    """The counts of one batch (see :class:`BatchProgress`) and the error that stopped its submits."""

    def __init__(self, total: int, spend: BatchSpend) -> None:
        self.counts = dict.fromkeys(STAGES, 0)
        self.counts["waiting"] = total
        self.stopped_by: FastRouterError | None = None
        self._spend = spend

    def reported(self, outcome: BatchOutcome) -> None:
        """An outcome known without running the job (from the journal, or never sent)."""
        self.moved("waiting", bucket(outcome))
        if outcome.from_journal and outcome.status is not OutcomeStatus.UNCERTAIN:
            self.counts["skipped"] += 1

    def stop(self, error: FastRouterError) -> None:
        if self.stopped_by is None:
            self.stopped_by = error
            fix = "raise the cap" if isinstance(error, SpendCapError) else "fix the account problem"
            logger.error(
                "the batch stopped submitting: %s (%s). Jobs already submitted are followed to their end; the "
                "others were not sent: %s and run the batch again to submit them.",
                type(error).__name__,
                error,
                fix,
            )

    def never_sent(self, item: Item) -> BatchOutcome:
        self._spend.started(item.index)
        return BatchOutcome(
            index=item.index,
            request=item.request,
            status=OutcomeStatus.NOT_SENT,
            error=self.stopped_by,
            estimated_usd=item.estimated_usd,
        )

    def ended(
        self,
        item: Item,
        stage: str,
        status: OutcomeStatus,
        *,
        error: FastRouterError | None = None,
        result: VideoResult | None = None,
        file: DownloadedFile | None = None,
        task_id: str | None = None,
        resumed: bool = False,
    ) -> BatchOutcome:
        outcome = BatchOutcome(
            index=item.index,
            request=item.request,
            status=status,
            task_id=result.task_id if result is not None else task_id,
            result=result,
            file=file,
            error=error,
            cost_usd=result.cost_usd if result is not None else None,
            resumed=resumed,
            **facts(item),
        )
        if status is OutcomeStatus.FAILED and error is not None:
            logger.warning("request #%d (%s) failed: %s", item.index, item.request.describe(), error)
        self.moved(stage, bucket(outcome))
        return outcome

    def moved(self, source: str, target: str) -> None:
        self.counts[source] -= 1
        self.counts[target] += 1


def facts(item: Item) -> dict[str, Any]:
    """The submit facts of a job for its outcome: found again by a replay, its key, its estimate."""
    return {
        "found_again": item.found_again,
        "cache_key": item.cache_key,
        "submit_estimate": item.estimate,
        "estimated_usd": item.estimated_usd,
    }


def bucket(outcome: BatchOutcome) -> str:
    return {
        OutcomeStatus.SUCCEEDED: "succeeded",
        OutcomeStatus.FAILED: "failed",
        OutcomeStatus.UNCERTAIN: "uncertain",
        OutcomeStatus.NOT_SENT: "not_sent",
    }[outcome.status]


def finished_earlier(item: Item, entry: JournalEntry, file: DownloadedFile | None) -> BatchOutcome:
    return BatchOutcome(
        index=item.index,
        request=item.request,
        status=OutcomeStatus.SUCCEEDED,
        task_id=entry.task_id,
        file=file,
        cost_usd=entry.cost_usd,
        from_journal=True,
        **facts(item),
    )


def uncertain_outcome(item: Item, entry: JournalEntry) -> BatchOutcome:
    if item.uncertain_reason is not None:
        reason = item.uncertain_reason
    elif entry.state is JournalState.UNCERTAIN and entry.error:
        reason = entry.error
    else:
        reason = DIED_WHILE_SUBMITTING
    error = SubmitUncertainError(
        item.request, reason, cache_key=entry.cache_key, first_attempt_at=entry.first_attempt_at
    )
    return BatchOutcome(
        index=item.index,
        request=item.request,
        status=OutcomeStatus.UNCERTAIN,
        error=error,
        from_journal=True,
        cache_key=entry.cache_key,
    )
