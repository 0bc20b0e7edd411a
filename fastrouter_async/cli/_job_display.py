"""What ``generate`` and ``download`` show while one job runs: text for people, or JSON Lines with ``--json``.

Both displays are told the same things (the submit, each status change seen, download
progress, the file written, a stop) and wait for the job the same way.
"""

from __future__ import annotations

import abc
import time
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.status import Status
from rich.text import Text

from fastrouter_async import DownloadedFile, JobStatus, StatusChanged, VideoJob, VideoRequest, VideoResult

from ._json import emit
from ._runtime import say, stdout_is_terminal
from ._text import plain

__all__ = ["JobDisplay", "JsonJobDisplay", "TextJobDisplay", "job_display"]

JSON_PROGRESS_UNKNOWN_SIZE_EVERY: Final = 4 * 1024 * 1024
# Bytes between two ``progress`` objects when the server gives no size (else one per quarter).


class JobDisplay(abc.ABC):
    """Follows one job: ``wait`` shows each status change as it is seen; subclasses say how."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def stamp(self) -> str:
        return f"[{time.monotonic() - self.started:6.1f}s]"

    @abc.abstractmethod
    def submitting(self, request: VideoRequest) -> None:
        """The request is about to be sent."""

    @abc.abstractmethod
    def submitted(self, job: VideoJob) -> None:
        """FastRouter accepted the job: it exists, with its task id."""

    @abc.abstractmethod
    def status(self, job: VideoJob, status: JobStatus | None, spinner: Status | None) -> None:
        """The job's status: at the start (``None`` before any answer), at each change, and at the end."""

    def spinner(self, job: VideoJob) -> Status | None:
        """A live status line to update while waiting (none by default)."""
        return None

    @abc.abstractmethod
    async def download(self, result: VideoResult, path: Path, *, overwrite: bool) -> DownloadedFile:
        """Download ``result`` to ``path``, showing its progress."""

    @abc.abstractmethod
    def saved(self, file: DownloadedFile, result: VideoResult) -> None:
        """The video is written and verified: say where, and what the job cost."""

    @abc.abstractmethod
    def stopped(self, message: str, *, task_id: str | None, download_command: str | None) -> None:
        """Ctrl-C or SIGTERM stopped the wait; the job (if any) goes on."""

    async def wait(self, job: VideoJob) -> VideoResult:
        """``await job.result()``, showing each status change as it is seen (``job.events()``)."""
        spinner = self.spinner(job)
        if spinner is not None:
            spinner.start()
        try:
            self.status(job, job.last_status, spinner)
            async for event in job.events():  # polls the job; ends with its JobEnded
                if isinstance(event, StatusChanged):
                    self.status(job, event.status, spinner)
        finally:
            if spinner is not None:
                spinner.stop()
        self.status(job, job.last_status, None)
        return await job.result()  # the job has ended: its result, or JobFailedError, at once


class TextJobDisplay(JobDisplay):
    """A spinner and a progress bar on a terminal, plain lines otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.console = Console(highlight=False) if stdout_is_terminal() else None
        self._shown: str | None = None

    def line(self, text: str) -> None:
        if self.console is not None:
            self.console.print(Text(plain(text, newlines=True)))
        else:
            say(text)

    def submitting(self, request: VideoRequest) -> None:
        self.line(f"submitting {request.describe()}")

    def submitted(self, job: VideoJob) -> None:
        self.line(f"{self.stamp()} submitted as task {job.task_id}")

    def spinner(self, job: VideoJob) -> Status | None:
        if self.console is None:
            return None
        return self.console.status(Text(f"task {plain(job.task_id)}: waiting for the first answer"))

    def status(self, job: VideoJob, status: JobStatus | None, spinner: Status | None) -> None:
        text = "waiting for the first answer" if status is None else status.describe()
        if text != self._shown:
            self._shown = text
            self.line(f"{self.stamp()} {text}")
        if spinner is not None:
            elapsed = time.monotonic() - self.started
            spinner.update(Text(f"task {plain(job.task_id)}: {plain(self._shown)} ({elapsed:.0f}s)"))

    async def download(self, result: VideoResult, path: Path, *, overwrite: bool) -> DownloadedFile:
        """Download ``result`` to ``path`` with a progress bar (or a line at every quarter)."""
        if self.console is None:
            quarters: set[int] = set()

            def lines(received: int, total: int | None) -> None:
                if total:
                    quarter = min(4, received * 4 // total)
                    if quarter and quarter not in quarters:
                        quarters.add(quarter)
                        say(f"{self.stamp()} downloaded {quarter * 25}% of {total:,} bytes")

            return await result.download(path, overwrite=overwrite, progress=lines)
        columns = (TextColumn("downloading"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with Progress(*columns, console=self.console, transient=True) as bar:
            task = bar.add_task("download", total=None)

            def live(received: int, total: int | None) -> None:
                bar.update(task, completed=received, total=total)

            return await result.download(path, overwrite=overwrite, progress=live)

    def saved(self, file: DownloadedFile, result: VideoResult) -> None:
        cost = "unknown" if result.cost_usd is None else f"${result.cost_usd:.2f}"
        self.line(f"path:   {file.path}")
        self.line(f"bytes:  {file.size}")
        self.line(f"sha256: {file.sha256}")
        self.line(f"cost:   {cost}")
        self.line(f"task:   {result.task_id}")

    def stopped(self, message: str, *, task_id: str | None, download_command: str | None) -> None:
        say(message)


def status_fields(status: JobStatus) -> dict[str, Any]:
    """The fields of a ``status`` object: the server's words kept as sent."""
    return {
        "task_id": status.task_id,
        "model": status.model,
        "state": status.state.value,
        "raw_status": status.raw_status,
        "error": status.error,
        "urls": list(status.urls),
        "cost_usd": status.cost_usd,
        "credits_used": status.credits_used,
    }


class JsonJobDisplay(JobDisplay):
    """``--json``: one JSON object per event on stdout (see docs/cli.md, "Machine-readable output")."""

    def __init__(self) -> None:
        super().__init__()
        self._last: JobStatus | None = None

    def elapsed(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def submitting(self, request: VideoRequest) -> None:
        pass  # the "submitted" object says it all, with the task id

    def submitted(self, job: VideoJob) -> None:
        emit("submitted", task_id=job.task_id, model=job.model, elapsed=self.elapsed())

    def status(self, job: VideoJob, status: JobStatus | None, spinner: Status | None) -> None:
        if status is None or status == self._last:
            return
        self._last = status
        emit("status", **status_fields(status), elapsed=self.elapsed())

    async def download(self, result: VideoResult, path: Path, *, overwrite: bool) -> DownloadedFile:
        """Download ``result`` to ``path``, with a ``progress`` object at each quarter (or every few MiB)."""
        said: set[int] = set()

        def progress(received: int, total: int | None) -> None:
            step = min(4, received * 4 // total) if total else received // JSON_PROGRESS_UNKNOWN_SIZE_EVERY
            if step and step not in said:
                said.add(step)
                emit("progress", task_id=result.task_id, received=received, total=total, elapsed=self.elapsed())

        return await result.download(path, overwrite=overwrite, progress=progress)

    def saved(self, file: DownloadedFile, result: VideoResult) -> None:
        where: dict[str, Any] = {"path": str(file.path), "bytes": file.size, "sha256": file.sha256}
        emit("downloaded", task_id=result.task_id, **where, elapsed=self.elapsed())
        emit(
            "result",
            task_id=result.task_id,
            model=result.model,
            state="succeeded",
            **where,
            cost_usd=result.cost_usd,
            credits_used=result.credits_used,
            elapsed=self.elapsed(),
        )

    def stopped(self, message: str, *, task_id: str | None, download_command: str | None) -> None:
        emit("stopped", message=message, task_id=task_id, download_command=download_command)


def job_display(json_lines: bool) -> JobDisplay:
    """The display ``--json`` asks for."""
    return JsonJobDisplay() if json_lines else TextJobDisplay()
