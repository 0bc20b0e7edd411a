"""``generate``, ``status`` and ``download``: one job, followed as it runs."""

from __future__ import annotations

import argparse
import json
from typing import Any

import anyio

from fastrouter_async import (
    FastRouterError,
    InvalidRequestError,
    JobFailedError,
    JobState,
    SubmitUncertainError,
    VideoJob,
    VideoRequest,
    validate_request,
)

from ._batch_file import shorten
from ._job_display import job_display, status_fields
from ._json import emit
from ._paths import check_output, download_command
from ._runtime import EXIT_FAILED, EXIT_OK, CommandError, StopSignals, open_session, say

__all__ = ["run_download", "run_generate", "run_status"]


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
        raise CommandError(_invalid_message(exc), error="InvalidRequestError") from None
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


def _keeps_running(options: argparse.Namespace, task_id: str, model: str) -> tuple[str, str | None]:
    """What a stop while waiting leaves behind, and the command that gets the video later (if there is one)."""
    if options.simulate:
        return f"Stopped. Task {task_id} ran on the simulator, which stops with this command.", None
    command = download_command(options, task_id, model)
    return (
        f"Stopped waiting. Task {task_id} keeps running on FastRouter (and is billed); get its video later with:\n"
        f"  {command}"
    ), command


def _job_failed(exc: JobFailedError) -> CommandError:
    return CommandError(
        f"task {exc.task_id} failed: {exc.message}",
        EXIT_FAILED,
        error=type(exc).__name__,
        reason=exc.message,
        task_id=exc.task_id,
    )


def _after_the_job_exists(options: argparse.Namespace, task_id: str, model: str, exc: FastRouterError) -> CommandError:
    """A failure once a paid job exists: what went wrong, and the command that gets the video without paying again."""
    code = getattr(exc, "status_code", None)
    fields: dict[str, Any] = {
        "error": type(exc).__name__,
        "reason": str(exc),
        "task_id": task_id,
        "status_code": code if isinstance(code, int) else None,
    }
    if options.simulate:
        return CommandError(f"task {task_id}: {exc}", EXIT_FAILED, **fields)
    advice = "do not run generate again" if options.command == "generate" else "nothing is submitted again"
    command = download_command(options, task_id, model)
    return CommandError(
        f"task {task_id}: {type(exc).__name__}: {exc}\n"
        f"The job exists on FastRouter (and may be billed): {advice}. Get its video with:\n"
        f"  {command}",
        EXIT_FAILED,
        download_command=command,
        **fields,
    )


async def run_generate(options: argparse.Namespace) -> int:
    """Submit one request, follow it, download the video and describe the file."""
    request = _request_from(options)
    output = check_output(options.output, overwrite=options.overwrite)
    display = job_display(options.json)
    stop = StopSignals()
    job: VideoJob | None = None
    with stop.installed():
        async with open_session(options) as session:
            with anyio.CancelScope() as scope, stop.cancels(scope):
                display.submitting(request)
                try:
                    job = await session.submit(request)
                except SubmitUncertainError as exc:
                    raise CommandError(str(exc), EXIT_FAILED, error=type(exc).__name__) from None
                display.submitted(job)
                try:
                    result = await display.wait(job)
                    file = await display.download(result, output, overwrite=options.overwrite)
                except JobFailedError as exc:
                    raise _job_failed(exc) from None
                except FastRouterError as exc:
                    raise _after_the_job_exists(options, job.task_id, request.model, exc) from None
                display.saved(file, result)
                return EXIT_OK
    assert stop.signum is not None
    if job is None:
        display.stopped(
            "Stopped before the submit was answered; nothing to wait for (a warning above names the task if one "
            "was created).",
            task_id=None,
            download_command=None,
        )
    else:
        message, command = _keeps_running(options, job.task_id, request.model)
        display.stopped(message, task_id=job.task_id, download_command=command)
    return stop.exit_code


async def run_status(options: argparse.Namespace) -> int:
    """Ask once how a task is doing."""
    async with open_session(options) as session:
        job = session.job(options.task_id, model=options.model)
        status = await job.status()
    if options.json:
        emit("status", **status_fields(status))
        return EXIT_OK
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
    display = job_display(options.json)
    stop = StopSignals()
    with stop.installed():
        async with open_session(options) as session:
            with anyio.CancelScope() as scope, stop.cancels(scope):
                job = session.job(options.task_id, model=options.model)
                try:
                    result = await display.wait(job)
                    file = await display.download(result, output, overwrite=options.overwrite)
                except JobFailedError as exc:
                    raise _job_failed(exc) from None
                except FastRouterError as exc:
                    raise _after_the_job_exists(options, options.task_id, options.model, exc) from None
                display.saved(file, result)
                return EXIT_OK
    assert stop.signum is not None
    message, command = _keeps_running(options, options.task_id, options.model)
    display.stopped(message, task_id=options.task_id, download_command=command)
    return stop.exit_code
