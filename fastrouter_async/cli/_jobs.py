"""``jobs DIR``: every job a batch journal knows, with its task id and state (read-only, no lock taken)."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import anyio
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fastrouter_async import JournalError, JournalRecord, read_journal

from ._batch import JOURNAL_NAME
from ._json import emit
from ._manifest import record_status
from ._runtime import EXIT_OK, CommandError, say, stdout_is_terminal
from ._summary import download_command, needs_download
from ._text import plain

__all__ = ["run_jobs"]

_COLUMNS = ("index", "task id", "model", "state", "file", "cost")


def _journal_path(options: argparse.Namespace) -> tuple[Path, Path]:
    """(the journal file, the folder its videos go to) from ``DIR`` (or a journal file) and ``--journal``."""
    given = Path(options.dir)
    if options.journal:
        return Path(options.journal), given
    if given.is_file():
        return given, given.parent
    return given / JOURNAL_NAME, given


def _cells(record: JournalRecord) -> tuple[str, ...]:
    state = record_status(record)
    if state == "running" and record.status:
        state = f"running ({record.status})"
    return (
        str(record.position),
        record.task_id or "-",
        record.model,
        state,
        record.file_path if record.file_sha256 is not None and record.file_path else "-",
        "-" if record.cost_usd is None else f"${record.cost_usd:.2f}",
    )


def _print_json(records: list[JournalRecord], folder: Path, options: argparse.Namespace) -> None:
    """One ``job`` object per record (only those needing a download with ``--download-commands``), then ``summary``."""
    shown = [record for record in records if needs_download(record)] if options.download_commands else records
    for record in shown:
        done = record.file_sha256 is not None and record.file_path is not None
        emit(
            "job",
            index=record.position,
            task_id=record.task_id,
            model=record.model,
            prompt=record.prompt,
            state=record_status(record),
            raw_status=record.status,
            error=record.error,
            file=record.file_path if done else None,
            bytes=record.file_size if done else None,
            sha256=record.file_sha256 if done else None,
            cost_usd=record.cost_usd,
            download_command=download_command(record, folder, options) if needs_download(record) else None,
        )
    states = Counter(record_status(record) for record in records)
    emit("summary", jobs=len(records), states=dict(sorted(states.items())))


async def run_jobs(options: argparse.Namespace) -> int:
    """List the journal's jobs: a table on a terminal, tab-separated lines otherwise (or download commands)."""
    journal, folder = _journal_path(options)
    try:
        records = await anyio.to_thread.run_sync(read_journal, journal)
    except JournalError as exc:
        raise CommandError(f"{exc} (give the batch's --out folder, or --journal PATH)", error="JournalError") from None
    if options.json:
        _print_json(records, folder, options)
        return EXIT_OK
    if options.download_commands:
        for record in records:
            if needs_download(record):
                say(download_command(record, folder, options))
        return EXIT_OK
    if stdout_is_terminal():
        table = Table(*_COLUMNS, title=plain(f"jobs in {journal}"))
        for record in records:
            table.add_row(*(Text(plain(cell)) for cell in _cells(record)))
        Console(highlight=False).print(table)
    else:
        say("\t".join(_COLUMNS))
        for record in records:
            say("\t".join(plain(cell) for cell in _cells(record)))
    states = Counter(record_status(record) for record in records)
    say(f"{len(records)} jobs: " + ", ".join(f"{count} {state}" for state, count in sorted(states.items())))
    return EXIT_OK
