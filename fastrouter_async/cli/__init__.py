"""``fastrouter-video``: FastRouter video generation from the command line.

Also reachable as ``python -m fastrouter_async``. Commands: ``generate`` (one video),
``batch`` (a file of prompts, resumable), ``jobs`` (a batch journal's jobs), ``status``,
``download``, ``models`` and ``simulator``. The command line uses only the public API of :mod:`fastrouter_async`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from fastrouter_async import FastRouterError, InvalidRequestError

from ._json import emit, error_object
from ._options import PROG, build_parser
from ._runtime import EXIT_FAILED, EXIT_USAGE, CommandError, configure_logging, say

__all__ = ["main"]

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


async def _batch(options: argparse.Namespace) -> int:
    from ._batch import run_batch  # noqa: PLC0415  (the batch machinery loads only when asked for)

    return await run_batch(options)


async def _generate(options: argparse.Namespace) -> int:
    from ._single import run_generate  # noqa: PLC0415

    return await run_generate(options)


async def _status(options: argparse.Namespace) -> int:
    from ._single import run_status  # noqa: PLC0415

    return await run_status(options)


async def _download(options: argparse.Namespace) -> int:
    from ._single import run_download  # noqa: PLC0415

    return await run_download(options)


async def _jobs(options: argparse.Namespace) -> int:
    from ._jobs import run_jobs  # noqa: PLC0415

    return await run_jobs(options)


async def _models(options: argparse.Namespace) -> int:
    from ._models import run_models  # noqa: PLC0415

    return await run_models(options)


async def _simulator(options: argparse.Namespace) -> int:
    from ._simulator_cmd import run_simulator  # noqa: PLC0415

    return await run_simulator(options)


_COMMANDS: Mapping[str, Command] = {
    "batch": _batch,
    "download": _download,
    "generate": _generate,
    "jobs": _jobs,
    "models": _models,
    "simulator": _simulator,
    "status": _status,
}


def _wants_json(arguments: Sequence[str]) -> bool:
    """Whether ``--json`` is among the options (before a ``--`` that ends them)."""
    options = arguments[: arguments.index("--")] if "--" in arguments else arguments
    return "--json" in options


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = build_parser(json_errors=_wants_json(arguments)).parse_args(arguments)
    options.argv = arguments  # to print the command that resumes an interrupted batch
    json_lines = bool(getattr(options, "json", False)) and options.command != "models"
    configure_logging(options.verbose, json_lines=json_lines)
    report = _report_json if json_lines else _report_text
    try:
        return asyncio.run(_COMMANDS[options.command](options))
    except CommandError as exc:
        fields = error_object(
            exc.error,
            exc.reason,
            exit_code=exc.exit_code,
            task_id=exc.task_id,
            download_command=exc.download_command,
            status_code=exc.status_code,
        )
        return report(f"{PROG}: error: {exc}", fields)
    except InvalidRequestError as exc:
        return report(f"{PROG}: error: {exc}", error_object(type(exc).__name__, str(exc), exit_code=EXIT_USAGE))
    except FastRouterError as exc:
        code = getattr(exc, "status_code", None)
        task_id = getattr(exc, "task_id", None) or getattr(options, "task_id", None)
        fields = error_object(
            type(exc).__name__,
            str(exc),
            exit_code=EXIT_FAILED,
            task_id=task_id if isinstance(task_id, str) else None,
            status_code=code if isinstance(code, int) else None,
        )
        return report(f"{PROG}: {type(exc).__name__}: {exc}", fields)
    except KeyboardInterrupt:  # before the command's own handler was installed
        if json_lines:
            emit("stopped", message="interrupted", task_id=None, download_command=None)
        else:
            say(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as other tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's final flush does not fail again
        return EXIT_FAILED


def _report_text(message: str, fields: Mapping[str, Any]) -> int:
    say(message, file=sys.stderr)
    exit_code: int = fields["exit_code"]
    return exit_code


def _report_json(message: str, fields: Mapping[str, Any]) -> int:
    emit("error", **fields)
    exit_code: int = fields["exit_code"]
    return exit_code
