"""``DIR/manifest.jsonl``: one JSON line per job of a batch, written atomically.

The manifest is a report, rewritten whole each time (a temporary file beside it,
flushed to disk, then renamed over it), so a reader never sees half of one. The
journal, not the manifest, is what a re-run resumes from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from fastrouter_async import BatchOutcome, FastRouterError, JobFailedError, SubmitUncertainError, VideoRequest

__all__ = ["MANIFEST_NAME", "UNFINISHED", "error_text", "manifest_rows", "write_atomically", "write_manifest"]

MANIFEST_NAME: Final = "manifest.jsonl"
UNFINISHED: Final = "unfinished"
"""The status of a job the run stopped before it ended (Ctrl-C): the next run picks it up."""


def error_text(error: FastRouterError | None) -> str | None:
    """What went wrong, in one line, without repeating what the rest of the manifest line says."""
    if error is None:
        return None
    if isinstance(error, JobFailedError):
        return error.message
    if isinstance(error, SubmitUncertainError):
        return f"the submit may or may not have reached FastRouter ({error.reason}); it was not sent again"
    return str(error)


def _file_name(path: Path, folder: Path) -> str:
    """The file's path relative to the manifest's folder (it stays right when the folder moves)."""
    try:
        return path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return str(path)


def manifest_rows(
    requests: Sequence[VideoRequest],
    lines: Sequence[int],
    outcomes: Mapping[int, BatchOutcome],
    folder: Path,
) -> list[dict[str, Any]]:
    """One row per request, in input order; jobs without an outcome are ``unfinished``."""
    rows = []
    for index, request in enumerate(requests):
        outcome = outcomes.get(index)
        file = outcome.file if outcome is not None else None
        rows.append(
            {
                "index": index,
                "line": lines[index],
                "prompt": request.prompt,
                "model": request.model,
                "task_id": outcome.task_id if outcome is not None else None,
                "status": outcome.status.value if outcome is not None else UNFINISHED,
                "file": _file_name(file.path, folder) if file is not None else None,
                "bytes": file.size if file is not None else None,
                "sha256": file.sha256 if file is not None else None,
                "cost_usd": outcome.cost_usd if outcome is not None else None,
                "error": error_text(outcome.error) if outcome is not None else None,
            }
        )
    return rows


def write_manifest(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Replace ``path`` with ``rows`` as JSON lines, atomically (blocking: run it in a worker thread)."""
    write_atomically(path, (json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def write_atomically(path: Path, pieces: Iterable[str]) -> None:
    """Replace ``path`` with the text ``pieces``: a reader sees the old file or the whole new one (blocking)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as out:
            for piece in pieces:
                out.write(piece)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
