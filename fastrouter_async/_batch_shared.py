"""One batch run by several processes through the session's shared store: each line sent once, each video fetched once.

With ``FastRouterSession(store=...)`` and an ``output_dir``, ``generate_many`` keeps no journal: the
store is the batch's record. Every process given the same requests and the same output folder makes
the same key for each line (``_batch_keys.shared_namespace``, then the line's fingerprint and
occurrence), and then:

- a line is submitted by the process that takes its ``submit:KEY`` claim and records its intent
  first; the others follow it through the store;
- a line whose intent is recorded without a task id, and whose claim lapsed (the process submitting
  it died mid-submit), is sent again with the same key by whoever takes the claim next, while its
  first attempt is inside the replay window: FastRouter's response cache answers with the task the
  first attempt created, if it did. Past the window it is reported uncertain (or resubmitted, with
  ``resubmit_uncertain``);
- a job with a task id is polled by one process at a time (the engine's watch leases); the others read
  its end from the store, and take it over when nobody has polled it for a while;
- the video is downloaded by the process that takes the ``download:TASK_ID`` claim, under the line's
  planned name in the output folder, and the file (name, size, sha256) is recorded with the job; the
  other processes check that file and report it.

A claim is a watch lease under a name no task id has, renewed while it is held: a process that dies
lets go of its claims within :data:`CLAIM_TTL` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import anyio
import attrs

from ._batch_inputs import file_matches
from ._batch_job import JobRunner
from ._batch_keys import batch_job_key
from ._batch_plan import Item, Why
from ._batch_spend import BatchSpend
from ._batch_tally import Tally
from ._batch_values import BatchOutcome, OutcomeStatus
from ._errors import FastRouterError, JobFailedError, NotFoundError, SubmitUncertainError
from ._fetch import video_result
from ._job_life import attached
from ._models import DownloadedFile, JobState, VideoResult
from ._shared import JobRecord
from ._sharing import Sharing, status_from_record

if TYPE_CHECKING:
    from ._engine import Engine
    from ._slots import Slot

__all__ = ["CLAIM_TTL", "SharedLines"]

logger = logging.getLogger("fastrouter_async")

CLAIM_TTL: Final = 10.0
# Seconds a submit or download claim lasts without a renewal (renewed every third of it while held).
REFRESH_EVERY: Final = 0.2
# Seconds between two reads of the store's records by a batch (one read for all its lines).
TAKEOVER_AFTER: Final = 2.0
# A running job that nobody has polled for this long (past its first poll's delay) is polled here.


class StoreView:
    """The store's records by key and the unfinished jobs nobody polls, read by one task for all lines."""

    def __init__(self, sharing: Sharing) -> None:
        self._sharing = sharing
        self._records: dict[str, JobRecord] = {}
        self._unpolled: dict[str, float] = {}  # task id -> event-loop time it was first seen unpolled
        self._changed = anyio.Event()

    def get(self, key: str | None) -> JobRecord | None:
        return None if key is None else self._records.get(key)

    def unpolled_for(self, task_id: str) -> float:
        """For how long nobody has polled ``task_id`` (0.0: somebody does)."""
        since = self._unpolled.get(task_id)
        return 0.0 if since is None else anyio.current_time() - since

    async def refresh(self) -> None:
        """Read the store now (two reads at once are harmless: the later answer replaces the earlier)."""
        records = await self._sharing.records()
        unpolled = await self._sharing.unclaimed()
        now = anyio.current_time()
        self._records = {record.key: record for record in records}
        self._unpolled = {task_id: self._unpolled.get(task_id, now) for task_id in unpolled}
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def refresh_forever(self, stop: anyio.Event) -> None:
        """Read the store every :data:`REFRESH_EVERY` seconds until ``stop`` is set.

        A read is never cancelled half-way (a store's connection could be left mid-answer): it ends
        first, then the loop sees ``stop``.
        """
        while not stop.is_set():
            with anyio.move_on_after(REFRESH_EVERY):
                await stop.wait()
            if stop.is_set():
                return
            with anyio.CancelScope(shield=True):
                try:
                    await self.refresh()
                except Exception:
                    logger.exception("could not read the shared store")

    async def changed(self, at_most: float) -> None:
        """Wait for the next read of the store (at most ``at_most`` seconds)."""
        event = self._changed
        with anyio.move_on_after(at_most):
            await event.wait()


@contextlib.asynccontextmanager
async def held(sharing: Sharing, name: str) -> AsyncIterator[None]:
    """Keep the claim ``name`` (taken already) renewed while the body runs, then give it back."""

    stop = anyio.Event()

    async def renew() -> None:
        while not stop.is_set():
            with anyio.move_on_after(CLAIM_TTL / 3):
                await stop.wait()
            if stop.is_set():
                return
            # Never cancelled half-way: a store's connection must not be left in the middle of an answer.
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await sharing.renew_claim(name, CLAIM_TTL)

    renewer = asyncio.get_running_loop().create_task(renew())
    try:
        yield
    finally:
        stop.set()
        with anyio.CancelScope(shield=True):
            await asyncio.gather(renewer, return_exceptions=True)
            with contextlib.suppress(Exception):
                await sharing.release_claim(name)


def _release(slot: Slot | None) -> None:
    if slot is not None:
        slot.release()


class SharedLines:
    """Runs the lines of one batch together with the other processes of the store (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        sharing: Sharing,
        runner: JobRunner,
        tally: Tally,
        spend: BatchSpend,
        *,
        output_dir: Path,
        names: list[str],
        namespace: str,
        timeout: float | None,
        resubmit_uncertain: bool,
        retry_failed: bool,
        send: Callable[[BatchOutcome], None],
    ) -> None:
        self._engine = engine
        self._sharing = sharing
        self._runner = runner
        self._tally = tally
        self._spend = spend
        self._output_dir = output_dir
        self._names = names
        self._namespace = namespace
        self._timeout = timeout
        self._resubmit_uncertain = resubmit_uncertain
        self._retry_failed = retry_failed
        self._send = send
        self._view = StoreView(sharing)
        self._bad_files: set[tuple[str, int, str]] = set()  # recorded files found damaged here

    async def run(self, items: list[Item]) -> None:
        """Every line to its outcome; lines nobody has taken yet are taken one free slot at a time."""
        await self._view.refresh()
        # Each process starts at its own place in the batch, so that they seldom race for the same line.
        start = int(hashlib.sha256(self._sharing.owner.encode()).hexdigest(), 16) % max(1, len(items))
        stop = anyio.Event()
        async with anyio.create_task_group() as outer:
            outer.start_soon(self._view.refresh_forever, stop)
            try:
                async with anyio.create_task_group() as lines:
                    for item in items[start:] + items[:start]:
                        self._choose_key(item)
                        if self._view.get(item.cache_key) is not None or self._tally.stopped_by is not None:
                            lines.start_soon(self._line, item, None)
                        else:
                            lines.start_soon(self._line, item, await self._engine.acquire_slot())
            finally:
                stop.set()

    def _key(self, item: Item, generation: int) -> str:
        if item.request.cache_key is not None:
            return item.request.cache_key
        key = item.key
        return batch_job_key(
            namespace=self._namespace, fingerprint=key.fingerprint, occurrence=key.occurrence, generation=generation
        )

    def _choose_key(self, item: Item) -> None:
        """The line's key: its first generation's, or with ``retry_failed`` the first one not failed."""
        generation = 0
        record = self._view.get(self._key(item, 0))
        while self._retry_failed and record is not None and record.state is JobState.FAILED:
            generation += 1
            record = self._view.get(self._key(item, generation))
        item.generation = generation
        item.cache_key = self._key(item, generation)
        item.why = Why.NEW if generation == 0 else Why.RETRY

    async def _line(self, item: Item, slot: Slot | None) -> None:
        self._send(await self._settle(item, slot))

    async def _settle(self, item: Item, slot: Slot | None) -> BatchOutcome:
        """Submit the line if no process has, else follow it; wait while another process submits it."""
        key = item.cache_key
        assert key is not None
        claim = f"submit:{key}"
        while True:
            record = self._view.get(key)
            if record is not None and record.task_id is not None:
                _release(slot)
                return await self._follow(item, record)
            if record is None and self._tally.stopped_by is not None:
                _release(slot)
                self._tally.moved("waiting", "not_sent")
                return self._tally.never_sent(item)
            if await self._sharing.claim(claim, CLAIM_TTL):
                async with held(self._sharing, claim):
                    return await self._submit(item, slot)
            _release(slot)
            slot = None
            deadline = anyio.current_time() + CLAIM_TTL / 3  # the claim is tried again at most this often
            while (left := deadline - anyio.current_time()) > 0:
                await self._view.changed(left)
                record = self._view.get(key)
                if record is not None and record.task_id is not None:
                    break

    async def _submit(self, item: Item, slot: Slot | None) -> BatchOutcome:
        """With the line's claim: record the intent and send it, or send again an intent left without a task id."""
        key = item.cache_key
        assert key is not None
        if slot is None:
            slot = await self._engine.acquire_slot()
        now = time.time()
        if await self._sharing.intent(key, body=item.body, cache_key=key, model=item.request.model, at=now):
            item.first_attempt_at = now
        else:
            await self._view.refresh()
            record = self._view.get(key)
            if record is not None and record.task_id is not None:
                _release(slot)
                return await self._follow(item, record)
            first = now if record is None else record.submitted_at
            policy = self._engine.replay_policy
            if policy.enabled and now - first < policy.window:
                item.first_attempt_at = first  # the window counts from the first attempt, in any process
                logger.info(
                    "request #%d (%s): a process stopped while submitting it; sending it again with its cache key",
                    item.index,
                    item.request.describe(),
                )
            elif self._resubmit_uncertain:
                item.first_attempt_at = None
                item.why = Why.RESUBMIT
            else:
                _release(slot)
                return self._uncertain(item, first, now)
        outcome = await self._runner.run(item, slot)
        if outcome.status is OutcomeStatus.SUCCEEDED and outcome.result is not None:
            self._tally.moved("succeeded", "downloading")
            return await self._deliver(item, outcome.result, submitted_here=True)
        return outcome

    def _uncertain(self, item: Item, first: float, now: float) -> BatchOutcome:
        policy = self._engine.replay_policy
        if policy.enabled:
            reason = (
                f"a process stopped while submitting it {now - first:.0f} s ago, past the replay window of "
                f"{policy.window:.0f} s"
            )
        else:
            reason = "a process stopped while submitting it, and replays are off"
        self._tally.moved("waiting", "uncertain")
        self._spend.started(item.index)  # not sent here: no longer part of what is still to be spent
        error = SubmitUncertainError(item.request, reason, cache_key=item.cache_key, first_attempt_at=first)
        key = item.cache_key
        return BatchOutcome(
            index=item.index, request=item.request, status=OutcomeStatus.UNCERTAIN, error=error, cache_key=key
        )

    async def _follow(self, item: Item, record: JobRecord) -> BatchOutcome:
        """A job another process submitted: wait for its end in the store (or poll it here, if nobody does)."""
        self._tally.moved("waiting", "running")
        self._spend.started(item.index)  # sent by another process: its cost is not this process's to reserve
        task_id = record.task_id
        assert task_id is not None
        first_delay = self._engine.poll_policy.first_delay
        read_at = anyio.current_time()
        while True:
            record = self._view.get(item.cache_key) or record
            if not record.finished and anyio.current_time() - read_at >= CLAIM_TTL:
                read_at = anyio.current_time()  # now and then its own record, read directly
                record = await self._sharing.record(task_id) or record
            if record.finished:
                if record.state is JobState.SUCCEEDED:
                    status = status_from_record(record, record.model)
                    if status is not None:
                        result = video_result(task_id, record.model, status, self._engine.fetcher)
                        self._tally.moved("running", "downloading")
                        return await self._deliver(item, result, submitted_here=False)
                    return await self._poll_here(item, record)  # its video came inside the answer: polled here
                error = JobFailedError(task_id, record.model, str(record.details.get("error") or "the job failed"))
                outcome = self._tally.ended(item, "running", OutcomeStatus.FAILED, error=error, task_id=task_id)
                return attrs.evolve(outcome, submitted_elsewhere=True)
            age = time.time() - record.submitted_at
            if self._view.unpolled_for(task_id) >= TAKEOVER_AFTER and age >= first_delay + TAKEOVER_AFTER:
                logger.info("request #%d: nobody polls task %s any more; polling it here", item.index, task_id)
                return await self._poll_here(item, record)
            await self._view.changed(1.0)

    async def _poll_here(self, item: Item, record: JobRecord) -> BatchOutcome:
        """Follow a job another process submitted by polling it here (with a slot: it counts against the cap)."""
        assert record.task_id is not None
        slot = await self._engine.acquire_slot()
        job = attached(
            self._engine, record.task_id, record.model, item.request, slot, submitted_wall_time=record.submitted_at
        )
        try:
            result = await job.result(self._timeout)
        except (JobFailedError, NotFoundError) as exc:
            outcome = self._tally.ended(item, "running", OutcomeStatus.FAILED, error=exc, task_id=job.task_id)
            return attrs.evolve(outcome, submitted_elsewhere=True)
        except FastRouterError as exc:
            job.release_slot()
            outcome = self._tally.ended(item, "running", OutcomeStatus.FAILED, error=exc, task_id=job.task_id)
            return attrs.evolve(outcome, submitted_elsewhere=True)
        self._tally.moved("running", "downloading")
        return await self._deliver(item, result, submitted_here=False)

    async def _deliver(self, item: Item, result: VideoResult, *, submitted_here: bool) -> BatchOutcome:
        """The video in the output folder: downloaded here by the claim's winner, checked by the others."""
        task_id = result.task_id
        name = self._names[item.index]
        claim = f"download:{task_id}"
        tried_at = -math.inf
        while True:
            file = await self._recorded_file(self._view.get(item.cache_key), task_id)
            if file is not None:
                return self._succeeded(item, result, file, submitted_here=submitted_here, downloaded_here=False)
            if anyio.current_time() - tried_at >= CLAIM_TTL / 3:
                tried_at = anyio.current_time()
                if await self._sharing.claim(claim, CLAIM_TTL):
                    async with held(self._sharing, claim):
                        return await self._download(item, result, name, submitted_here=submitted_here)
            await self._view.changed(CLAIM_TTL / 3)

    async def _download(self, item: Item, result: VideoResult, name: str, *, submitted_here: bool) -> BatchOutcome:
        # One more look, at the record itself: another process may have just finished it.
        file = await self._recorded_file(await self._sharing.record(result.task_id), result.task_id)
        if file is not None:
            return self._succeeded(item, result, file, submitted_here=submitted_here, downloaded_here=False)
        try:
            file = await result.download(self._output_dir / name, overwrite=True)
        except FastRouterError as exc:
            outcome = self._tally.ended(item, "downloading", OutcomeStatus.FAILED, error=exc, result=result)
            return attrs.evolve(outcome, submitted_elsewhere=not submitted_here)
        recorded = {"name": name, "path": str(file.path.absolute()), "size": file.size, "sha256": file.sha256}
        await self._sharing.record_details(result.task_id, JobState.SUCCEEDED, {"file": recorded})
        return self._succeeded(item, result, file, submitted_here=submitted_here, downloaded_here=True)

    async def _recorded_file(self, record: JobRecord | None, task_id: str) -> DownloadedFile | None:
        """The file the record names, if it is in the output folder and intact (checked in a worker thread)."""
        recorded: Any = None if record is None else record.details.get("file")
        if not isinstance(recorded, dict):
            return None
        name, size, sha256 = recorded.get("name"), recorded.get("size"), recorded.get("sha256")
        if not (isinstance(name, str) and isinstance(size, int) and isinstance(sha256, str)):
            return None
        if (name, size, sha256) in self._bad_files:
            return None
        path = self._output_dir / Path(name).name  # the folder as this process sees it: on another host too
        if not await anyio.to_thread.run_sync(file_matches, path, size, sha256):
            logger.warning("the video of task %s is missing or damaged at %s; fetching it again", task_id, path)
            self._bad_files.add((name, size, sha256))
            return None
        return DownloadedFile(path=path, size=size, sha256=sha256, task_id=task_id)

    def _succeeded(
        self, item: Item, result: VideoResult, file: DownloadedFile, *, submitted_here: bool, downloaded_here: bool
    ) -> BatchOutcome:
        outcome = self._tally.ended(item, "downloading", OutcomeStatus.SUCCEEDED, result=result, file=file)
        return attrs.evolve(outcome, submitted_elsewhere=not submitted_here, downloaded_elsewhere=not downloaded_here)
