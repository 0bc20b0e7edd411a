"""The watcher role: follow the store's jobs that nobody watches, download each video once, record the outcome.

``FastRouterSession.watch()`` runs a :class:`Watcher` on the session's engine. With a shared store,
the processes that submit need not be the ones that wait: a web handler submits and answers at once,
and watchers (in the same processes or in others) take every unfinished job of the store that no
process watches (:meth:`~._sharing.Sharing.unclaimed`), follow it to its end and, with an
``output_dir``, download its video:

- **Following** a job is awaiting its result on the session's shared poller. Its first poll takes
  the job's watch lease, so one process polls it and any other process that waits for it reads its
  status from the store. A watcher that dies (even by ``SIGKILL``) stops renewing its leases: after
  the session's watch lease (``store_lease`` plus the poll policy's ``max_interval``) the jobs are
  unclaimed again, and another watcher takes them at its next look.
- **Downloading** a succeeded job happens once across processes: the watcher takes the lease
  ``download:TASK_ID`` (renewed while the transfer runs), skips a job whose record already names a
  file, and writes the file's ``path``, ``size`` and ``sha256`` into the job's record (``details``),
  where every process reads it. A download that fails records ``download_error`` and is not tried
  again by the watchers; a watcher killed mid-download leaves the lease to expire and the record
  without a file, so another watcher downloads it (resuming the part file when it can).
- **Failures** are recorded by the poll that sees them (the job's state and ``error``). A job that
  cannot be followed for now (polling failed for good, e.g. a network outage) is left alone for a
  while and taken up again later.

A watcher stopped by cancellation, or by the session's ``aclose()``, gives its leases back at once:
the other watchers continue the jobs without waiting for the leases to expire.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Final

import anyio
import anyio.abc

from ._engine import Engine
from ._errors import FastRouterError, InvalidRequestError, JobFailedError, StoreError
from ._fetch import video_result
from ._filenames import check_plain_name, safe_filename
from ._job import attach_job
from ._models import JobState, VideoResult
from ._shared import JobRecord
from ._sharing import RENEW_SHARE, WARN_EVERY, Sharing, status_from_record

__all__ = ["DEFAULT_SCAN_INTERVAL", "NO_STORE_MESSAGE", "Watcher", "download_key"]

logger = logging.getLogger("fastrouter_async")

DEFAULT_SCAN_INTERVAL: Final = 1.0
# Seconds between two looks at the store for jobs nobody watches: a store query each, cheap next to
# the minutes a video takes; a job handed over waits at most this long on top of its lease.
FOLLOW_AGAIN_AFTER: Final = 60.0
# A job whose polling failed for good (a network outage, an unknown task id) is left alone this long.
NO_STORE_MESSAGE: Final = (
    "watch() needs a store shared with the processes that submit: "
    "FastRouterSession(store='sqlite:///path/to/file' or 'redis://host:6379/0')"
)

FileNamer = Callable[[JobRecord], str]


def raise_swallowed_cancel() -> None:
    """Raise the cancellation of this task if a store's client swallowed it.

    redis-py (8.x) may finish a command it was cancelled in and return normally; asyncio delivers a
    cancellation once, so the scan loop would go on forever. The task still counts the request.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def download_key(task_id: str) -> str:
    """The lease a process holds while it downloads ``task_id``'s video."""
    return f"download:{task_id}"


def default_filename(record: JobRecord) -> str:
    """``TASK_ID.mp4``, made safe as a file name."""
    return safe_filename(record.task_id or record.key, lowercase=False, max_length=200)


def _still_to_write(record: JobRecord, result: VideoResult | None) -> bool:
    """Whether the video of ``record``'s job is still to be written by this watcher.

    With ``result`` the job was seen to succeed here, and the store may not show its end yet (it is
    written on a task): only a file or a failure recorded by another watcher means it is done.
    """
    if result is not None:
        return "file" not in record.details and "download_error" not in record.details
    return needs_download(record)


def needs_download(record: JobRecord) -> bool:
    """Whether ``record`` is a succeeded job whose video no watcher has written or given up on."""
    details = record.details
    return (
        record.state is JobState.SUCCEEDED
        and record.task_id is not None
        and "file" not in details
        and "download_error" not in details
    )


class Watcher:
    """One run of ``session.watch()`` (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        *,
        output_dir: Path | None,
        until_idle: bool,
        scan_interval: float,
        filename: FileNamer | None,
    ) -> None:
        if engine.sharing is None:
            raise InvalidRequestError("store", None, NO_STORE_MESSAGE)
        self._engine = engine
        self._sharing: Sharing = engine.sharing
        self._output_dir = output_dir
        self._until_idle = until_idle
        self._scan_interval = scan_interval
        self._filename = filename or default_filename
        limit = engine.downloader.max_concurrent
        self._downloads = anyio.CapacityLimiter(math.inf if limit is None else limit)
        self._following: set[str] = set()
        self._downloading: set[str] = set()  # task ids with a download queued or running here
        self._held: set[str] = set()  # download leases held now
        self._resting: dict[str, float] = {}  # task id -> event-loop time before which it is left alone
        self._next_download_scan = -math.inf
        self._warn_after = -math.inf
        self._scope: anyio.CancelScope | None = None
        self._stopped = anyio.Event()

    async def run(self) -> None:
        """Watch until cancelled, until the session closes or (``until_idle``) until nothing is left to do."""
        engine = self._engine
        engine.ensure_open()
        engine.open_batches.add(self)  # the session's aclose() stops this watcher first, leases given back
        try:
            with anyio.CancelScope() as self._scope:
                async with anyio.create_task_group() as tg:
                    await self._scan_forever(tg)
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await self._give_back()
            engine.open_batches.discard(self)
            self._stopped.set()

    async def aclose(self) -> None:
        """Stop watching (the session is closing): leases given back before the store closes."""
        if self._scope is not None:
            self._scope.cancel()
        with anyio.CancelScope(shield=True):
            await self._stopped.wait()

    # --- the scan ------------------------------------------------------------------------------

    async def _scan_forever(self, tg: anyio.abc.TaskGroup) -> None:
        while True:
            try:
                found = await self._scan(tg)
                busy = found or self._following or self._downloading
                if self._until_idle and not busy and not await self._anything_left():
                    return
            except StoreError as exc:  # the store is down: look again at the next scan
                self._warn(exc)
            raise_swallowed_cancel()
            await anyio.sleep(self._scan_interval)

    async def _scan(self, tg: anyio.abc.TaskGroup) -> bool:
        """Start following the jobs nobody watches, and downloading videos nobody wrote; whether any was found."""
        now = anyio.current_time()
        for task_id in [t for t, until in self._resting.items() if until <= now]:
            del self._resting[task_id]
        found = False
        for task_id in await self._sharing.unclaimed():
            found = True
            if task_id in self._following or self._resting.get(task_id, -math.inf) > now:
                continue
            if not await self._sharing.watching(task_id):
                continue  # another watcher took it first: one follower per job, so no second poller at its end
            self._following.add(task_id)
            tg.start_soon(self._follow, task_id)
        if self._output_dir is not None and now >= self._next_download_scan:
            # Videos nobody wrote: a job followed by a watcher that died mid-download (its lease must
            # expire first), or one that ended with no watcher. Listing every succeeded job costs more
            # than a look for unwatched jobs: done once a third of a lease at most.
            self._next_download_scan = now + max(self._scan_interval, self._sharing.lease * RENEW_SHARE)
            for record in await self._sharing.records(states=[JobState.SUCCEEDED]):
                if not needs_download(record) or record.task_id in self._downloading:
                    continue
                assert record.task_id is not None
                found = True
                self._downloading.add(record.task_id)
                tg.start_soon(self._download, record.task_id, None)
        return found

    async def _anything_left(self) -> bool:
        """Whether the store has an unfinished job (with a task id) or, with an output folder, a video to write."""
        unfinished = await self._sharing.records(finished=False)
        if any(r.task_id is not None for r in unfinished):
            return True
        if self._output_dir is None:
            return False
        succeeded = await self._sharing.records(states=[JobState.SUCCEEDED])
        return any(needs_download(r) for r in succeeded)

    # --- following one job ---------------------------------------------------------------------

    async def _follow(self, task_id: str) -> None:
        try:
            try:
                record = await self._sharing.record(task_id)
            except StoreError as exc:
                self._warn(exc)
                return
            if record is None:
                return
            job = attach_job(self._engine, task_id, record.model or None, submitted_wall_time=record.submitted_at)
            try:
                result = await job.result()
            except JobFailedError:
                self._ended(task_id)
                return  # the poll that saw it fail recorded it (state and error)
            except FastRouterError as exc:
                logger.warning("watch: job %s could not be followed for now (%s); trying again later", task_id, exc)
                self._resting[task_id] = anyio.current_time() + FOLLOW_AGAIN_AFTER
                return
            self._ended(task_id)
            if self._output_dir is not None and task_id not in self._downloading:
                self._downloading.add(task_id)
                await self._download(task_id, result)
        finally:
            self._following.discard(task_id)
            self._sharing.unwatch(task_id)  # a wait cut short here leaves the job to the others at once

    def _ended(self, task_id: str) -> None:
        """``task_id`` was seen to end here: not followed again while the store may not show it yet.

        The end is written to the store on a task, as is the release of the job's watch lease; until
        the end is written, the job can look unfinished and unwatched.
        """
        self._resting[task_id] = anyio.current_time() + self._sharing.watch_ttl

    # --- downloading one video -----------------------------------------------------------------

    async def _download(self, task_id: str, result: VideoResult | None) -> None:
        """Download ``task_id``'s video once across processes (``result``: from following it here, if so)."""
        try:
            await self._download_once(task_id, result)
        except StoreError as exc:  # a later scan finds the video still to write
            self._warn(exc)
        finally:
            self._downloading.discard(task_id)

    async def _download_once(self, task_id: str, result: VideoResult | None) -> None:
        async with self._downloads:
            key = download_key(task_id)
            if not await self._sharing.claim(key):
                return  # another process downloads it now
            self._held.add(key)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._renew, key)
                    await self._download_held(task_id, result)
                    tg.cancel_scope.cancel()
            finally:
                self._held.discard(key)
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await self._sharing.release_claim(key)

    async def _download_held(self, task_id: str, result: VideoResult | None) -> None:
        record = await self._sharing.record(task_id)
        if record is None or not _still_to_write(record, result):
            return  # written (or given up) by another process meanwhile
        assert self._output_dir is not None
        try:
            if result is None:
                result = await self._result_of(record)
            name = self._filename(record)
            check_plain_name(name)
            file = await result.download(self._output_dir / name)
        except (FastRouterError, OSError) as exc:
            logger.warning("watch: the video of job %s could not be downloaded: %s", task_id, exc)
            await self._sharing.record_details(task_id, JobState.SUCCEEDED, {"download_error": str(exc)})
            return
        details = {"file": os.fspath(file.path), "size": file.size, "sha256": file.sha256}
        await self._sharing.record_details(task_id, JobState.SUCCEEDED, details)

    async def _result_of(self, record: JobRecord) -> VideoResult:
        """The result of a succeeded job, from its record (its links), else from one poll here."""
        assert record.task_id is not None
        model = record.model or None
        status = status_from_record(record, model)
        if status is not None:
            return video_result(record.task_id, model, status, self._engine.fetcher)
        job = attach_job(self._engine, record.task_id, model, submitted_wall_time=record.submitted_at)
        return await job.result()

    async def _renew(self, key: str) -> None:
        while True:
            await anyio.sleep(self._sharing.lease * RENEW_SHARE)
            try:
                if not await self._sharing.renew_claim(key):
                    logger.warning("watch: the lease %s expired before it was renewed", key)
            except StoreError as exc:
                self._warn(exc)

    def _warn(self, exc: StoreError) -> None:
        now = anyio.current_time()
        if now >= self._warn_after:
            self._warn_after = now + WARN_EVERY
            logger.warning("watch: %s; trying again", exc)

    async def _give_back(self) -> None:
        for key in list(self._held):
            try:
                await self._sharing.release_claim(key)
            except StoreError as exc:  # it expires instead
                self._warn(exc)
        self._held.clear()
        for task_id in list(self._following):
            self._sharing.unwatch(task_id)
