"""``jobs DIR``: every job a batch journal knows, with its task id and state (read-only, no lock taken).

``jobs --store URL``: every job of the account recorded in a shared store, with its model, task id,
state, submit time and file (what ``batch --store`` recorded).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import anyio
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fastrouter_async import JobRecord, JournalError, JournalRecord, read_journal

from ._batch import JOURNAL_NAME
from ._json import emit
from ._manifest import record_status
from ._runtime import EXIT_OK, CommandError, open_session, say, stdout_is_terminal
from ._summary import download_command, needs_download
from ._text import plain

__all__ = ["run_jobs"]

_COLUMNS = ("index", "task id", "model", "state", "file", "cost")
_STORE_COLUMNS = ("task id", "model", "state", "submitted", "file")


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


def _store_state(record: JobRecord) -> str:
    return "submitting (no task id yet)" if record.state is None else record.state.value


def _store_file(record: JobRecord) -> dict[str, object] | None:
    file = record.details.get("file")
    return file if isinstance(file, dict) else None


def _store_cells(record: JobRecord) -> tuple[str, ...]:
    file = _store_file(record)
    submitted = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.submitted_at))
    return (
        record.task_id or "-",
        record.model,
        _store_state(record),
        submitted,
        str(file.get("path")) if file else "-",
    )


def _print_table(title: str, columns: Sequence[str], rows: list[tuple[str, ...]], states: Counter[str]) -> None:
    """A table on a terminal, else tab-separated lines; then one line counting the states."""
    if stdout_is_terminal():
        table = Table(*columns, title=plain(title))
        for row in rows:
            table.add_row(*(Text(plain(cell)) for cell in row))
        Console(highlight=False).print(table)
    else:
        say("\t".join(columns))
        for row in rows:
            say("\t".join(plain(cell) for cell in row))
    say(f"{sum(states.values())} jobs: " + ", ".join(f"{count} {state}" for state, count in sorted(states.items())))


async def _run_store_jobs(options: argparse.Namespace) -> int:
    """The jobs of a shared store (read only: nothing is sent to FastRouter)."""
    async with open_session(options, store=options.store) as session:
        records = await session.jobs()
        shown = session.store or ""
    states = Counter(_store_state(record) for record in records)
    if options.json:
        for record in records:
            file = _store_file(record)
            emit(
                "job",
                key=record.key,
                task_id=record.task_id,
                model=record.model,
                state=_store_state(record),
                submitted_at=record.submitted_at,
                file=file.get("path") if file else None,
                bytes=file.get("size") if file else None,
                sha256=file.get("sha256") if file else None,
                error=record.details.get("error"),
                cost_usd=record.details.get("cost_usd"),
            )
        emit("summary", jobs=len(records), states=dict(sorted(states.items())))
        return EXIT_OK
    rows = [_store_cells(record) for record in records]
    _print_table(f"jobs in {shown}", _STORE_COLUMNS, rows, states)
    return EXIT_OK


async def run_jobs(options: argparse.Namespace) -> int:
    """List the journal's jobs: a table on a terminal, tab-separated lines otherwise (or download commands)."""
    if options.store:
        if options.dir is not None or options.journal or options.download_commands:
            raise CommandError("--store lists a store's jobs: give no DIR, --journal or --download-commands with it")
        return await _run_store_jobs(options)
    if options.dir is None:
        raise CommandError("give the batch's --out folder (DIR), or --store URL")
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
    states = Counter(record_status(record) for record in records)
    _print_table(f"jobs in {journal}", _COLUMNS, [_cells(record) for record in records], states)
    return EXIT_OK
