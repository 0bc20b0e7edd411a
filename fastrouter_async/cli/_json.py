"""``--json``: one JSON object per line (JSON Lines) on stdout, for scripts and other programs.

Every object has ``"type"`` (what it reports) and ``"schema"`` (:data:`SCHEMA`, the version of
the field set). Within one schema version fields are only ever added, never renamed, removed or
given another meaning; a change that breaks a reader bumps ``schema``. The fields of each type
are listed in docs/cli.md ("Machine-readable output").

Values are plain JSON: strings a server sent are kept exactly as sent (no markup, no visible
escapes); ``json.dumps`` with ``ensure_ascii`` writes every control, escape and non-ASCII
character as a ``\\uXXXX`` escape, so a line never holds a raw terminal escape and never spans
two lines.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from typing import Any, Final, TextIO

__all__ = ["SCHEMA", "JsonLogHandler", "emit", "error_object", "write"]

SCHEMA: Final = 1
"""The version of the JSON Lines field set; bumped only by a change that could break a reader."""


def write(stream: TextIO, kind: str, fields: Mapping[str, Any]) -> None:
    """Write one object of type ``kind`` with ``fields`` to ``stream`` as one line, flushed at once."""
    line = json.dumps({"type": kind, "schema": SCHEMA, **fields}, ensure_ascii=True, allow_nan=False)
    print(line, file=stream, flush=True)


def emit(kind: str, /, **fields: Any) -> None:
    """Write one object of type ``kind`` with ``fields`` on stdout."""
    write(sys.stdout, kind, fields)


def error_object(
    error: str,
    message: str,
    *,
    exit_code: int,
    task_id: str | None = None,
    download_command: str | None = None,
    status_code: int | None = None,
) -> dict[str, Any]:
    """The fields of an ``error`` object (``error`` is a class name such as ``NotFoundError`` or ``UsageError``)."""
    return {
        "error": error,
        "message": message,
        "task_id": task_id,
        "download_command": download_command,
        "status_code": status_code,
        "exit_code": exit_code,
    }


class JsonLogHandler(logging.Handler):
    """Log records as ``log`` objects on whatever ``sys.stderr`` is at the time (never on stdout)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call must not break the command
            message = str(record.msg)
        try:
            fields = {"level": record.levelname.lower(), "logger": record.name, "message": message}
            write(sys.stderr, "log", fields)
        except Exception:
            self.handleError(record)
