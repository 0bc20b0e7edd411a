"""``generate``, ``status`` and ``download``: one job, followed as it runs."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.status import Status
from rich.text import Text

from fastrouter_async import (
    DownloadedFile,
    FastRouterError,
    InvalidRequestError,
    JobFailedError,
    JobState,
    JobStatus,
    SubmitUncertainError,
    VideoJob,
    VideoRequest,
    VideoResult,
    validate_request,
)

from ._batch_file import shorten
from ._paths import check_output, download_command
from ._runtime import EXIT_FAILED, EXIT_OK, CommandError, StopSignals, open_session, say, stdout_is_terminal
from ._text import plain

__all__ = ["run_download", "run_generate", "run_status"]

_WATCH_EVERY = 0.1
# Seconds between two looks at the job's last known status (memory only: the polling
# itself follows the session's poll policy).


class _JobDisplay:
    """Shows one job's progress: a spinner and a progress bar on a terminal, plain lines otherwise."""

    def __init__(self) -> None:
        self.console = Console(highlight=False) if stdout_is_terminal() else None
        self.started = time.monotonic()
        self._shown: str | None = None

    def line(self, text: str) -> None:
        if self.console is not None:
            self.console.print(Text(plain(text, newlines=True)))
        else:
            say(text)

    def stamp(self) -> str:
        return f"[{time.monotonic() - self.started:6.1f}s]"

    def _status_changed(self, status: JobStatus | None) -> str | None:
        text = "waiting for the first answer" if status is None else status.describe()
        if text == self._shown:
            return None
        self._shown = text
        return text

    async def wait(self, job: VideoJob) -> VideoResult:
        """``await job.result()``, showing each status change as it is seen."""
        outcome: list[VideoResult | FastRouterError] = []
        spinner: Status | None = None
        if self.console is not None:
            spinner = self.console.status(Text(f"task {plain(job.task_id)}: waiting for the first answer"))
            spinner.start()
        try:
            async with anyio.create_task_group() as tg:

                async def waiter() -> None:
                    try:
                        outcome.append(await job.result())
                    except FastRouterError as exc:
                        outcome.append(exc)
                    finally:
                        tg.cancel_scope.cancel()

                tg.start_soon(waiter)
                while True:
                    self._show_status(job, spinner)
                    await anyio.sleep(_WATCH_EVERY)
        finally:
            if spinner is not None:
                spinner.stop()
        self._show_status(job, None)
        result = outcome[0]
        if isinstance(result, FastRouterError):
            raise result
        return result

    def _show_status(self, job: VideoJob, spinner: Status | None) -> None:
        changed = self._status_changed(job.last_status)
        if changed is not None:
            self.line(f"{self.stamp()} {changed}")
        if spinner is not None:
            elapsed = time.monotonic() - self.started
            spinner.update(Text(f"task {plain(job.task_id)}: {plain(self._shown)} ({elapsed:.0f}s)"))

    async def download(self, result: VideoResult, path: Path, *, overwrite: bool) -> DownloadedFile:
        """Download ``result`` to ``path`` with a progress bar (or a line at every quarter)."""
        if self.console is None:
            quarters: set[int] = set()

            def plain(received: int, total: int | None) -> None:
                if total:
                    quarter = min(4, received * 4 // total)
                    if quarter and quarter not in quarters:
                        quarters.add(quarter)
                        say(f"{self.stamp()} downloaded {quarter * 25}% of {total:,} bytes")

            return await result.download(path, overwrite=overwrite, progress=plain)
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


def _request_from(options: argparse.Namespace) -> VideoRequest:
    fields: dict[str, Any] = {"model": options.model, "prompt": options.prompt}
    for name in ("image", "length", "seconds", "resolution", "aspect_ratio", "size", "mode", "seed", "generate_audio"):
        value = getattr(options, name)
        if value is not None:
            fields[name] = value
    params = _parse_params(options.param or [])
    clash = sorted(set(params) & set(fields))
    if clash:
        raise CommandError(f"--param {clash[0]}=... repeats an option; give it once")
    try:
        request = VideoRequest.from_fields({**fields, **params})
        validate_request(request)
    except InvalidRequestError as exc:
        raise CommandError(_invalid_message(exc)) from None
    return request


def _invalid_message(exc: InvalidRequestError) -> str:
    where = f" (model {exc.model})" if exc.model else ""
    return f"field {exc.field}: value {shorten(exc.value)}: {exc.allowed}{where}"


def _parse_params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a VALUE that is valid JSON (a number, true, a list...) is sent decoded."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CommandError(f"--param {item!r}: expected KEY=VALUE, e.g. --param negativePrompt=blurry")
        if key in params:
            raise CommandError(f"--param {key}: given twice")
        try:
            params[key] = json.loads(text)
        except ValueError:
            params[key] = text
    return params


def _keeps_running(options: argparse.Namespace, task_id: str, model: str) -> str:
    if options.simulate:
        return f"Stopped. Task {task_id} ran on the simulator, which stops with this command."
    return (
        f"Stopped waiting. Task {task_id} keeps running on FastRouter (and is billed); get its video later with:\n"
        f"  {download_command(options, task_id, model)}"
    )


def _after_the_job_exists(options: argparse.Namespace, task_id: str, model: str, exc: FastRouterError) -> CommandError:
    """A failure once a paid job exists: what went wrong, and the command that gets the video without paying again."""
    if options.simulate:
        return CommandError(f"task {task_id}: {exc}", EXIT_FAILED)
    advice = "do not run generate again" if options.command == "generate" else "nothing is submitted again"
    return CommandError(
        f"task {task_id}: {type(exc).__name__}: {exc}\n"
        f"The job exists on FastRouter (and may be billed): {advice}. Get its video with:\n"
        f"  {download_command(options, task_id, model)}",
        EXIT_FAILED,
    )


async def run_generate(options: argparse.Namespace) -> int:
    """Submit one request, follow it, download the video and describe the file."""
    request = _request_from(options)
    output = check_output(options.output, overwrite=options.overwrite)
    display = _JobDisplay()
    stop = StopSignals()
    job: VideoJob | None = None
    with stop.installed():
        async with open_session(options) as session:
            with anyio.CancelScope() as scope, stop.cancels(scope):
                display.line(f"submitting {request.describe()}")
                try:
                    job = await session.submit(request)
                except SubmitUncertainError as exc:
                    raise CommandError(str(exc), EXIT_FAILED) from None
                display.line(f"{display.stamp()} submitted as task {job.task_id}")
                try:
                    result = await display.wait(job)
                    file = await display.download(result, output, overwrite=options.overwrite)
                except JobFailedError as exc:
                    raise CommandError(f"task {exc.task_id} failed: {exc.message}", EXIT_FAILED) from None
                except FastRouterError as exc:
                    raise _after_the_job_exists(options, job.task_id, request.model, exc) from None
                display.saved(file, result)
                return EXIT_OK
    assert stop.signum is not None
    if job is None:
        say(
            "Stopped before the submit was answered; nothing to wait for (a warning above names the task if one "
            "was created)."
        )
    else:
        say(_keeps_running(options, job.task_id, request.model))
    return stop.exit_code


async def run_status(options: argparse.Namespace) -> int:
    """Ask once how a task is doing."""
    async with open_session(options) as session:
        job = session.job(options.task_id, model=options.model)
        status = await job.status()
    say(f"task:   {status.task_id}")
    say(f"state:  {status.describe()}")
    if status.state is JobState.SUCCEEDED:
        for url in status.urls:
            say(f"url:    {url}")
        if not status.urls:
            say("url:    none (the video comes with the status answer; use the download command)")
    if status.cost_usd is not None:
        say(f"cost:   ${status.cost_usd:.2f}")
    return EXIT_OK


async def run_download(options: argparse.Namespace) -> int:
    """Wait for a task to end, then download its video."""
    output = check_output(options.output, overwrite=options.overwrite)
    display = _JobDisplay()
    stop = StopSignals()
    with stop.installed():
        async with open_session(options) as session:
            with anyio.CancelScope() as scope, stop.cancels(scope):
                job = session.job(options.task_id, model=options.model)
                try:
                    result = await display.wait(job)
                    file = await display.download(result, output, overwrite=options.overwrite)
                except JobFailedError as exc:
                    raise CommandError(f"task {exc.task_id} failed: {exc.message}", EXIT_FAILED) from None
                except FastRouterError as exc:
                    raise _after_the_job_exists(options, options.task_id, options.model, exc) from None
                display.saved(file, result)
                return EXIT_OK
    assert stop.signum is not None
    say(_keeps_running(options, options.task_id, options.model))
    return stop.exit_code
