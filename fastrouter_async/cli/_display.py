"""What a batch shows while it runs: a live panel on a terminal, one-line events in a pipe or a log.

Both displays are told the same things: each outcome as it arrives, a progress
snapshot a few times a second, and that the user asked to stop. The live one
redraws a panel (counts, a bar, elapsed time and ETA) and prints failures above
it; the plain one prints one line per event and a progress line now and then,
so that logs and tests can read them.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import Final, Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from fastrouter_async import BatchOutcome, BatchProgress, OutcomeStatus

from ._manifest import error_text
from ._runtime import say
from ._text import plain

__all__ = ["BatchDisplay", "LiveBatchDisplay", "PlainBatchDisplay", "eta_seconds", "format_duration"]

PLAIN_PROGRESS_EVERY: Final = 5.0
# Seconds between two progress lines in plain mode: often enough to follow in a log,
# rare enough that a night-long batch does not bury its events.


def format_duration(seconds: float) -> str:
    """``0:07``, ``12:34``, ``1:02:03``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def eta_seconds(progress: BatchProgress, elapsed: float) -> float | None:
    """Time left at this run's pace (jobs finished by it per second), or ``None`` before it has one."""
    done_here = progress.finished - progress.skipped
    remaining = progress.total - progress.finished
    if remaining <= 0:
        return 0.0
    if done_here <= 0 or elapsed <= 0:
        return None
    return remaining * elapsed / done_here


def _counts(progress: BatchProgress) -> str:
    return (
        f"{progress.succeeded} done, {progress.failed} failed, {progress.uncertain} uncertain, "
        f"{progress.running} running, {progress.downloading} downloading, "
        f"{progress.submitting} submitting, {progress.waiting} waiting"
        + (f", {progress.not_sent} not sent" if progress.not_sent else "")
    )


def spend_text(progress: BatchProgress) -> str:
    """Spent so far, reserved for running jobs, the estimate of the rest, and the cap if there is one."""
    rest = f"${progress.rest_usd:.2f}" + (f" + {progress.rest_unknown} unknown" if progress.rest_unknown else "")
    text = f"spent ${progress.spent_usd:.2f}, reserved ${progress.reserved_usd:.2f}, rest ~{rest}"
    return text + (f" (cap ${progress.max_spend_usd:.2f})" if progress.max_spend_usd is not None else "")


def _submitted(progress: BatchProgress) -> int:
    """Jobs whose submit was answered, in this run or an earlier one."""
    return progress.running + progress.downloading + progress.succeeded + progress.failed


class BatchDisplay(Protocol):
    def __enter__(self) -> BatchDisplay: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def outcome(self, outcome: BatchOutcome, line: int) -> None: ...

    def progress(self, progress: BatchProgress, rate_limited: int) -> None: ...

    def note(self, text: str) -> None: ...


def _event(outcome: BatchOutcome, line: int) -> tuple[str, str]:
    """The event word and the rest of its line."""
    where = f"#{outcome.index} line {line}"
    task = plain(outcome.task_id or "-")
    if outcome.status is OutcomeStatus.SUCCEEDED:
        word = "skipped" if outcome.from_journal else "succeeded"
        file = outcome.file
        detail = f"{plain(file.path)}  {file.size} bytes  sha256 {file.sha256[:12]}" if file is not None else "no file"
        cost = f"  ${outcome.cost_usd:.2f}" if outcome.cost_usd is not None else ""
        tail = " (finished in an earlier run)" if outcome.from_journal else " (re-attached)" if outcome.resumed else ""
        if outcome.submitted_elsewhere:
            tail += " (done by another process)"
        elif outcome.downloaded_elsewhere:
            tail += " (downloaded by another process)"
        return word, f"{where}  {task}  {detail}{cost}{tail}"
    word = outcome.status.value
    tail = (
        " (in an earlier run)"
        if outcome.from_journal
        else " (by another process)"
        if outcome.submitted_elsewhere
        else ""
    )
    return word, f"{where}  {task}  {plain(error_text(outcome.error) or 'no reason given')}{tail}"


class PlainBatchDisplay:
    """One line per event, flushed at once; a progress line every few seconds."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.started = time.monotonic()
        self._last_progress_at = self.started
        self._last_progress: BatchProgress | None = None
        self._last_said: BatchProgress | None = None

    def __enter__(self) -> PlainBatchDisplay:
        say(f"{self._stamp()} started  {self.total} jobs")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._last_progress is not None and self._last_progress != self._last_said:
            self._say_progress(self._last_progress)

    def _stamp(self) -> str:
        return f"[{time.monotonic() - self.started:7.1f}s]"

    def outcome(self, outcome: BatchOutcome, line: int) -> None:
        word, rest = _event(outcome, line)
        say(f"{self._stamp()} {word:<10} {rest}")

    def progress(self, progress: BatchProgress, rate_limited: int) -> None:
        changed = progress != self._last_progress
        self._last_progress = progress
        now = time.monotonic()
        if changed and now - self._last_progress_at >= PLAIN_PROGRESS_EVERY:
            self._last_progress_at = now
            self._say_progress(progress)

    def _say_progress(self, progress: BatchProgress) -> None:
        self._last_said = progress
        eta = eta_seconds(progress, time.monotonic() - self.started)
        eta_text = "unknown" if eta is None else format_duration(eta)
        finished = f"{progress.finished}/{progress.total} finished"
        say(f"{self._stamp()} progress   {finished}: {_counts(progress)}; {spend_text(progress)}; ETA {eta_text}")

    def note(self, text: str) -> None:
        say(f"{self._stamp()} {text}")


_STYLES: Final = {"succeeded": "green", "skipped": "dim", "failed": "bold red", "uncertain": "bold yellow"}


class LiveBatchDisplay:
    """A panel redrawn in place: counts, a progress bar, elapsed time and ETA; events scroll above it."""

    def __init__(self, total: int, *, source: Path, folder: Path) -> None:
        self.total = total
        self.source = source
        self.folder = folder
        self.started = time.monotonic()
        self.console = Console(highlight=False)
        self._live = Live(console=self.console, auto_refresh=False, transient=False)
        self._progress: BatchProgress | None = None
        self._rate_limited = 0
        self._note: str | None = None

    def __enter__(self) -> LiveBatchDisplay:
        self._live.start()
        self._redraw()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._redraw()
        self._live.stop()

    def outcome(self, outcome: BatchOutcome, line: int) -> None:
        if outcome.from_journal and outcome.ok:
            return  # counted in the panel; hundreds of "already done" lines would hide what matters
        word, rest = _event(outcome, line)
        text = Text()
        text.append(f"{word:<10}", style=_STYLES.get(word, ""))
        text.append(f" {rest}")
        self._live.console.print(text)

    def progress(self, progress: BatchProgress, rate_limited: int) -> None:
        self._progress = progress
        self._rate_limited = rate_limited
        self._redraw()

    def note(self, text: str) -> None:
        self._note = text  # shown at the foot of the panel, where the eye is
        self._redraw()

    def _redraw(self) -> None:
        self._live.update(self._render(), refresh=True)

    def _render(self) -> Group:
        elapsed = time.monotonic() - self.started
        progress = self._progress
        title = Text.assemble(("fastrouter-video batch ", "bold"), plain(f"{self.source} -> {self.folder}/"))
        if progress is None:
            return Group(title, Text(f"{self.total} jobs, starting... {format_duration(elapsed)}"))
        bar = ProgressBar(total=max(progress.total, 1), completed=progress.finished, width=50)
        percent = 100 * progress.finished / max(progress.total, 1)
        counts = Table.grid(padding=(0, 2))
        labels = ("submitted", "running", "downloading", "done", "failed", "uncertain", "waiting")
        for _ in labels:
            counts.add_column(justify="right")
        counts.add_row(*(Text(label, style="dim") for label in labels))
        counts.add_row(
            str(_submitted(progress)),
            str(progress.running),
            str(progress.downloading),
            Text(str(progress.succeeded), style="green"),
            Text(str(progress.failed), style="red" if progress.failed else ""),
            Text(str(progress.uncertain), style="yellow" if progress.uncertain else ""),
            str(progress.waiting + progress.submitting),
        )
        eta = eta_seconds(progress, elapsed)
        timing = f"elapsed {format_duration(elapsed)}   ETA {'--:--' if eta is None else format_duration(eta)}"
        extras = []
        if progress.skipped:
            extras.append(f"{progress.skipped} finished in an earlier run")
        if progress.resumed:
            extras.append(f"{progress.resumed} re-attached")
        if progress.not_sent:
            extras.append(f"{progress.not_sent} not sent")
        if self._rate_limited:
            extras.append(f"rate-limited {self._rate_limited}x (the whole batch slowed down)")
        line = Table.grid(padding=(0, 1))
        line.add_row(bar, Text(f"{progress.finished}/{progress.total}  {percent:3.0f}%"))
        parts: list[Text | Table] = [
            title,
            line,
            counts,
            Text(spend_text(progress)),
            Text(timing + ("   " + ", ".join(extras) if extras else "")),
        ]
        if self._note:
            parts.append(Text(plain(self._note), style="bold yellow"))
        return Group(*parts)
