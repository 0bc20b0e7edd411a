"""The end of a batch: what became of every job, each kind with its own next step.

Five kinds, because each needs a different action and the wrong one costs money:

- succeeded;
- failed: the job ran and failed; only ``--retry-failed`` submits it again (and pays again);
- uncertain: the submit may have created a job, and its replay window has passed (or it has no cache
  key); only ``--resubmit-uncertain`` sends it again;
- running: the job exists (it has a task id) but this run did not see it end or download it;
  running the same command again follows it and downloads its video, never submitting it again;
- not sent: nothing was created (never sent, or refused); running the same command again submits it.
"""

from __future__ import annotations

import argparse
import enum
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from fastrouter_async import (
    BatchJournal,
    BatchOutcome,
    FastRouterError,
    JobFailedError,
    JournalRecord,
    NotFoundError,
    OutcomeStatus,
    SpendCapError,
    safe_filename,
)

from ._manifest import NOT_SENT, RUNNING, record_status
from ._options import PROG
from ._paths import without_secrets
from ._runtime import say

__all__ = ["Kind", "classify", "describe_stop", "download_command", "needs_download", "print_others", "print_summary"]

MAX_LISTED: Final = 10
# Jobs of other batches listed one by one (with a command each); more are summed up and left to `jobs DIR`.


class Kind(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    RUNNING = "running"
    NOT_SENT = "not sent"


def classify(outcome: BatchOutcome | None, record: JournalRecord | None) -> Kind:
    """Which kind a job of this batch is, from its outcome in this run (if any) and its journal record."""
    if outcome is None:
        status = record_status(record)
        if status == RUNNING:
            return Kind.RUNNING
        if status == NOT_SENT:
            return Kind.NOT_SENT
        return Kind(status)
    if outcome.status is OutcomeStatus.FAILED:
        if outcome.from_journal or isinstance(outcome.error, JobFailedError | NotFoundError):
            return Kind.FAILED  # it ran, and ended for good
        if outcome.task_id is None:
            return Kind.NOT_SENT  # the submit was refused: nothing was created
        return Kind.RUNNING  # polling or the download gave up: the job itself goes on, a re-run picks it up
    if outcome.status is OutcomeStatus.NOT_SENT:
        return Kind.NOT_SENT
    return Kind(outcome.status.value)


def describe_stop(error: FastRouterError) -> str:
    """One clear sentence on the account error (or the spend cap) that stopped the batch's submits."""
    if isinstance(error, SpendCapError):
        return f"stopped submitting: the spend cap was reached (--max-spend). {error}"
    code = getattr(error, "status_code", None)
    cause = {
        401: "FastRouter refused the API key (401): check FASTROUTER_API_KEY",
        402: "FastRouter says the account has no credits left (402): add credits",
        403: "FastRouter refused permission for this request (403): check the key's permissions and the model",
    }.get(code if isinstance(code, int) else 0, f"FastRouter refused the account ({type(error).__name__})")
    return f"stopped submitting: {cause}. Server said: {error}"


def print_summary(
    options: argparse.Namespace,
    counts: Mapping[Kind, int],
    *,
    stopped_by: FastRouterError | None,
    interrupted: str | None,
) -> None:
    """The next step for each kind that is not zero (the totals are printed by the caller)."""
    command = shlex.join([PROG, *options.argv])
    if counts.get(Kind.FAILED):
        say(
            f"{counts[Kind.FAILED]} failed: the jobs ran and failed; the manifest's error field says why. "
            "Running the same command again reports them again; add --retry-failed to submit them again "
            "(each is paid again)."
        )
    if counts.get(Kind.UNCERTAIN):
        say(
            f"{counts[Kind.UNCERTAIN]} uncertain: the submit may have reached FastRouter but its answer was lost, "
            "and it could not be sent again safely by itself (its first attempt is older than the replay window, "
            "or it has no cache key), so it was not (that could pay twice). Check the FastRouter dashboard; to "
            "submit them anyway, run the same command again with --resubmit-uncertain (each is sent with its "
            "cache key, so a job FastRouter still remembers is found again, unbilled)."
        )
    if counts.get(Kind.RUNNING):
        where = "on the simulator, which stopped with this command" if options.simulate else "on FastRouter"
        say(
            f"{counts[Kind.RUNNING]} running: submitted (task ids in the manifest and the journal) and not finished "
            f"here; they keep running {where}. Run the same command again to follow them and download their "
            "videos; they are not submitted again."
        )
    if counts.get(Kind.NOT_SENT):
        fix = " once the account problem is fixed" if stopped_by is not None else ""
        if isinstance(stopped_by, SpendCapError):
            fix = " with a higher --max-spend"
        say(
            f"{counts[Kind.NOT_SENT]} not sent: never created on FastRouter (nothing billed). Run the same "
            f"command again{fix} to submit them."
        )
    if stopped_by is not None:
        say(f"The batch {describe_stop(stopped_by)}")
    if interrupted is not None:
        say(f"Stopped by {interrupted}.")
    if counts.get(Kind.RUNNING) or counts.get(Kind.NOT_SENT) or interrupted is not None:
        say("To resume, run the same command again:")
        say(f"  {command}")


def print_others(journal: BatchJournal, *, source: Path, folder: Path, options: argparse.Namespace) -> None:
    """Name the journal's jobs that are not in this batch file, and how to finish and download them."""
    others = journal.others
    if not others:
        return
    submitted = [record for record in others if record.submitted]
    say()
    say(
        f"{_jobs(len(others))} in the journal {'is' if len(others) == 1 else 'are'} not in {source} "
        f"(a prompt edited after a stop, or another file run into {folder}/); "
        f"{_how_many_submitted(len(others), len(submitted))} (running or paid). "
        "They are kept in the manifest with in_batch_file: false."
    )
    for record in others[:MAX_LISTED]:
        prompt = (record.prompt or "")[:40]
        say(f"  #{record.position}  {record.task_id or '-'}  {record_status(record)}  {record.model}  {prompt!r}")
    if len(others) > MAX_LISTED:
        say(f"  ... and {len(others) - MAX_LISTED} more")
    pending = [record for record in submitted if needs_download(record)]
    if pending:
        say("To finish and download the submitted ones (each command waits for its job; nothing is submitted again):")
        for record in pending[:MAX_LISTED]:
            say(f"  {download_command(record, folder, options)}")
        if len(pending) > MAX_LISTED:
            every = shlex.join([PROG, "jobs", str(folder), "--download-commands", *_base_url(options)])
            say(f"  ... and {len(pending) - MAX_LISTED} more: {every} prints them all")
    say(f"To list every job of the journal: {shlex.join([PROG, 'jobs', str(folder)])}")


def needs_download(record: JournalRecord) -> bool:
    """Submitted, not failed, and its video not recorded as downloaded."""
    return record.submitted and record.state != "failed" and record.file_sha256 is None


def download_command(record: JournalRecord, folder: Path, options: argparse.Namespace) -> str:
    """The ``download`` command that waits for ``record``'s job and writes its video into ``folder``."""
    assert record.task_id is not None
    name = record.file_path or str(folder / safe_filename(record.task_id, lowercase=False))
    return shlex.join([PROG, "download", record.task_id, "--model", record.model, "-o", name, *_base_url(options)])


def _base_url(options: argparse.Namespace) -> Sequence[str]:
    return ["--base-url", without_secrets(options.base_url)] if options.base_url else []


def _jobs(count: int) -> str:
    return f"{count} job" if count == 1 else f"{count} jobs"


def _how_many_submitted(total: int, submitted: int) -> str:
    if total == 1:
        return "it was submitted" if submitted else "it was never submitted"
    return f"{submitted} of them {'was' if submitted == 1 else 'were'} submitted"
