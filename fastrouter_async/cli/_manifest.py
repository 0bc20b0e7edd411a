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

from fastrouter_async import (
    BatchJournal,
    BatchOutcome,
    FastRouterError,
    JobFailedError,
    JournalRecord,
    SubmitUncertainError,
    VideoRequest,
)

__all__ = ["MANIFEST_NAME", "NOT_SENT", "RUNNING", "error_text", "manifest_rows", "write_atomically", "write_manifest"]

MANIFEST_NAME: Final = "manifest.jsonl"
RUNNING: Final = "running"
"""Submitted (it has a task id, and may be billed) and not seen to end by the run that wrote the manifest."""
NOT_SENT: Final = "not_sent"
"""Never created on FastRouter (never sent, or refused): ``task_id`` is null and nothing was billed."""


def error_text(error: FastRouterError | None) -> str | None:
    """What went wrong, in one line, without repeating what the rest of the manifest line says."""
    if error is None:
        return None
    if isinstance(error, JobFailedError):
        return error.message
    if isinstance(error, SubmitUncertainError):
        return f"the submit may or may not have reached FastRouter ({error.reason}); it was not sent again"
    return str(error)


def _file_name(path: Path | str, folder: Path) -> str:
    """The file's path relative to the manifest's folder (it stays right when the folder moves)."""
    try:
        return Path(path).resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return str(path)


def record_status(record: JournalRecord | None) -> str:
    """The manifest status of a job known only from the journal (the run stopped before it ended)."""
    if record is None or record.state == "not_sent":
        return NOT_SENT
    if record.state in ("submitting", "uncertain"):
        return "uncertain"
    if record.state == "submitted" or (record.state == "succeeded" and record.file_sha256 is None):
        return RUNNING  # still running, or finished with its video not downloaded yet: a re-run does both
    if record.state in ("succeeded", "failed"):
        return record.state
    return "uncertain"  # a state this version does not know: never presented as safe to resubmit


def _from_record(record: JournalRecord | None, folder: Path) -> dict[str, Any]:
    if record is None:
        return {"task_id": None, "status": NOT_SENT, "file": None, "bytes": None, "sha256": None,
                "cost_usd": None, **_submit_facts(None, None, None, None), "error": None}  # fmt: skip
    done = record.file_sha256 is not None and record.file_path is not None
    return {
        "task_id": record.task_id if record.submitted else None,
        "status": record_status(record),
        "file": _file_name(record.file_path, folder) if done and record.file_path else None,
        "bytes": record.file_size if done else None,
        "sha256": record.file_sha256 if done else None,
        "cost_usd": record.cost_usd,
        **_submit_facts(record.found_again, record.cache_key, record.estimate_credits, record.estimate_usd),
        "error": record.error,
    }


def _submit_facts(
    found_again: bool | None, cache_key: str | None, credits: float | None, usd: float | None
) -> dict[str, Any]:
    """Whether a replay found the job again (not billed twice), the key its submits carried, the submit's estimate."""
    return {"found_again": found_again, "cache_key": cache_key, "estimate_credits": credits, "estimate_usd": usd}


def _from_outcome(outcome: BatchOutcome, record: JournalRecord | None, folder: Path) -> dict[str, Any]:
    file = outcome.file
    task_id = outcome.task_id
    estimate = outcome.submit_estimate
    if task_id is None and record is not None and record.submitted:
        task_id = record.task_id
    return {
        "task_id": task_id,
        "status": outcome.status.value,
        "file": _file_name(file.path, folder) if file is not None else None,
        "bytes": file.size if file is not None else None,
        "sha256": file.sha256 if file is not None else None,
        "cost_usd": outcome.cost_usd,
        **_submit_facts(
            outcome.found_again if outcome.found_again is not None or record is None else record.found_again,
            outcome.cache_key or (record.cache_key if record is not None else None),
            estimate.credits if estimate is not None else None,
            estimate.usd if estimate is not None else None,
        ),
        "error": error_text(outcome.error),
    }


def manifest_rows(
    requests: Sequence[VideoRequest],
    lines: Sequence[int],
    outcomes: Mapping[int, BatchOutcome],
    folder: Path,
    journal: BatchJournal | None = None,
    *,
    estimates: Sequence[float | None] | None = None,
) -> list[dict[str, Any]]:
    """One row per request, in input order, then one per job of the journal not in the batch file.

    A job without an outcome yet takes its task id and state from the journal (``running``
    once submitted, ``not_sent`` before), so every submitted job appears with its task id.
    """
    rows = []
    for index, request in enumerate(requests):
        outcome = outcomes.get(index)
        record = journal.jobs.get(index) if journal is not None else None
        facts = _from_record(record, folder) if outcome is None else _from_outcome(outcome, record, folder)
        expected = outcome.estimated_usd if outcome is not None else estimates[index] if estimates else None
        rows.append({"index": index, "line": lines[index], "prompt": request.prompt, "model": request.model,
                     **facts, "estimated_usd": expected, "cost_kind": _cost_kind(outcome, record),
                     "in_batch_file": True})  # fmt: skip
    for record in journal.others if journal is not None else ():
        rows.append({"index": None, "line": None, "prompt": record.prompt, "model": record.model,
                     **_from_record(record, folder), "estimated_usd": None,
                     "cost_kind": _cost_kind(None, record), "in_batch_file": False})  # fmt: skip
    return rows


def _cost_kind(outcome: BatchOutcome | None, record: JournalRecord | None) -> str:
    """What ``cost_usd`` is: ``final``, ``free`` (failed or never sent), or ``unknown`` (not stated, or not ended)."""
    if outcome is not None:
        return outcome.final_cost.kind
    if record is None or record.state in ("not_sent", "failed"):
        return "free"
    return "final" if record.state == "succeeded" and record.cost_usd is not None else "unknown"


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
