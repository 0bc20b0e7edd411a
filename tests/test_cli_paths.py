"""``generate -o`` and ``download -o``: the path is checked before anything is sent, and a failure once a
paid job exists prints the exact ``download`` command that fetches its video without paying again."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fastrouter_async.testing import FastRouterSimulator, Fault, SimulatorServer, sample_video

from .test_cli import POLL, cli, generate_args, run

__all__ = ["cli"]


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        pytest.param("folder", "is a folder", id="directory"),
        pytest.param("folder/", "is a folder", id="trailing-slash"),
        pytest.param("taken.mp4", "the file exists; add --overwrite", id="existing-file"),
        pytest.param("afile/sub/x.mp4", "afile is not a folder", id="parent-is-a-file"),
    ],
)
async def test_bad_output_path_is_refused_before_the_submit(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path, output: str,
    expected: str,
) -> None:  # fmt: skip
    """generate -o: a folder, an existing file (no --overwrite) or a parent that is a file exit 2, nothing sent."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "taken.mp4").write_bytes(b"precious")
    (tmp_path / "afile").write_bytes(b"")
    code, child = await run(cli, *generate_args(server, "a cat"), "-o", output)
    assert code == 2, child.stderr
    assert expected in child.stderr
    assert sim.records.requests == []
    assert (tmp_path / "taken.mp4").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "folder", "taken.mp4"]


async def test_overwrite_replaces_an_existing_file(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """generate -o FILE --overwrite replaces the file; a missing parent folder is created."""
    (tmp_path / "taken.mp4").write_bytes(b"old")
    code, child = await run(cli, *generate_args(server, "a cat"), "-o", "taken.mp4", "--overwrite")
    assert code == 0, child.stderr
    assert (tmp_path / "taken.mp4").read_bytes() == sample_video()
    code, child = await run(cli, *generate_args(server, "a dog"), "-o", "new/dir/dog.mp4")
    assert code == 0, child.stderr
    assert (tmp_path / "new" / "dir" / "dog.mp4").read_bytes() == sample_video()


async def test_download_checks_its_path_before_polling(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """download -o: a folder or an existing file exits 2 without a single poll."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "taken.mp4").write_bytes(b"precious")
    common = ("--model", "google/veo3", "--base-url", server.base_url, *POLL)
    for output in ("folder", "taken.mp4"):
        code, child = await run(cli, "download", "fr_TASK", *common, "-o", output)
        assert code == 2, child.stderr
    assert sim.records.requests == []


async def test_failure_after_the_submit_prints_the_download_command(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Once a job exists, a failure prints the exact, shell-quoted download command (base URL and -o as given)."""
    sim.inject(Fault.status(401, route="poll", times=None))
    output = "my videos/cat's.mp4"
    code, child = await run(cli, *generate_args(server, "a cat"), "-o", output)
    assert code == 1, child.stderr
    assert sim.records.submit_count == 1
    task_id = next(iter(sim.jobs))
    command = shlex.join(
        ["fastrouter-video", "download", task_id, "--model", "google/veo3", "-o", output, "--base-url", server.base_url]
    )
    assert command in child.stderr
    assert "do not run generate again" in child.stderr
    assert "Traceback" not in child.stderr

    sim.clear_faults()
    code, child = await run(cli, *shlex.split(command)[1:], *POLL)  # the printed command works as printed
    assert code == 0, child.stderr
    assert (tmp_path / output).read_bytes() == sample_video()
    assert sim.records.submit_count == 1


async def test_download_failure_prints_the_command_to_run_again(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """download: a failure prints the same download command (shell-quoted) to run again, and no traceback."""
    sim.inject(Fault.status(401, route="poll", times=None))
    code, child = await run(
        cli, "download", "fr_TASK", "--model", "google/veo3", "--base-url", server.base_url, *POLL, "-o", "a b.mp4"
    )
    assert code == 1, child.stderr
    expected = shlex.join(
        ["fastrouter-video", "download", "fr_TASK", "--model", "google/veo3", "-o", "a b.mp4", "--base-url",
         server.base_url]
    )  # fmt: skip
    assert expected in child.stderr
    assert "nothing is submitted again" in child.stderr
    assert "Traceback" not in child.stderr
