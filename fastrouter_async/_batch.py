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

With a session ``store`` and an ``output_dir``, the batch keeps no journal: the store is its record,
and every process running the same batch into the same folder shares its lines (see
:mod:`._batch_shared`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._batch_inputs import default_filename, output_dir_path, prepare_requests
from ._batch_job import JobRunner
from ._batch_keys import shared_namespace
from ._batch_plan import Action, Item, Why
from ._batch_resume import plan, verified_file
from ._batch_shared import SharedLines
from ._batch_spend import BatchSpend
from ._batch_tally import Tally, finished_earlier
from ._batch_values import BatchOutcome, BatchProgress, OutcomeStatus
from ._errors import FastRouterError, InvalidRequestError
from ._filenames import plan_names
from ._journal import JobKey, Journal, JournalEntry, JournalError, fingerprint, keys_for
from ._journal_read import BatchJournal, match_records, read_journal
from ._models import VideoRequest
from ._protocol import build_submit_body

if TYPE_CHECKING:
    from ._engine import Engine
    from ._slots import Slot

__all__ = ["BatchOutcome", "BatchProgress", "BatchRun", "OutcomeStatus", "output_dir_path", "prepare_requests"]

logger = logging.getLogger("fastrouter_async")

FileNamer = Callable[[int, VideoRequest], str]


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
        self._shared = engine.sharing is not None and output_dir is not None
        if self._shared and journal is not None:
            raise InvalidRequestError(
                "journal",
                str(journal),
                "None with a session store and an output_dir: the store is the batch's record, shared by every "
                "process running the batch (docs/batch.md)",
            )
        self._journal_path = journal
        self._resubmit_uncertain = resubmit_uncertain
        self._retry_failed = retry_failed
        self._timeout = timeout
        self._journal: Journal | None = None
        self._driver: asyncio.Task[None] | None = None
        # Streams are made when the batch starts, so a batch that is never started leaks nothing.
        self._send: MemoryObjectSendStream[BatchOutcome | BaseException] | None = None
        self._receive: MemoryObjectReceiveStream[BatchOutcome | BaseException] | None = None
        self._status_send: MemoryObjectSendStream[tuple[JobKey, str]] | None = None
        self._status_receive: MemoryObjectReceiveStream[tuple[JobKey, str]] | None = None
        self._started = False
        self._closed = False
        self._start_lock = anyio.Lock()
        self._tally = Tally(len(requests), spend)
        self._runner: JobRunner | None = None  # made when the batch starts (with its journal)

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
            **self._tally.counts,
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
        return self._tally.stopped_by

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
                    await self._plan(items, await self._journal.entries(), self._journal)
                except BaseException:
                    await self._journal.aclose()
                    self._journal = None
                    raise
            else:
                await self._plan(items, {}, None)
            self._spend.seed(items)
            self._send, self._receive = anyio.create_memory_object_stream[BatchOutcome | BaseException](
                max_buffer_size=math.inf
            )
            self._status_send, self._status_receive = anyio.create_memory_object_stream[tuple[JobKey, str]](
                max_buffer_size=math.inf
            )
            self._runner = JobRunner(
                self._engine,
                self._tally,
                self._spend,
                journal=self._journal,
                output_dir=None if self._shared else self._output_dir,  # shared: downloaded by _batch_shared
                names=self._names,
                timeout=self._timeout,
                statuses=None if self._journal is None else self._status_of,
            )
            self._started = True
            self._engine.open_batches.add(self)
            self._driver = asyncio.create_task(self._drive(items), name="fastrouter_async batch")

    async def _plan(self, items: list[Item], entries: Mapping[JobKey, JournalEntry], journal: Journal | None) -> None:
        await plan(
            items,
            entries,
            journal=journal,
            output_dir=self._output_dir,
            replay_policy=self._engine.replay_policy,
            resubmit_uncertain=self._resubmit_uncertain,
            retry_failed=self._retry_failed,
        )

    def _status_of(self, item: Item, word: str) -> None:
        if self._status_send is not None:
            self._status_send.send_nowait((item.key, word))

    def _keys(self) -> list[JobKey]:
        return keys_for([fingerprint(build_submit_body(request)) for request in self._requests])

    def _items(self) -> list[Item]:
        bodies = [build_submit_body(request) for request in self._requests]
        keys = keys_for([fingerprint(body) for body in bodies])
        return [
            Item(index=i, request=request, body=body, key=key, estimated_usd=self._spend.estimate_of(i))
            for i, (request, body, key) in enumerate(zip(self._requests, bodies, keys, strict=True))
        ]

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
        if self._shared:
            await self._run_shared(items)
            return
        for item in items:
            if item.action is Action.REPORT:
                assert item.outcome is not None
                self._report(item.outcome)
        # Replays first: each must go out while its first attempt is still inside the replay window.
        ordered = sorted(items, key=lambda item: item.why is not Why.REPLAY)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._verify_files, [item for item in items if item.action is Action.VERIFY], tg)
            for item in ordered:
                if item.action is Action.SUBMIT and self._tally.stopped_by is not None:
                    self._report(self._tally.never_sent(item))
                elif item.action in (Action.SUBMIT, Action.ATTACH):
                    await self._start_work(item, tg)

    async def _run_shared(self, items: list[Item]) -> None:
        sharing = self._engine.sharing
        assert sharing is not None
        assert self._runner is not None
        assert self._output_dir is not None
        assert self._names is not None
        assert self._send is not None
        lines = SharedLines(
            self._engine,
            sharing,
            self._runner,
            self._tally,
            self._spend,
            output_dir=self._output_dir,
            names=self._names,
            namespace=shared_namespace(self._output_dir),
            timeout=self._timeout,
            resubmit_uncertain=self._resubmit_uncertain,
            retry_failed=self._retry_failed,
            send=self._send.send_nowait,
        )
        await lines.run(items)

    async def _verify_files(self, items: list[Item], tg: anyio.abc.TaskGroup) -> None:
        """Check the files of jobs finished earlier (size and sha256, in a worker thread), one at a time."""
        for item in items:
            assert item.entry is not None
            file = await verified_file(item.entry)
            if file is not None:
                self._report(finished_earlier(item, item.entry, file))
            else:
                item.action = Action.ATTACH  # fetch it again: a fresh poll gives fresh URLs
                await self._start_work(item, tg)

    async def _start_work(self, item: Item, tg: anyio.abc.TaskGroup) -> None:
        slot = await self._engine.acquire_slot()
        tg.start_soon(self._work, item, slot)

    def _report(self, outcome: BatchOutcome) -> None:
        assert self._send is not None
        self._tally.reported(outcome)
        self._send.send_nowait(outcome)

    async def _work(self, item: Item, slot: Slot | None) -> None:
        assert self._runner is not None
        outcome = await self._runner.run(item, slot)
        assert self._send is not None
        self._send.send_nowait(outcome)

    async def _write_statuses(self) -> None:
        assert self._journal is not None
        assert self._status_receive is not None
        async for key, word in self._status_receive:
            await self._journal.status(key, word)
