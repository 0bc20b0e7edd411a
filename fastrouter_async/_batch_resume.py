"""Resuming a batch from its journal: what each job needs this run, and the files finished earlier.

The decision for one job is pure (``_batch_plan.decide``); this applies it to every job of
the batch, logs what a re-run does differently, records what became uncertain, and checks
the files of jobs finished in an earlier run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import anyio

from ._batch_inputs import file_matches
from ._batch_keys import batch_namespace
from ._batch_plan import Action, Item, KeyContext, Why, decide
from ._batch_tally import facts, finished_earlier, uncertain_outcome
from ._batch_values import BatchOutcome, OutcomeStatus
from ._config import ReplayPolicy
from ._errors import JobFailedError
from ._journal import JobKey, Journal, JournalEntry, JournalState
from ._models import DownloadedFile

__all__ = ["plan", "verified_file"]

logger = logging.getLogger("fastrouter_async")


async def plan(
    items: list[Item],
    entries: Mapping[JobKey, JournalEntry],
    *,
    journal: Journal | None,
    output_dir: Path | None,
    replay_policy: ReplayPolicy,
    resubmit_uncertain: bool,
    retry_failed: bool,
) -> None:
    """Decide, from the journal, what each job needs this run, and the cache key it carries."""
    policy = replay_policy
    journal_path = journal.path if journal is not None else None
    context = KeyContext(
        namespace=batch_namespace(journal=journal_path, output_dir=output_dir),
        enabled=policy.enabled,
        window=policy.window,
        now=time.time(),
    )
    for item in items:
        entry = entries.get(item.key)
        if entry is not None and entry.state is not JournalState.NOT_SENT:
            item.estimated_usd = entry.reserved_usd  # what was estimated when it was sent, as recorded
        decide(
            item,
            entry,
            context,
            resubmit_uncertain=resubmit_uncertain,
            retry_failed=retry_failed,
            downloads=output_dir is not None,
        )
        if item.why is Why.REPLAY:
            logger.info(
                "request #%d (%s): its earlier submit's outcome is unknown; sending it again with its cache key",
                item.index,
                item.request.describe(),
            )
        elif item.why is Why.RESUBMIT:
            logger.warning(
                "request #%d (%s): its earlier submit may have created a job; resubmitting as asked",
                item.index,
                item.request.describe(),
            )
        if item.action is not Action.REPORT:
            continue
        assert entry is not None
        if item.why is Why.UNCERTAIN:
            item.outcome = uncertain_outcome(item, entry)
            if journal is not None and entry.state is JournalState.SUBMITTING:
                await journal.uncertain(item.key, item.outcome.error.reason)
        elif item.why is Why.FAILED:
            item.outcome = BatchOutcome(
                index=item.index,
                request=item.request,
                status=OutcomeStatus.FAILED,
                task_id=entry.task_id,
                error=JobFailedError(entry.task_id or "?", entry.model, entry.error or "the job failed"),
                from_journal=True,
                **facts(item),
            )
        else:
            item.outcome = finished_earlier(item, entry, None)


async def verified_file(entry: JournalEntry) -> DownloadedFile | None:
    if entry.file_path is None or entry.file_size is None or entry.file_sha256 is None:
        return None  # reserved but never recorded as written: fetched again
    path = Path(entry.file_path)
    ok = await anyio.to_thread.run_sync(file_matches, path, entry.file_size, entry.file_sha256)
    if not ok:
        logger.warning("the video of task %s is no longer intact at %s; fetching it again", entry.task_id, path)
        return None
    return DownloadedFile(path=path, size=entry.file_size, sha256=entry.file_sha256, task_id=entry.task_id)
