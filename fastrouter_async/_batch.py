"""``session.generate_many``: many requests in, one outcome per request out, in completion order.

A :class:`BatchRun` owns one driver task that feeds the requests to workers
under the session's ``max_concurrent_jobs`` and sends each outcome to the
consumer as soon as it is known. One failing job never stops the others.

With a journal, each job's life is recorded (see :mod:`._journal`) and a
re-run of the same batch resumes: finished jobs are skipped (their files
checked), submitted jobs are re-attached by task id and never resubmitted,
jobs never submitted are submitted, and jobs whose submit outcome is unknown
are replayed with their recorded cache key while their first attempt is inside
the session's replay window (see :mod:`._batch_plan`); past it they are
reported and left alone unless ``resubmit_uncertain=True``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._batch_hooks import JournalHooks, replay_refused
from ._batch_inputs import default_filename, file_matches, output_dir_path, prepare_requests
from ._batch_keys import batch_namespace
from ._batch_plan import Action, Item, KeyContext, Why, decide, past_window, replay_expired
from ._batch_spend import BatchSpend
from ._batch_values import BatchOutcome, BatchProgress, OutcomeStatus
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
from ._filenames import plan_names, unique_path
from ._job_life import JobLife, attached, submitted
from ._journal import JobKey, Journal, JournalEntry, JournalError, JournalState, fingerprint, keys_for
from ._journal_read import BatchJournal, match_records, read_journal
from ._models import DownloadedFile, VideoRequest, VideoResult
from ._protocol import build_submit_body
from ._submits import SubmitIdentity

if TYPE_CHECKING:
    from ._engine import Engine
    from ._slots import Slot
    from ._spend import SpendHold

__all__ = ["BatchOutcome", "BatchProgress", "BatchRun", "OutcomeStatus", "output_dir_path", "prepare_requests"]

logger = logging.getLogger("fastrouter_async")

FileNamer = Callable[[int, VideoRequest], str]

ACCOUNT_ERRORS = (AuthenticationError, InsufficientCreditsError, PermissionDeniedError)
# 401, 402, 403: the key, the credits or the permission is wrong for every job alike, so the first
# one stops all further submits (the next 499 would be refused the same way).


class BatchRun:
    """The running batch returned by ``session.generate_many()``: an async iterator of :class:`BatchOutcome`.

    ::

        async with session.generate_many(requests, output_dir="videos", journal="videos/journal.sqlite") as batch:
            async for outcome in batch:
                print(outcome.index, outcome.status, outcome.file or outcome.error)

    Iterating to the end needs no ``async with``; use it (or :meth:`aclose`)
    when you may stop early: closing stops the batch cleanly, a submit already
    on its way finishes and its task id is kept (journaled), and the session's
    ``aclose()`` closes batches left open.
    """

    def __init__(
        self,
        engine: Engine,
        requests: list[VideoRequest],
        *,
        output_dir: Path | None,
        filename: FileNamer | None,
        journal: Path | None,
        resubmit_uncertain: bool,
        retry_failed: bool,
        timeout: float | None,
        spend: BatchSpend,
    ) -> None:
        self._engine = engine
        self._spend = spend
        self._requests = requests
        self._output_dir = output_dir
        namer = filename or default_filename
        # Every name is made and checked now, before anything is sent: a bad name found after the
        # submits would cost paid jobs with nowhere to put their videos.
        self._names = (
            None if output_dir is None else plan_names(len(requests), lambda index: namer(index, requests[index]))
        )
        self._journal_path = journal
        self._resubmit_uncertain = resubmit_uncertain
        self._retry_failed = retry_failed
        self._timeout = timeout
        self._journal: Journal | None = None
        self._reserved: set[Path] = set()
        self._driver: asyncio.Task[None] | None = None
        # Streams are made when the batch starts, so a batch that is never started leaks nothing.
        self._send: MemoryObjectSendStream[BatchOutcome | BaseException] | None = None
        self._receive: MemoryObjectReceiveStream[BatchOutcome | BaseException] | None = None
        self._status_send: MemoryObjectSendStream[tuple[JobKey, str]] | None = None
        self._status_receive: MemoryObjectReceiveStream[tuple[JobKey, str]] | None = None
        self._started = False
        self._closed = False
        self._start_lock = anyio.Lock()
        self._counts = dict.fromkeys(
            (
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
            ),
            0,
        )
        self._counts["waiting"] = len(requests)
        self._stopped_by: FastRouterError | None = None

    # --- the consumer's side ------------------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self._requests)

    @property
    def progress(self) -> BatchProgress:
        spend = self._spend
        rest_usd, rest_unknown = spend.rest
        return BatchProgress(
            total=len(self._requests),
            **self._counts,
            spent_usd=spend.spent,
            reserved_usd=spend.reserved,
            rest_usd=rest_usd,
            rest_unknown=rest_unknown,
            max_spend_usd=spend.ledger.cap_usd if spend.capped else None,
        )

    @property
    def stopped_by(self) -> FastRouterError | None:
        """The account error (401, 402 or 403 on a submit), or the :class:`SpendCapError` of a job that would
        have exceeded ``max_spend_usd``, that stopped all further submits, if one did.

        Jobs already submitted were still followed to their end; the jobs not sent because of it are
        ``NOT_SENT`` outcomes.
        """
        return self._stopped_by

    @property
    def journal_path(self) -> Path | None:
        return self._journal_path

    async def read_journal(self) -> BatchJournal:
        """The journal as recorded now: each request's record (task id, state...) and the jobs not in this batch.

        Reads a copy read-only in a worker thread (during or after the run); raises ``JournalError``
        without a journal.
        """
        if self._journal_path is None:
            raise JournalError("this batch has no journal")
        keys = [(key.fingerprint, key.occurrence) for key in self._keys()]
        records = await anyio.to_thread.run_sync(read_journal, self._journal_path)
        return match_records(records, keys)

    async def __aenter__(self) -> Self:
        await self._start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> BatchOutcome:
        await self._start()
        assert self._receive is not None
        try:
            item = await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            await self.aclose()
            raise StopAsyncIteration from None
        if isinstance(item, BaseException):
            await self.aclose()
            raise item
        return item

    async def aclose(self) -> None:
        """Stop the batch (if still running) and release the journal. Idempotent."""
        if self._closed:
            return
        self._closed = True
        driver = self._driver
        if driver is not None and not driver.done():
            driver.cancel()
        with anyio.CancelScope(shield=True):
            if driver is not None:
                await asyncio.wait([driver])
            if self._journal is not None:
                await self._journal.aclose()
        for stream in (self._send, self._receive, self._status_send, self._status_receive):
            if stream is not None:
                stream.close()
        self._engine.open_batches.discard(self)

    def __repr__(self) -> str:
        p = self.progress
        return (
            f"<BatchRun {p.finished}/{p.total} finished: {p.succeeded} succeeded, {p.failed} failed, "
            f"{p.uncertain} uncertain, {p.running} running>"
        )

    # --- the driver ---------------------------------------------------------------------------

    async def _start(self) -> None:
        if self._closed:
            raise RuntimeError("this batch is closed")
        async with self._start_lock:
            if self._started:
                return
            self._engine.ensure_open()
            items = self._items()
            if self._journal_path is not None:
                self._journal = await Journal.open(self._journal_path)
                try:
                    await self._plan(items, await self._journal.entries())
                except BaseException:
                    await self._journal.aclose()
                    self._journal = None
                    raise
            else:
                await self._plan(items, {})
            self._spend.seed(items)
            self._send, self._receive = anyio.create_memory_object_stream[BatchOutcome | BaseException](
                max_buffer_size=math.inf
            )
            self._status_send, self._status_receive = anyio.create_memory_object_stream[tuple[JobKey, str]](
                max_buffer_size=math.inf
            )
            self._started = True
            self._engine.open_batches.add(self)
            self._driver = asyncio.create_task(self._drive(items), name="fastrouter_async batch")

    def _keys(self) -> list[JobKey]:
        return keys_for([fingerprint(build_submit_body(request)) for request in self._requests])

    def _items(self) -> list[Item]:
        bodies = [build_submit_body(request) for request in self._requests]
        keys = keys_for([fingerprint(body) for body in bodies])
        return [
            Item(index=i, request=request, body=body, key=key, estimated_usd=self._spend.estimate_of(i))
            for i, (request, body, key) in enumerate(zip(self._requests, bodies, keys, strict=True))
        ]

    async def _plan(self, items: list[Item], entries: Mapping[JobKey, JournalEntry]) -> None:
        """Decide, from the journal, what each job needs this run, and the cache key it carries."""
        policy = self._engine.replay_policy
        journal_path = self._journal.path if self._journal is not None else None
        context = KeyContext(
            namespace=batch_namespace(journal=journal_path, output_dir=self._output_dir),
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
                resubmit_uncertain=self._resubmit_uncertain,
                retry_failed=self._retry_failed,
                downloads=self._output_dir is not None,
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
                item.outcome = self._uncertain(item, entry)
                if self._journal is not None and entry.state is JournalState.SUBMITTING:
                    await self._journal.uncertain(item.key, item.outcome.error.reason)
            elif item.why is Why.FAILED:
                item.outcome = BatchOutcome(
                    index=item.index,
                    request=item.request,
                    status=OutcomeStatus.FAILED,
                    task_id=entry.task_id,
                    error=JobFailedError(entry.task_id or "?", entry.model, entry.error or "the job failed"),
                    from_journal=True,
                    **_facts(item),
                )
            else:
                item.outcome = self._finished_earlier(item, entry, None)

    def _stop(self, error: FastRouterError) -> None:
        if self._stopped_by is None:
            self._stopped_by = error
            fix = "raise the cap" if isinstance(error, SpendCapError) else "fix the account problem"
            logger.error(
                "the batch stopped submitting: %s (%s). Jobs already submitted are followed to their end; the "
                "others were not sent: %s and run the batch again to submit them.",
                type(error).__name__,
                error,
                fix,
            )

    def _never_sent(self, item: Item) -> BatchOutcome:
        self._spend.started(item.index)
        return BatchOutcome(
            index=item.index,
            request=item.request,
            status=OutcomeStatus.NOT_SENT,
            error=self._stopped_by,
            estimated_usd=item.estimated_usd,
        )

    def _finished_earlier(self, item: Item, entry: JournalEntry, file: DownloadedFile | None) -> BatchOutcome:
        return BatchOutcome(
            index=item.index,
            request=item.request,
            status=OutcomeStatus.SUCCEEDED,
            task_id=entry.task_id,
            file=file,
            cost_usd=entry.cost_usd,
            from_journal=True,
            **_facts(item),
        )

    def _uncertain(self, item: Item, entry: JournalEntry) -> BatchOutcome:
        if item.uncertain_reason is not None:
            reason = item.uncertain_reason
        elif entry.state is JournalState.UNCERTAIN and entry.error:
            reason = entry.error
        else:
            reason = _DIED_WHILE_SUBMITTING
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
        outcome = self._uncertain(item, item.entry)
        if self._journal is not None:
            await self._journal.uncertain(item.key, item.uncertain_reason)
        self._moved("waiting", "uncertain")
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

    async def _verified_file(self, entry: JournalEntry) -> DownloadedFile | None:
        if entry.file_path is None or entry.file_size is None or entry.file_sha256 is None:
            return None  # reserved but never recorded as written: fetched again
        path = Path(entry.file_path)
        ok = await anyio.to_thread.run_sync(file_matches, path, entry.file_size, entry.file_sha256)
        if not ok:
            logger.warning("the video of task %s is no longer intact at %s; fetching it again", entry.task_id, path)
            return None
        return DownloadedFile(path=path, size=entry.file_size, sha256=entry.file_sha256, task_id=entry.task_id)

    async def _drive(self, items: list[Item]) -> None:
        assert self._send is not None
        assert self._status_send is not None
        try:
            async with anyio.create_task_group() as outer:
                if self._journal is not None:
                    outer.start_soon(self._write_statuses)
                try:
                    await self._run_items(items)
                finally:
                    self._status_send.close()  # the writer finishes what is queued, then ends
        except BaseException as exc:
            if not isinstance(exc, anyio.get_cancelled_exc_class()):
                self._send.send_nowait(exc)
            raise
        finally:
            self._send.close()

    async def _run_items(self, items: list[Item]) -> None:
        assert self._send is not None
        for item in items:
            if item.action is Action.REPORT:
                assert item.outcome is not None
                self._report(item.outcome)
        # Replays first: each must go out while its first attempt is still inside the replay window.
        ordered = sorted(items, key=lambda item: item.why is not Why.REPLAY)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._verify_files, [item for item in items if item.action is Action.VERIFY], tg)
            for item in ordered:
                if item.action is Action.SUBMIT and self._stopped_by is not None:
                    self._report(self._never_sent(item))
                elif item.action in (Action.SUBMIT, Action.ATTACH):
                    await self._start_work(item, tg)

    async def _verify_files(self, items: list[Item], tg: anyio.abc.TaskGroup) -> None:
        """Check the files of jobs finished earlier (size and sha256, in a worker thread), one at a time."""
        for item in items:
            assert item.entry is not None
            file = await self._verified_file(item.entry)
            if file is not None:
                self._report(self._finished_earlier(item, item.entry, file))
            else:
                item.action = Action.ATTACH  # fetch it again: a fresh poll gives fresh URLs
                await self._start_work(item, tg)

    async def _start_work(self, item: Item, tg: anyio.abc.TaskGroup) -> None:
        slot = await self._engine.acquire_slot()
        tg.start_soon(self._work, item, slot)

    def _report(self, outcome: BatchOutcome) -> None:
        assert self._send is not None
        self._moved("waiting", _bucket(outcome))
        if outcome.from_journal and outcome.status is not OutcomeStatus.UNCERTAIN:
            self._counts["skipped"] += 1
        self._send.send_nowait(outcome)

    async def _work(self, item: Item, slot: Slot | None) -> None:
        outcome = await self._run_job(item, slot)
        assert self._send is not None
        self._send.send_nowait(outcome)

    async def _run_job(self, item: Item, slot: Slot | None) -> BatchOutcome:
        engine = self._engine
        resumed = item.action is Action.ATTACH
        if resumed:
            job = self._attach_earlier(item, slot)
        else:
            if self._stopped_by is not None:  # stopped while this job waited for its slot
                if slot is not None:
                    slot.release()
                self._moved("waiting", "not_sent")
                return self._never_sent(item)
            too_late = await self._replay_too_late(item, slot)
            if too_late is not None:
                return too_late
            hold = self._reserve(item, slot)
            if isinstance(hold, BatchOutcome):
                return hold
            self._moved("waiting", "submitting")
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
                    self._moved("submitting", "running")
                    engine.events.follow(job.task_id, self._observer(item))
                    return await self._finish_job(item, job, False)
                if self._journal is not None:
                    await self._journal.uncertain(item.key, exc.reason)
                return self._ended(item, "submitting", OutcomeStatus.UNCERTAIN, error=exc)
            except JournalError:
                raise
            except FastRouterError as exc:
                if isinstance(exc, ACCOUNT_ERRORS):
                    self._stop(exc)
                if hooks is not None and hooks.replayed:  # refused on a replay: an earlier attempt may have created it
                    uncertain = SubmitUncertainError(
                        item.request,
                        replay_refused(str(exc)),
                        cache_key=item.cache_key,
                        first_attempt_at=item.first_attempt_at,
                    )
                    uncertain.__cause__ = exc
                    return self._ended(item, "submitting", OutcomeStatus.UNCERTAIN, error=uncertain)
                status = OutcomeStatus.NOT_SENT if isinstance(exc, ACCOUNT_ERRORS) else OutcomeStatus.FAILED
                return self._ended(item, "submitting", status, error=exc)
            except Exception as exc:  # a bug ends this job only; it may have been submitted
                logger.exception(
                    "request #%d (%s): unexpected error while submitting", item.index, item.request.describe()
                )
                uncertain = SubmitUncertainError(item.request, f"unexpected {type(exc).__name__} while submitting")
                if self._journal is not None:
                    await self._journal.uncertain(item.key, uncertain.reason)
                return self._ended(item, "submitting", OutcomeStatus.UNCERTAIN, error=uncertain)
            await self._submitted(item, job)
            self._moved("submitting", "running")
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
        self._moved("waiting", "running")
        self._counts["resumed"] += 1
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
            self._stop(exc)
            self._moved("waiting", "not_sent")
            return self._never_sent(item)
        self._spend.recorded(item, hold)
        return hold

    async def _finish_job(self, item: Item, job: JobLife, resumed: bool) -> BatchOutcome:
        journal = self._journal
        try:
            result = await job.result(self._timeout)
        except JobFailedError as exc:
            if journal is not None:
                await journal.failed(item.key, exc.message)
            return self._ended(item, "running", OutcomeStatus.FAILED, error=exc, task_id=job.task_id, resumed=resumed)
        except NotFoundError as exc:
            # Past the not-visible-yet grace window FastRouter does not know the task (any more):
            # it ended for good. Recorded as failed, so a re-run reports it and --retry-failed
            # (retry_failed=True) can submit the request again.
            if journal is not None:
                await journal.failed(item.key, f"FastRouter no longer knows task {job.task_id}: {exc}")
            return self._ended(item, "running", OutcomeStatus.FAILED, error=exc, task_id=job.task_id, resumed=resumed)
        except JournalError:
            raise
        except FastRouterError as exc:
            # Timed out, or polling failed for good: the job may still be running; a re-run re-attaches it.
            job.release_slot()
            if journal is not None:
                await journal.problem(item.key, str(exc))
            return self._ended(item, "running", OutcomeStatus.FAILED, error=exc, task_id=job.task_id, resumed=resumed)
        if journal is not None:
            await journal.succeeded(item.key, cost_usd=result.cost_usd)
        if self._output_dir is None:
            return self._ended(item, "running", OutcomeStatus.SUCCEEDED, result=result, resumed=resumed)
        self._moved("running", "downloading")
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
            return self._ended(item, "downloading", OutcomeStatus.FAILED, error=exc, result=result, resumed=resumed)
        if journal is not None:
            await journal.file(item.key, path=file.path, size=file.size, sha256=file.sha256)
        return self._ended(item, "downloading", OutcomeStatus.SUCCEEDED, result=result, file=file, resumed=resumed)

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

    def _observer(self, item: Item) -> Callable[[Event], None]:
        def observe(event: Event) -> None:
            if not isinstance(event, StatusChanged):
                return
            status = event.status
            if self._journal is not None and self._status_send is not None and not status.done:
                # Recorded by the batch's journal writer, in order, without holding up the poll.
                self._status_send.send_nowait((item.key, status.raw_status or status.state.value))

        return observe

    async def _write_statuses(self) -> None:
        assert self._journal is not None
        assert self._status_receive is not None
        async for key, word in self._status_receive:
            await self._journal.status(key, word)

    def _ended(
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
            **_facts(item),
        )
        if status is OutcomeStatus.FAILED and error is not None:
            logger.warning("request #%d (%s) failed: %s", item.index, item.request.describe(), error)
        self._moved(stage, _bucket(outcome))
        return outcome

    def _moved(self, source: str, target: str) -> None:
        self._counts[source] -= 1
        self._counts[target] += 1


_DIED_WHILE_SUBMITTING = (
    "an earlier run stopped after recording the intent to submit and before recording FastRouter's answer"
)


def _facts(item: Item) -> dict[str, Any]:
    """The submit facts of a job for its outcome: found again by a replay, its key, its estimate."""
    return {
        "found_again": item.found_again,
        "cache_key": item.cache_key,
        "submit_estimate": item.estimate,
        "estimated_usd": item.estimated_usd,
    }


def _bucket(outcome: BatchOutcome) -> str:
    return {
        OutcomeStatus.SUCCEEDED: "succeeded",
        OutcomeStatus.FAILED: "failed",
        OutcomeStatus.UNCERTAIN: "uncertain",
        OutcomeStatus.NOT_SENT: "not_sent",
    }[outcome.status]
