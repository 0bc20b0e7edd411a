"""One job of a batch, from its slot to its outcome: submit (or re-attach), wait, download, journal."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ._batch_hooks import JournalHooks, replay_refused
from ._batch_plan import Action, Item, Why, past_window, replay_expired
from ._batch_spend import BatchSpend
from ._batch_tally import Tally, uncertain_outcome
from ._batch_values import BatchOutcome, OutcomeStatus
from ._errors import (
    AuthenticationError,
    FastRouterError,
    InsufficientCreditsError,
    JobFailedError,
    NotFoundError,
    PermissionDeniedError,
    SpendCapError,
    SubmitUncertainError,
)
from ._events import Event, StatusChanged
from ._filenames import unique_path
from ._job_life import JobLife, attached, submitted
from ._journal import Journal, JournalError
from ._submits import SubmitIdentity

if TYPE_CHECKING:
    from ._engine import Engine
    from ._slots import Slot
    from ._spend import SpendHold

__all__ = ["ACCOUNT_ERRORS", "JobRunner"]

logger = logging.getLogger("fastrouter_async")

ACCOUNT_ERRORS = (AuthenticationError, InsufficientCreditsError, PermissionDeniedError)
# 401, 402, 403: the key, the credits or the permission is wrong for every job alike, so the first
# one stops all further submits (the next 499 would be refused the same way).


class JobRunner:
    """Runs the jobs of one started batch (see :meth:`run`)."""

    def __init__(
        self,
        engine: Engine,
        tally: Tally,
        spend: BatchSpend,
        *,
        journal: Journal | None,
        output_dir: Path | None,
        names: list[str] | None,
        timeout: float | None,
        statuses: Callable[[Item, str], None] | None,
    ) -> None:
        self._engine = engine
        self._tally = tally
        self._spend = spend
        self._journal = journal
        self._output_dir = output_dir
        self._names = names
        self._timeout = timeout
        self._statuses = statuses  # records a job's status word in the journal, in order
        self._reserved: set[Path] = set()

    async def run(self, item: Item, slot: Slot | None) -> BatchOutcome:
        """Run one job to its outcome: submit or re-attach it, wait for its end, download its video."""
        engine = self._engine
        resumed = item.action is Action.ATTACH
        if resumed:
            job = self._attach_earlier(item, slot)
        else:
            if self._tally.stopped_by is not None:  # stopped while this job waited for its slot
                if slot is not None:
                    slot.release()
                self._tally.moved("waiting", "not_sent")
                return self._tally.never_sent(item)
            too_late = await self._replay_too_late(item, slot)
            if too_late is not None:
                return too_late
            hold = self._reserve(item, slot)
            if isinstance(hold, BatchOutcome):
                return hold
            self._tally.moved("waiting", "submitting")
            try:
                hooks = None if self._journal is None else JournalHooks(self._journal, item)
                job = await submitted(engine, item.request, slot, hooks=hooks, identity=self._identity(item), hold=hold)
            except SubmitUncertainError as exc:
                item.cache_key = exc.cache_key or item.cache_key
                if exc.task_id is not None:
                    # The answer could not be read but showed the task id: record it and follow that task.
                    logger.warning("request #%d (%s): %s", item.index, item.request.describe(), exc)
                    if self._journal is not None:
                        await self._journal.submitted(item.key, exc.task_id)
                    slot = await engine.acquire_slot()
                    job = attached(
                        engine,
                        exc.task_id,
                        item.request.model,
                        item.request,
                        slot,
                        submitted_wall_time=time.time(),
                        spend_hold=hold,
                    )
                    self._tally.moved("submitting", "running")
                    engine.events.follow(job.task_id, self._observer(item))
                    return await self._finish_job(item, job, False)
                if self._journal is not None:
                    await self._journal.uncertain(item.key, exc.reason)
                return self._tally.ended(item, "submitting", OutcomeStatus.UNCERTAIN, error=exc)
            except JournalError:
                raise
            except FastRouterError as exc:
                if isinstance(exc, ACCOUNT_ERRORS):
                    self._tally.stop(exc)
                if hooks is not None and hooks.replayed:  # refused on a replay: an earlier attempt may have created it
                    uncertain = SubmitUncertainError(
                        item.request,
                        replay_refused(str(exc)),
                        cache_key=item.cache_key,
                        first_attempt_at=item.first_attempt_at,
                    )
                    uncertain.__cause__ = exc
                    return self._tally.ended(item, "submitting", OutcomeStatus.UNCERTAIN, error=uncertain)
                status = OutcomeStatus.NOT_SENT if isinstance(exc, ACCOUNT_ERRORS) else OutcomeStatus.FAILED
                return self._tally.ended(item, "submitting", status, error=exc)
            except Exception as exc:  # a bug ends this job only; it may have been submitted
                logger.exception(
                    "request #%d (%s): unexpected error while submitting", item.index, item.request.describe()
                )
                uncertain = SubmitUncertainError(item.request, f"unexpected {type(exc).__name__} while submitting")
                if self._journal is not None:
                    await self._journal.uncertain(item.key, uncertain.reason)
                return self._tally.ended(item, "submitting", OutcomeStatus.UNCERTAIN, error=uncertain)
            await self._submitted(item, job)
            self._tally.moved("submitting", "running")
        engine.events.follow(job.task_id, self._observer(item))
        return await self._finish_job(item, job, resumed)

    def _attach_earlier(self, item: Item, slot: Slot | None) -> JobLife:
        """Follow a job an earlier run submitted (by its task id), with what was reserved for it."""
        assert item.entry is not None
        assert item.entry.task_id is not None
        job = attached(
            self._engine,
            item.entry.task_id,
            item.entry.model,
            item.request,
            slot,
            submitted_wall_time=item.entry.submitted_at,
            spend_hold=self._spend.hold_for_attached(item),
        )
        self._tally.moved("waiting", "running")
        self._tally.counts["resumed"] += 1
        return job

    def _reserve(self, item: Item, slot: Slot | None) -> SpendHold | BatchOutcome | None:
        """Reserve the job's estimate before anything is sent, or stop the batch at its spend cap."""
        self._spend.started(item.index)
        try:
            ledger = self._spend.ledger
            hold = self._engine.costs.hold(
                item.request, ledger, self._spend.key(item), track_unknown=not math.isfinite(ledger.cap_usd)
            )
        except SpendCapError as exc:
            if slot is not None:
                slot.release()
            self._tally.stop(exc)
            self._tally.moved("waiting", "not_sent")
            return self._tally.never_sent(item)
        self._spend.recorded(item, hold)
        return hold

    async def _finish_job(self, item: Item, job: JobLife, resumed: bool) -> BatchOutcome:
        journal = self._journal
        try:
            result = await job.result(self._timeout)
        except JobFailedError as exc:
            if journal is not None:
                await journal.failed(item.key, exc.message)
            return self._tally.ended(
                item, "running", OutcomeStatus.FAILED, error=exc, task_id=job.task_id, resumed=resumed
            )
        except NotFoundError as exc:
            # Past the not-visible-yet grace window FastRouter does not know the task (any more):
            # it ended for good. Recorded as failed, so a re-run reports it and --retry-failed
            # (retry_failed=True) can submit the request again.
            if journal is not None:
                await journal.failed(item.key, f"FastRouter no longer knows task {job.task_id}: {exc}")
            return self._tally.ended(
                item, "running", OutcomeStatus.FAILED, error=exc, task_id=job.task_id, resumed=resumed
            )
        except JournalError:
            raise
        except FastRouterError as exc:
            # Timed out, or polling failed for good: the job may still be running; a re-run re-attaches it.
            job.release_slot()
            if journal is not None:
                await journal.problem(item.key, str(exc))
            return self._tally.ended(
                item, "running", OutcomeStatus.FAILED, error=exc, task_id=job.task_id, resumed=resumed
            )
        if journal is not None:
            await journal.succeeded(item.key, cost_usd=result.cost_usd)
        if self._output_dir is None:
            return self._tally.ended(item, "running", OutcomeStatus.SUCCEEDED, result=result, resumed=resumed)
        self._tally.moved("running", "downloading")
        target = self._target(item)
        if journal is not None:
            await journal.target(item.key, target)
        try:
            file = await result.download(target, overwrite=True)
        except JournalError:
            raise
        except FastRouterError as exc:
            if journal is not None:
                await journal.problem(item.key, f"download failed: {exc}")
            return self._tally.ended(
                item, "downloading", OutcomeStatus.FAILED, error=exc, result=result, resumed=resumed
            )
        if journal is not None:
            await journal.file(item.key, path=file.path, size=file.size, sha256=file.sha256)
        return self._tally.ended(
            item, "downloading", OutcomeStatus.SUCCEEDED, result=result, file=file, resumed=resumed
        )

    def _target(self, item: Item) -> Path:
        assert self._output_dir is not None
        entry = item.entry
        if entry is not None and entry.file_path is not None:
            # The path reserved by an earlier run: its video is missing, damaged, or was written
            # just before that run stopped, without its size and sha256 being recorded.
            return Path(entry.file_path)
        assert self._names is not None
        name = self._names[item.index]
        # Never replace a file this batch did not write for this job, nor one another job of this
        # batch has reserved: take the next free name.
        stem, dot, suffix = name.rpartition(".")
        stem, suffix = (stem, dot + suffix) if dot and stem else (name, "")
        candidate = unique_path(self._output_dir, name, overwrite=False)
        number = 2
        while candidate in self._reserved:
            candidate = unique_path(self._output_dir, f"{stem}-{number}{suffix}", overwrite=False)
            number += 1
        self._reserved.add(candidate)
        return candidate

    async def _replay_too_late(self, item: Item, slot: Slot | None) -> BatchOutcome | None:
        """A replay that waited for its slot past the window is not sent: FastRouter may no longer match its task."""
        window = self._engine.replay_policy.window
        now = time.time()
        if item.why is not Why.REPLAY or not replay_expired(item, window=window, now=now):
            return None
        if slot is not None:
            slot.release()
        assert item.entry is not None
        item.uncertain_reason = past_window(item, window=window, now=now)
        outcome = uncertain_outcome(item, item.entry)
        if self._journal is not None:
            await self._journal.uncertain(item.key, item.uncertain_reason)
        self._tally.moved("waiting", "uncertain")
        return outcome

    def _identity(self, item: Item) -> SubmitIdentity | None:
        """The key and first-attempt time the session sends this job with (``None``: a fresh key of its own)."""
        if item.cache_key is None and item.first_attempt_at is None:
            return None
        return SubmitIdentity(cache_key=item.cache_key, first_attempt_at=item.first_attempt_at)

    async def _submitted(self, item: Item, job: JobLife) -> None:
        """Keep what the accepted submit said: its key, whether it was found again, its estimate."""
        item.cache_key = job.cache_key or item.cache_key
        item.found_again = job.found_again
        item.estimate = job.submit_estimate
        estimate = job.submit_estimate
        if self._journal is not None and estimate is not None:
            await self._journal.estimate(item.key, credits=estimate.credits, usd=estimate.usd)

    def _observer(self, item: Item) -> Callable[[Event], None]:
        def observe(event: Event) -> None:
            if not isinstance(event, StatusChanged):
                return
            status = event.status
            if self._statuses is not None and not status.done:
                # Recorded by the batch's journal writer, in order, without holding up the poll.
                self._statuses(item, status.raw_status or status.state.value)

        return observe
