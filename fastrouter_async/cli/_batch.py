"""``batch FILE --out DIR``: a video for every request of a file, journaled, resumable, with a live display."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Final

import anyio
import attrs

from fastrouter_async import (
    DEFAULT_REPLAY_POLICY,
    BatchJournal,
    BatchOutcome,
    BatchRun,
    FastRouterError,
    FastRouterSession,
    InvalidRequestError,
    JournalError,
    OutcomeStatus,
    RequestBudget,
)

from ._batch_file import BatchFile, BatchFileError, load_batch_file
from ._costs import COSTS_NAME, dry_run, load_costs, save_costs
from ._display import BatchDisplay, LiveBatchDisplay, PlainBatchDisplay
from ._manifest import MANIFEST_NAME, manifest_rows, write_atomically, write_manifest
from ._options import PROG
from ._runtime import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    StopSignals,
    open_session,
    say,
    stdout_is_terminal,
)
from ._summary import Kind, classify, describe_stop, print_others, print_summary

__all__ = ["COSTS_NAME", "DURATIONS_NAME", "JOURNAL_NAME", "run_batch"]

JOURNAL_NAME: Final = "journal.sqlite"
DURATIONS_NAME: Final = "durations.json"
# What the session learned about how long jobs take, kept beside the journal so that the next
# batch into the same folder polls warm from its first job (not written under --simulate, whose
# jobs take seconds and would teach nothing true about real ones).
DISPLAY_EVERY: Final = 0.25
# Seconds between two redraws of the progress display (it only reads counters).
MANIFEST_EVERY: Final = 1.0
# At most one manifest rewrite per second while outcomes arrive (and always one at the end):
# a batch of thousands must not spend its time rewriting its report.


class _Run:
    """The state of one ``batch`` command: the requests, what became of them, and where it all goes."""

    def __init__(self, options: argparse.Namespace, batch_file: BatchFile) -> None:
        self.options = options
        self.source = Path(options.file)
        self.folder = Path(options.out)
        self.store: str | None = options.store
        self.store_shown = ""  # the store as the session shows it (no password), once the session is open
        # With --store the store is the record and every process writes a manifest of its own.
        self.journal = None if self.store else Path(options.journal) if options.journal else self.folder / JOURNAL_NAME
        self.manifest = self.folder / (MANIFEST_NAME if self.store is None else shared_manifest_name())
        self.durations = None if options.simulate else self.folder / DURATIONS_NAME
        self.costs = None if options.simulate else self.folder / COSTS_NAME
        self.requests = [entry.request for entry in batch_file.entries]
        self.lines = [entry.line for entry in batch_file.entries]
        self.outcomes: dict[int, BatchOutcome] = {}
        self.estimates: list[float | None] | None = None  # each request's estimate before sending
        self.journal_view: BatchJournal | None = None
        self.stop_noted = False
        self._manifest_written_at: float | None = None
        self._manifest_lock = anyio.Lock()  # written from the outcome loop and the progress loop

    async def load_durations(self, session: FastRouterSession) -> None:
        """Start warm: durations learned by earlier batches into this folder (a bad file is only reported)."""
        if self.durations is None or not self.durations.exists():
            return
        try:
            text = await anyio.Path(self.durations).read_text(encoding="utf-8")
            session.import_durations(json.loads(text))
        except (OSError, ValueError, FastRouterError) as exc:
            say(
                f"{PROG}: note: ignoring {self.durations} ({exc}); polling starts from the built-in priors",
                file=sys.stderr,
            )

    async def load_learned(self, session: FastRouterSession) -> None:
        """What earlier batches into this folder learned: durations, and costs (then each request's estimate)."""
        self.store_shown = session.store or ""
        await self.load_durations(session)
        await load_costs(session, self.costs)
        self.estimates = [each.usd for each in session.estimate(self.requests).requests]

    async def save_durations(self, session: FastRouterSession) -> None:
        if self.durations is None:
            return
        text = json.dumps(session.export_durations(), indent=2, sort_keys=True) + "\n"
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(write_atomically, self.durations, [text])

    async def read_journal(self, batch: BatchRun) -> BatchJournal | None:
        # Not created yet (nothing submitted), or unreadable: the outcomes alone make the manifest.
        with contextlib.suppress(JournalError):
            self.journal_view = await batch.read_journal()
        return self.journal_view

    async def save_manifest(self, batch: BatchRun, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and self._manifest_written_at is not None and now - self._manifest_written_at < MANIFEST_EVERY:
            return
        self._manifest_written_at = now
        # Built from the journal's rows too, so that a job submitted but not ended (Ctrl-C, a crash)
        # shows its task id, and jobs of the journal that are not in the file are kept.
        with anyio.CancelScope(shield=True):  # a half-done rename is worse than a late stop
            async with self._manifest_lock:
                journal = await self.read_journal(batch)
                rows = manifest_rows(
                    self.requests, self.lines, self.outcomes, self.folder, journal, estimates=self.estimates
                )
                if self.store is not None:
                    for row in rows:
                        outcome = self.outcomes.get(row["index"])
                        submitted = outcome is not None and outcome.task_id is not None
                        downloaded = outcome is not None and outcome.file is not None
                        row["submitted_by"] = _by(submitted, outcome is not None and outcome.submitted_elsewhere)
                        row["downloaded_by"] = _by(downloaded, outcome is not None and outcome.downloaded_elsewhere)
                await anyio.to_thread.run_sync(write_manifest, self.manifest, rows)

    def kinds(self) -> Counter[Kind]:
        records = self.journal_view.jobs if self.journal_view is not None else {}
        return Counter(classify(self.outcomes.get(i), records.get(i)) for i in range(len(self.requests)))

    def show(self, display: BatchDisplay, outcome: BatchOutcome, batch: BatchRun) -> None:
        """One event per outcome, except the jobs an account error kept from being sent: one note for all."""
        if outcome.status is OutcomeStatus.NOT_SENT and batch.stopped_by is not None:
            if not self.stop_noted:
                self.stop_noted = True
                display.note(f"{describe_stop(batch.stopped_by)}; following the jobs already submitted")
            return
        display.outcome(outcome, self.lines[outcome.index])


def shared_manifest_name() -> str:
    """The manifest of one process of a batch shared through --store: its host and process id in the name."""
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname()) or "host"
    return f"manifest.{host}.{os.getpid()}.jsonl"


def _by(done: bool, elsewhere: bool) -> str | None:
    """Who did a step of a line, in a manifest of a shared batch: this process, another one, or nobody (yet)."""
    if not done:
        return None
    return "another process" if elsewhere else "this process"


def _session_options(options: argparse.Namespace) -> dict[str, Any]:
    chosen: dict[str, Any] = {}
    if options.store:
        if options.journal:
            raise CommandError("--journal and --store do not go together: with --store the store is the record")
        chosen["store"] = options.store
    if options.concurrency is not None:
        chosen["max_concurrent_jobs"] = options.concurrency
    if options.rps is not None:
        chosen["request_budget"] = RequestBudget.per_second(options.rps)
    if options.unknown_price is not None:
        chosen["unknown_price_usd"] = options.unknown_price
    if options.replay_window is not None or options.no_replay:
        window = DEFAULT_REPLAY_POLICY.window if options.replay_window is None else options.replay_window
        try:
            chosen["replay_policy"] = attrs.evolve(DEFAULT_REPLAY_POLICY, window=window, enabled=not options.no_replay)
        except InvalidRequestError as exc:
            raise CommandError(f"--replay-window {options.replay_window:g}: {exc.allowed}") from None
    return chosen


def _display_for(run: _Run) -> BatchDisplay:
    if stdout_is_terminal():
        return LiveBatchDisplay(len(run.requests), source=run.source, folder=run.folder)
    return PlainBatchDisplay(len(run.requests))


async def _show_progress(run: _Run, display: BatchDisplay, batch: BatchRun, session: FastRouterSession) -> None:
    while True:
        display.progress(batch.progress, session.rate_limited)
        # Also while no job ends: after a crash (kill -9) the manifest still names every submitted job.
        await run.save_manifest(batch)
        await anyio.sleep(DISPLAY_EVERY)


async def run_batch(options: argparse.Namespace) -> int:
    """Check the file, run the batch, write the manifest, print the summary; the exit code says how it went."""
    try:
        batch_file = load_batch_file(Path(options.file), default_model=options.model)
    except BatchFileError as exc:
        say(exc.report(), file=sys.stderr)
        say(f"{PROG}: nothing was submitted; fix the file and run the command again", file=sys.stderr)
        return EXIT_USAGE
    run = _Run(options, batch_file)
    if options.dry_run:
        return await dry_run(options, run.requests, run.costs if run.folder.exists() else None)
    if not options.verbose:
        # The display reports every failure and uncertain job; the library's warnings would repeat them.
        logging.getLogger("fastrouter_async").setLevel(logging.ERROR)
    if batch_file.extra_fields:
        names = ", ".join(sorted(batch_file.extra_fields))
        say(f"{PROG}: note: not known fields, sent unchanged and not checked: {names}", file=sys.stderr)
    try:
        run.folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"cannot create the output folder {run.folder}: {exc.strerror or exc}") from None
    display = _display_for(run)
    failure: FastRouterError | None = None
    stop = StopSignals(on_first=lambda signum: display.note(_stopping_note(signum)))
    with stop.installed():
        async with open_session(options, **_session_options(options)) as session:
            await run.load_learned(session)
            batch = session.generate_many(
                run.requests,
                output_dir=run.folder,
                journal=run.journal,  # None with --store: the store is the record
                resubmit_uncertain=options.resubmit_uncertain,
                retry_failed=options.retry_failed,
                max_spend_usd=options.max_spend,
            )
            try:
                with display, anyio.CancelScope() as scope, stop.cancels(scope):
                    async with batch, anyio.create_task_group() as tg:
                        tg.start_soon(_show_progress, run, display, batch, session)
                        try:
                            async for outcome in batch:
                                run.outcomes[outcome.index] = outcome
                                run.show(display, outcome, batch)
                                await run.save_manifest(batch)
                        except FastRouterError as exc:
                            failure = exc  # raised below: a task group would wrap it in an ExceptionGroup
                        tg.cancel_scope.cancel()
                    display.progress(batch.progress, session.rate_limited)
            except FastRouterError as exc:  # the batch could not start, e.g. its journal is in use by another run
                failure = exc
            finally:
                if failure is None or run.outcomes:  # a batch that never started (journal locked...) has nothing to add
                    await run.save_manifest(batch, force=True)
                    await run.save_durations(session)
                    with anyio.CancelScope(shield=True):
                        await save_costs(session, run.costs)
    if failure is not None:
        raise failure
    _summary(run, batch, interrupted_by=stop.signum)
    if stop.signum is not None:
        return stop.exit_code
    everything_ok = len(run.outcomes) == len(run.requests) and all(o.ok for o in run.outcomes.values())
    return EXIT_OK if everything_ok else EXIT_FAILED


def _signal_name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def _stopping_note(signum: int) -> str:
    what = _signal_name(signum)
    return f"{what}: stopping; submits already on their way are being recorded (press Ctrl-C again to quit at once)"


def _summary(run: _Run, batch: BatchRun, *, interrupted_by: int | None) -> None:
    total = len(run.requests)
    kinds = run.kinds()
    earlier = sum(o.from_journal for o in run.outcomes.values())
    resumed = sum(o.resumed for o in run.outcomes.values())
    found_again = sum(o.found_again is True for o in run.outcomes.values())
    # One cost per job, from its finished result: a job found again by a replay is the same job (its
    # cost is counted once, here), and submit estimates are never added.
    costs = [o.cost_usd for o in run.outcomes.values() if o.cost_usd is not None]
    unknown_cost = any(o.final_cost.kind == "unknown" for o in run.outcomes.values())
    estimated = [e for e in run.estimates or () if e is not None]
    unknown_estimates = sum(e is None for e in run.estimates or ())
    say()
    parts = [f"{kinds[Kind.SUCCEEDED]} succeeded", f"{kinds[Kind.FAILED]} failed", f"{kinds[Kind.UNCERTAIN]} uncertain"]
    parts += [f"{kinds[kind]} {kind.value}" for kind in (Kind.RUNNING, Kind.NOT_SENT) if kinds[kind]]
    history = []
    if earlier:
        history.append(f"{earlier} finished in an earlier run")
    if resumed:
        history.append(f"{resumed} re-attached")
    if found_again:
        history.append(f"{found_again} found again by replay (not billed twice)")
    if run.store is not None:
        outcomes = run.outcomes.values()
        submitted_here = sum(o.task_id is not None and not o.submitted_elsewhere for o in outcomes)
        history.append(f"{submitted_here} submitted by this process")
        if elsewhere := sum(o.submitted_elsewhere for o in outcomes):
            history.append(f"{elsewhere} done by another process")
        if fetched := sum(o.downloaded_elsewhere and not o.submitted_elsewhere for o in outcomes):
            history.append(f"{fetched} of this process's videos downloaded by another process")
    say(f"{total} jobs: {', '.join(parts)}" + (f" ({', '.join(history)})" if history else ""))
    whole = " (the whole batch: every process's jobs)" if run.store is not None else ""
    say(f"total cost: ${sum(costs):.2f}" + (" (some costs unknown)" if unknown_cost else "") + whole)
    say(
        f"estimated:  ${sum(estimated):.2f} for the whole file"
        + (f" (+ {unknown_estimates} of unknown price)" if unknown_estimates else "")
        + (f"; cap ${run.options.max_spend:.2f}" if run.options.max_spend is not None else "")
    )
    say(f"videos:     {run.folder}/")
    say(f"manifest:   {run.manifest}")
    if run.journal is not None:
        say(f"journal:    {run.journal}")
    else:
        assert run.store is not None
        say(f"store:      {run.store_shown} (shared with the other processes of this batch)")
    if interrupted_by is not None and run.options.simulate:
        say(f"Stopped by {_signal_name(interrupted_by)}.")
        say(
            "With --simulate the simulator stopped too: the jobs it was running are gone, and a re-run would "
            "report them as failed (add --retry-failed to submit them again). To see a full run, start again "
            "with a new --out folder."
        )
        return
    interrupted = None if interrupted_by is None else _signal_name(interrupted_by)
    print_summary(run.options, kinds, stopped_by=batch.stopped_by, interrupted=interrupted)
    if run.journal_view is not None:
        print_others(run.journal_view, source=run.source, folder=run.folder, options=run.options)
