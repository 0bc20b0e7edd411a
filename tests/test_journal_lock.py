"""The journal's lock follows the file's real identity: no symlink or hard link can run one journal twice."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fastrouter_async import JournalError
from fastrouter_async._journal import Journal
from fastrouter_async.testing import FastRouterSimulator, JobPlan, SimulatorServer

from .test_cli import batch_args, cli, prompts_file, run

__all__ = ["cli"]


async def test_a_symlinked_journal_shares_the_lock(tmp_path: Path) -> None:
    """A journal open through its own name is locked for a symlink to the file and for a symlinked folder."""
    (tmp_path / "real").mkdir()
    journal = await Journal.open(tmp_path / "real" / "journal.sqlite")
    (tmp_path / "file-link.sqlite").symlink_to(tmp_path / "real" / "journal.sqlite")
    (tmp_path / "folder-link").symlink_to(tmp_path / "real")
    try:
        for alias in (tmp_path / "file-link.sqlite", tmp_path / "folder-link" / "journal.sqlite"):
            with pytest.raises(JournalError, match="in use by another run"):
                await Journal.open(alias)
    finally:
        await journal.aclose()
    again = await Journal.open(tmp_path / "file-link.sqlite")  # released: the alias itself is usable
    assert again.path == (tmp_path / "real" / "journal.sqlite").resolve()
    await again.aclose()


async def test_a_hard_linked_journal_is_refused(tmp_path: Path) -> None:
    """A journal file with several hard links is refused under every name, with a clear reason."""
    journal = await Journal.open(tmp_path / "journal.sqlite")
    await journal.aclose()
    os.link(tmp_path / "journal.sqlite", tmp_path / "other.sqlite")
    for name in ("journal.sqlite", "other.sqlite"):
        with pytest.raises(JournalError, match="2 hard links"):
            await Journal.open(tmp_path / name)


async def test_two_cli_runs_through_a_symlink_and_a_hard_link_cannot_share_a_journal(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """While one batch runs, batches naming its journal through a symlink or a hard link send nothing."""
    sim.default_plan = JobPlan(duration=30.0)
    source = prompts_file(tmp_path, ["a cat", "a dog"])
    first = await cli(*batch_args(server, source.name))
    await first.until(lambda: sim.records.jobs_created == 2, "two jobs created")
    (tmp_path / "via-symlink").symlink_to(tmp_path / "out")
    code, second = await run(
        cli, *batch_args(server, source.name, "--journal", "via-symlink/journal.sqlite", out="second")
    )
    assert code == 1, second.stderr
    assert "in use by another run" in second.stderr
    os.link(tmp_path / "out" / "journal.sqlite", tmp_path / "hard.sqlite")
    code, third = await run(cli, *batch_args(server, source.name, "--journal", "hard.sqlite", out="third"))
    assert code == 1, third.stderr
    assert "hard links" in third.stderr
    assert sim.records.submit_count == 2
    first.process.send_signal(signal.SIGINT)
    assert await first.finish() == 130
