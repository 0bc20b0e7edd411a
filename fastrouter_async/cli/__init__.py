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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = build_parser().parse_args(arguments)
    options.argv = arguments  # to print the command that resumes an interrupted batch
    configure_logging(options.verbose)
    try:
        return asyncio.run(_COMMANDS[options.command](options))
    except CommandError as exc:
        say(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except InvalidRequestError as exc:
        say(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FastRouterError as exc:
        say(f"{PROG}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:  # before the command's own handler was installed
        say(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as other tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's final flush does not fail again
        return EXIT_FAILED
