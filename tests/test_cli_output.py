"""What the command line writes: the manifest, the batch displays, durations and the ETA."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rich.console import Console

from fastrouter_async import (
    BatchOutcome,
    BatchProgress,
    DownloadedFile,
    JobFailedError,
    OutcomeStatus,
    SubmitUncertainError,
    VideoRequest,
)
from fastrouter_async.cli._display import LiveBatchDisplay, PlainBatchDisplay, eta_seconds, format_duration
from fastrouter_async.cli._manifest import manifest_rows, write_manifest
from fastrouter_async.cli._text import markup_safe, plain

CAT = VideoRequest(model="google/veo3", prompt="a cat surfing")
DOG = VideoRequest(model="google/veo3", prompt="a dog skiing")
FOX = VideoRequest(model="google/veo3", prompt="a fox")


def progress(**counts: int) -> BatchProgress:
    fields = dict.fromkeys(
        ("waiting", "submitting", "running", "downloading", "succeeded", "failed", "uncertain", "skipped", "resumed"),
        0,
    )
    fields.update(counts)
    return BatchProgress(total=10, **fields)


def succeeded(tmp_path: Path, *, from_journal: bool = False) -> BatchOutcome:
    file = DownloadedFile(path=tmp_path / "0001-a-cat-surfing.mp4", size=123, sha256="ab" * 32, task_id="fr_1")
    return BatchOutcome(
        index=0, request=CAT, status=OutcomeStatus.SUCCEEDED, task_id="fr_1", file=file, cost_usd=0.21,
        from_journal=from_journal,
    )  # fmt: skip


def failed() -> BatchOutcome:
    error = JobFailedError("fr_2", "google/veo3", "input flagged by content moderation")
    return BatchOutcome(index=1, request=DOG, status=OutcomeStatus.FAILED, task_id="fr_2", error=error)


def uncertain() -> BatchOutcome:
    error = SubmitUncertainError(FOX, "the connection broke after sending")
    return BatchOutcome(index=2, request=FOX, status=OutcomeStatus.UNCERTAIN, error=error)


def test_manifest_rows_one_per_job_in_input_order(tmp_path: Path) -> None:
    """Every request gets a row, in input order; files are named relative to the manifest's folder."""
    outcomes = {2: uncertain(), 0: succeeded(tmp_path), 1: failed()}
    rows = manifest_rows([CAT, DOG, FOX, CAT], [1, 2, 4, 5], outcomes, tmp_path)
    assert rows[0] == {
        "index": 0, "line": 1, "prompt": "a cat surfing", "model": "google/veo3", "task_id": "fr_1",
        "status": "succeeded", "file": "0001-a-cat-surfing.mp4", "bytes": 123, "sha256": "ab" * 32,
        "cost_usd": 0.21, "found_again": None, "cache_key": None, "estimate_credits": None, "estimate_usd": None,
        "error": None, "estimated_usd": None, "cost_kind": "final", "in_batch_file": True,
    }  # fmt: skip
    assert (rows[1]["status"], rows[1]["error"], rows[1]["file"]) == (
        "failed",
        "input flagged by content moderation",
        None,
    )
    assert rows[2]["status"] == "uncertain"
    assert rows[2]["error"].startswith("the submit may or may not have reached FastRouter (the connection broke")
    assert rows[3] == {**dict.fromkeys(rows[3], None), "index": 3, "line": 5, "prompt": "a cat surfing",
                       "model": "google/veo3", "status": "not_sent", "cost_kind": "free",
                       "in_batch_file": True}  # fmt: skip


def test_manifest_is_replaced_atomically(tmp_path: Path) -> None:
    """The manifest is rewritten through a temporary file; a failed write leaves the old one and no leftovers."""
    path = tmp_path / "manifest.jsonl"
    write_manifest(path, [{"index": 0}, {"index": 1, "prompt": "un café"}])
    before = path.read_text(encoding="utf-8")
    assert before == '{"index": 0}\n{"index": 1, "prompt": "un café"}\n'

    with pytest.raises(TypeError):
        write_manifest(path, [{"index": 0}, {"index": object()}])
    assert path.read_text(encoding="utf-8") == before
    assert os.listdir(tmp_path) == ["manifest.jsonl"]


def test_durations_and_eta() -> None:
    """Durations read m:ss or h:mm:ss; the ETA follows this run's pace and is unknown before it has one."""
    assert [format_duration(s) for s in (0, 7.4, 754, 3723)] == ["0:00", "0:07", "12:34", "1:02:03"]
    assert eta_seconds(progress(running=5), 10.0) is None
    assert eta_seconds(progress(succeeded=2, skipped=2), 10.0) is None  # only jobs from an earlier run so far
    assert eta_seconds(progress(succeeded=4, failed=1), 10.0) == 10.0
    assert eta_seconds(progress(succeeded=10), 10.0) == 0.0


def test_plain_display_prints_one_line_per_event(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The plain display prints each outcome on its own line, with what a log reader needs."""
    with PlainBatchDisplay(10) as display:
        display.outcome(succeeded(tmp_path), 1)
        display.outcome(succeeded(tmp_path, from_journal=True), 1)
        display.outcome(failed(), 2)
        display.outcome(uncertain(), 4)
        display.progress(progress(succeeded=1, failed=1, uncertain=1), 0)
        display.note("stopping")
    lines = [line.split("] ", 1)[1] for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == "started  10 jobs"
    assert lines[1].startswith(f"succeeded  #0 line 1  fr_1  {tmp_path / '0001-a-cat-surfing.mp4'}  123 bytes")
    assert lines[1].endswith("$0.21")
    assert lines[2].startswith("skipped    #0 line 1  fr_1")
    assert lines[2].endswith("(finished in an earlier run)")
    assert lines[3] == "failed     #1 line 2  fr_2  input flagged by content moderation"
    assert lines[4].startswith("uncertain  #2 line 4  -  the submit may or may not have reached FastRouter")
    assert lines[5] == "stopping"
    assert lines[6].startswith("progress   3/10 finished: 1 done, 1 failed, 1 uncertain")


def test_live_display_panel(tmp_path: Path) -> None:
    """The live panel shows the counts, the bar, elapsed time and ETA, and what came from an earlier run."""
    display = LiveBatchDisplay(10, source=Path("prompts.jsonl"), folder=Path("videos"))
    display.console = Console(width=120, record=True, force_terminal=False)
    display._progress = progress(waiting=2, running=3, downloading=1, succeeded=3, failed=1, skipped=2, resumed=1)
    display._rate_limited = 2
    display.console.print(display._render())
    text = display.console.export_text()
    assert "fastrouter-video batch prompts.jsonl -> videos/" in text
    assert "4/10   40%" in text
    header, numbers = text.splitlines()[2:4]
    assert header.split() == ["submitted", "running", "downloading", "done", "failed", "uncertain", "waiting"]
    assert numbers.split() == ["8", "3", "1", "3", "1", "0", "2"]
    assert "2 finished in an earlier run, 1 re-attached, rate-limited 2x" in text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        pytest.param("fr_[/red]x", "fr_[/red]x", id="markup-kept-as-text"),
        pytest.param("\x1b]52;c;aGk=\x07", "\\x1b]52;c;aGk=\\x07", id="osc52"),
        pytest.param("\x1b[2J\x1b[31m", "\\x1b[2J\\x1b[31m", id="csi"),
        pytest.param("a\x9bb\x7fc", "a\\x9bb\\x7fc", id="c1-and-del"),
        pytest.param("\u202egnp.exe\u2066", "\\u202egnp.exe\\u2066", id="bidi"),
        pytest.param("line\nnext\tcol", "line\\x0anext\\x09col", id="newline-and-tab"),
        pytest.param("un café 🐱", "un café 🐱", id="printable-unicode-unchanged"),
    ],
)
def test_plain_makes_control_characters_visible(raw: str, shown: str) -> None:
    """plain() shows every control, escape and bidi character as a visible escape and leaves the rest alone."""
    assert plain(raw) == shown


def test_markup_safe_escapes_rich_markup() -> None:
    """markup_safe() text renders literally through rich markup, without MarkupError."""
    console = Console(record=True, width=80)
    console.print(f"task {markup_safe('fr_[/red][bold]x')}")
    assert "task fr_[/red][bold]x" in console.export_text()
