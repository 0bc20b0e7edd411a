"""What every command shares: exit codes, errors, logging, signals and opening a session."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Final, TextIO

import anyio

from fastrouter_async import FastRouterSession, InvalidRequestError, PollPolicy

from ._json import JsonLogHandler
from ._simulated import SIMULATED_API_KEY, simulated_poll_policy, simulated_world
from ._text import plain

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "StopSignals",
    "configure_logging",
    "open_session",
    "say",
    "stdout_is_terminal",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
"""A job failed, its outcome is uncertain, or the API said no."""
EXIT_USAGE: Final = 2
"""Bad command line, bad batch file, missing key: nothing was sent."""


class CommandError(Exception):
    """Stops a command with a message for the user (no traceback) and an exit code.

    The keyword fields are what ``--json`` reports in its ``error`` object: the class name of
    the error behind it (``UsageError`` for a refused command line), the message without the
    advice meant for people (``reason``), the task and the command that fetches its video.
    """

    def __init__(
        self,
        message: str,
        exit_code: int = EXIT_USAGE,
        *,
        error: str | None = None,
        reason: str | None = None,
        task_id: str | None = None,
        download_command: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.error = error or ("UsageError" if exit_code == EXIT_USAGE else "CommandError")
        self.reason = message if reason is None else reason
        self.task_id = task_id
        self.download_command = download_command
        self.status_code = status_code


def say(text: str = "", *, file: TextIO | None = None) -> None:
    """Print one line and flush it, so that a program reading the pipe sees it at once.

    Control and escape characters are shown as ``\\x1b``-style escapes (newlines kept): the
    text may hold what a server sent, which must never reach the terminal as a command.
    """
    print(plain(text, newlines=True), file=file or sys.stdout, flush=True)


def stdout_is_terminal() -> bool:
    """Whether to draw a live display (a terminal) or print plain one-line events (a pipe, a file)."""
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


# -- logging -------------------------------------------------------------------------------------------


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time, so a live display can capture it."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass

    def format(self, record: logging.LogRecord) -> str:
        return plain(super().format(record), newlines=True)  # log messages quote what servers sent


def configure_logging(verbosity: int, *, json_lines: bool = False) -> None:
    """Warnings always go to stderr (they can name a task id worth keeping); ``-v`` adds info, ``-vv`` debug.

    With ``json_lines`` (``--json``) each record is a JSON ``log`` object instead of a line of text.
    """
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler: logging.Handler
    if json_lines:
        handler = JsonLogHandler()
    else:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


# -- signals -------------------------------------------------------------------------------------------


class StopSignals:
    """Turns the first SIGINT or SIGTERM into a clean stop of one cancel scope.

    A second signal ends the process at once (the journal is written transactionally,
    so even that loses nothing that was recorded).
    """

    SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_first: Callable[[int], None] | None = None) -> None:
        self.signum: int | None = None
        self._on_first = on_first
        self._scope: anyio.CancelScope | None = None

    @property
    def exit_code(self) -> int:
        """``128 + signal number``, the shell's convention: 130 for Ctrl-C, 143 for SIGTERM."""
        assert self.signum is not None
        return 128 + self.signum

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle the signals for the duration of the block (from inside the event loop)."""
        loop = asyncio.get_running_loop()
        for signum in self.SIGNALS:
            loop.add_signal_handler(signum, self._received, signum)
        try:
            yield
        finally:
            for signum in self.SIGNALS:
                loop.remove_signal_handler(signum)

    @contextlib.contextmanager
    def cancels(self, scope: anyio.CancelScope) -> Iterator[anyio.CancelScope]:
        """The first signal cancels ``scope`` (at once if one already came)."""
        self._scope = scope
        if self.signum is not None:
            scope.cancel()
        try:
            yield scope
        finally:
            self._scope = None

    def _received(self, signum: int) -> None:
        if self.signum is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(128 + signum)
        self.signum = signum
        if self._on_first is not None:
            self._on_first(signum)
        if self._scope is not None:
            self._scope.cancel()


# -- sessions ------------------------------------------------------------------------------------------


def poll_policy(options: argparse.Namespace) -> PollPolicy | None:
    """The poll policy the options ask for (``None``: the library's default)."""
    interval: float | None = options.poll_interval
    if interval is not None:
        return PollPolicy.fixed(interval)
    if options.simulate:
        return simulated_poll_policy(options.simulate_time_scale)
    return None


@contextlib.asynccontextmanager
async def open_session(options: argparse.Namespace, **session_options: Any) -> AsyncIterator[FastRouterSession]:
    """A session on FastRouter (key from ``FASTROUTER_API_KEY``) or, with ``--simulate``, on a simulator."""
    policy = poll_policy(options)
    if policy is not None:
        session_options["poll_policy"] = policy
    if not options.simulate:
        try:
            session = FastRouterSession(base_url=options.base_url, **session_options)
        except InvalidRequestError as exc:
            raise CommandError(_setup_problem(exc)) from None
        async with session:
            yield session
        return
    async with simulated_world(options.simulate_time_scale).serve() as server:
        logging.getLogger("fastrouter_async.cli").info("simulator serving at %s", server.base_url)
        async with FastRouterSession(SIMULATED_API_KEY, base_url=server.base_url, **session_options) as session:
            yield session


def _setup_problem(exc: InvalidRequestError) -> str:
    if exc.field == "api_key" and exc.value in ("<missing>", "<empty>"):
        return (
            "no API key: set the FASTROUTER_API_KEY environment variable (FastRouter keys start with 'sk-v1-'), "
            "or add --simulate to run against a local simulator"
        )
    if exc.field == "api_key":
        return f"the API key in FASTROUTER_API_KEY is not usable: it must be {exc.allowed}"  # never echoes the key
    if exc.field == "base_url":
        return f"bad base URL {exc.value!r}: {exc.allowed}"
    return str(exc)
