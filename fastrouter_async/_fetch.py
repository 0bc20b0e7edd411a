"""The engine's downloads: ``VideoResult.download()`` lands here.

:class:`Fetcher` is what a :class:`VideoResult` holds to download itself: it checks the
arguments, hands the transfer to the :class:`~._download.Downloader` (which owns the
download limiter, the part files and the verification), replaces expired links by
polling the task again (never by resubmitting it) and tells the session's events.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio

from ._api import Api
from ._config import check_limit
from ._download import Downloader
from ._errors import DownloadError
from ._event_hub import EventHub
from ._events import DownloadFinished, DownloadProgressed
from ._models import DownloadedFile, DownloadProgress, JobState, JobStatus, VideoResult

__all__ = ["Fetcher", "video_result"]


def video_result(task_id: str, model: str | None, status: JobStatus, fetcher: Fetcher) -> VideoResult:
    """The result of a task whose ``status`` says it succeeded, bound to ``fetcher`` for downloads."""
    assert status.source is not None
    return VideoResult(
        task_id=task_id,
        model=model,
        url=status.urls[0] if status.urls else None,
        urls=status.urls,
        cost_usd=status.cost_usd,
        credits_used=status.credits_used,
        source=status.source,
        payload=status.payload,
        fetcher=fetcher,
    )


class Fetcher:
    """Downloads of one session's results."""

    def __init__(self, api: Api, downloader: Downloader, events: EventHub, ensure_open: Callable[[], None]) -> None:
        self._api = api
        self._downloader = downloader
        self._events = events
        self._ensure_open = ensure_open

    async def download_video(
        self,
        result: VideoResult,
        path: Path,
        *,
        overwrite: bool,
        progress: DownloadProgress | None,
        max_bytes: int | None,
    ) -> DownloadedFile:
        """Download ``result`` to ``path`` (see :meth:`VideoResult.download`)."""
        self._ensure_open()
        check_limit("max_bytes", max_bytes, "a number of bytes >= 1, or None for the session's limit")

        async def refresh() -> VideoResult:
            # Expired links: poll the task once (the normal poll path, with its retries) for fresh ones.
            # A download never submits: the job stays the one already paid for.
            self._ensure_open()
            status = await self._api.poll_with_retries(result.task_id, result.model)
            if status.state is not JobState.SUCCEEDED:
                raise DownloadError(f"task {result.task_id} now reports {status.describe()}", task_id=result.task_id)
            return video_result(result.task_id, result.model, status, self)

        progress, started = self._told(result, progress), anyio.current_time()
        file = await self._downloader.download(
            result,
            path,
            overwrite=overwrite,
            progress=progress,
            max_bytes=max_bytes,
            refresh=refresh,
            poll_body=self._api.poll_call(result.task_id, result.model),
        )
        self._events.emit(
            DownloadFinished(
                task_id=result.task_id,
                model=result.model,
                path=file.path,
                bytes=file.size,
                seconds=anyio.current_time() - started,
            )
        )
        return file

    def _told(self, result: VideoResult, progress: DownloadProgress | None) -> DownloadProgress | None:
        """``progress``, also sending a :class:`DownloadProgressed` event per chunk when anything listens."""
        events = self._events
        if not events.active:
            return progress
        task_id = result.task_id

        def told(received: int, total: int | None) -> object:
            events.emit(DownloadProgressed(task_id=task_id, received=received, total=total))
            return None if progress is None else progress(received, total)

        return told
