"""The command line's grammar (argparse): commands, their options, and the options every command takes."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any, NoReturn

from fastrouter_async import __version__

from ._json import emit, error_object

__all__ = ["build_parser"]

PROG = "fastrouter-video"

_DESCRIPTION = """\
Generate videos with FastRouter from the command line: one at a time, or a whole file of
prompts that survives crashes and resumes where it stopped.

The API key is read from the FASTROUTER_API_KEY environment variable (never from the command
line, where other users could see it). Add --simulate to any command to run against a local
simulator instead: no key, no cost.
"""

_EPILOG = """\
exit codes: 0 success; 1 a job failed, is uncertain, still running or not sent, or the API
refused (a batch stopped by a 401/402/403 account error exits 1 after one message naming it);
2 bad usage, a bad batch file, a bad -o path or a missing key (nothing was sent); 130 stopped
by Ctrl-C (143 by SIGTERM). With --json (generate, status, download, jobs) the output is one JSON
object per line on stdout, errors included. Run 'fastrouter-video COMMAND --help' for a command's options.
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number >= 0")
    return value


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number > 0")
    return value


def _amount(text: str) -> float:
    try:
        value = float(text.removeprefix("$"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in US dollars") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text!r}: must be an amount in US dollars >= 0")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, whose usage errors are a JSON ``error`` object on stdout when ``--json`` was given."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        if not self.json_errors:
            super().error(message)
        emit("error", **error_object("UsageError", f"{self.prog}: {message}", exit_code=2))
        sys.exit(2)


def _add_json(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help=f"machine-readable output: {what} as one JSON object per line on stdout (see docs/cli.md)",
    )


def _add_common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every command takes, before or after the command name.

    On the sub-commands their defaults are suppressed, so that an option given before the
    command name is not overwritten by the sub-command's default.
    """

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("common options")
    group.add_argument(
        "--simulate",
        action="store_true",
        default=default(False),
        help="run against a simulator started inside this command (no key needed, nothing billed)",
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        default=default(None),
        help="FastRouter API base URL (default: FASTROUTER_BASE_URL, else https://go.fastrouter.ai/api/v1)",
    )
    group.add_argument(
        "--poll-interval",
        metavar="SECONDS",
        type=_seconds,
        default=default(None),
        help="advanced: poll every SECONDS instead of the default learned schedule (first poll after 1 s; "
        "sparse until the earliest 3%% of the model's jobs usually finish, every 4.5 s around the expected "
        "end, spaced out again past the 99th percentile; never more than 30 s apart)",
    )
    group.add_argument(
        "--simulate-time-scale",
        metavar="FACTOR",
        type=_seconds,
        default=default(1.0),
        help="advanced: multiply the simulated jobs' durations (2-6 s) by FACTOR; 0 ends them at the first poll",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="log to stderr: -v what happens, -vv everything (the key is never logged)",
    )


def _add_request_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("request")
    group.add_argument("--model", required=True, help="model id, e.g. google/veo3 (see the models command)")
    group.add_argument("--image", metavar="URL", help="first frame: an http(s) URL of a JPG or PNG image")
    group.add_argument("--length", metavar="N", type=_int, help="duration in seconds (most models)")
    group.add_argument("--seconds", metavar="N", type=_int, help="duration in seconds (Sora models)")
    group.add_argument("--resolution", metavar="R", help="e.g. 720p, 1080p")
    group.add_argument("--aspect-ratio", metavar="A", help="e.g. 16:9, 9:16, 1:1")
    group.add_argument("--size", metavar="S", help="Sora models: e.g. 1280x720")
    group.add_argument("--mode", metavar="M", help="e.g. std, pro (Kling models)")
    group.add_argument("--seed", metavar="N", type=_int, help="a whole number from -2147483647 to 2147483647")
    group.add_argument(
        "--audio",
        dest="generate_audio",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="generate audio (--audio) or not (--no-audio); models that can",
    )
    group.add_argument(
        "--param",
        metavar="KEY=VALUE",
        action="append",
        help="a further API parameter, sent unchanged; VALUE is decoded if it is JSON (7, true, [1,2]), "
        "else sent as text. Repeatable.",
    )


def _add_replay_options(batch: argparse.ArgumentParser) -> None:
    batch.add_argument(
        "--replay-window",
        metavar="SECONDS",
        type=_positive_number,
        help="send again, with the same cache key, a submit whose outcome is unknown while its first attempt "
        "is younger than this (default 1200, at most 1800)",
    )
    batch.add_argument(
        "--no-replay",
        action="store_true",
        help="send no cache key and never send a submit again by itself (jobs whose submit outcome is unknown "
        "stay uncertain)",
    )


def _add_record_options(batch: argparse.ArgumentParser) -> None:
    batch.add_argument("--journal", metavar="PATH", help="the journal file (default DIR/journal.sqlite)")
    _add_store(
        batch,
        "run the batch together with every other process given the same FILE, --out DIR and --store: "
        "sqlite:///abs/path (one host) or redis://host:port/db (hosts sharing DIR); each line is sent once, each "
        "video downloaded once, and the store replaces the journal (see docs/cli.md)",
    )


def _add_store(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--store", metavar="URL", help=what)


def _add_spend_options(batch: argparse.ArgumentParser) -> None:
    batch.add_argument(
        "--dry-run",
        action="store_true",
        help="check every line and print what the batch would cost, per model and in total; send nothing",
    )
    batch.add_argument(
        "--max-spend",
        metavar="USD",
        type=_amount,
        help="never let the batch's jobs cost more than USD (earlier runs into DIR count): a job that would go "
        "over is not sent, and the rest stay not sent (run again with a higher cap to continue)",
    )
    batch.add_argument(
        "--unknown-price",
        metavar="USD",
        type=_amount,
        help="under --max-spend, reserve USD for a job whose price is unknown (default: such jobs are not sent)",
    )


def build_parser(*, json_errors: bool = False) -> argparse.ArgumentParser:
    """The whole command line (with ``json_errors``, usage errors are printed as a JSON ``error`` object)."""
    parser = _Parser(
        prog=PROG,
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.json_errors = json_errors
    _add_common(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=help_text, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        assert isinstance(sub, _Parser)
        sub.json_errors = json_errors
        _add_common(sub, suppress=True)
        return sub

    generate = command("generate", "generate one video", "Generate one video, show its progress, download it.")
    generate.add_argument("prompt", metavar="PROMPT", help="what the video should show")
    generate.add_argument("-o", "--output", metavar="FILE", required=True, help="where to write the video (.mp4)")
    generate.add_argument("--overwrite", action="store_true", help="replace FILE if it exists (default: refuse)")
    _add_request_options(generate)
    _add_json(generate, "submitted, each status change, download progress, the file and the result")

    batch = command(
        "batch",
        "generate a video for every line of a file, resumably",
        "Generate a video for every request in FILE (.txt, .jsonl or .csv) into DIR.\n\n"
        "The whole file is checked before anything is sent. Progress is journaled in DIR/journal.sqlite:\n"
        "run the same command again after a crash or Ctrl-C and it resumes (finished jobs are skipped,\n"
        "submitted ones are picked up by task id, and nothing is paid for twice).",
    )
    batch.add_argument("file", metavar="FILE", help="the requests: .txt, .jsonl or .csv (see docs/cli.md)")
    batch.add_argument("--model", help="the model of every line that names none (required for .txt)")
    batch.add_argument("--out", metavar="DIR", required=True, help="folder for the videos and manifest.jsonl")
    batch.add_argument(
        "--concurrency", metavar="N", type=_positive_int, help="at most N jobs in flight at once (default 8)"
    )
    batch.add_argument(
        "--rps", metavar="R", type=_positive_number, help="at most R API requests per second, submits and polls"
    )
    _add_record_options(batch)
    batch.add_argument(
        "--resubmit-uncertain",
        action="store_true",
        help="submit again the jobs whose earlier submit may or may not have reached FastRouter, past the replay "
        "window (sent with their cache key: found again unbilled if FastRouter still matches it, else may pay twice)",
    )
    batch.add_argument(
        "--retry-failed", action="store_true", help="submit again the jobs that failed in an earlier run"
    )
    _add_spend_options(batch)
    _add_replay_options(batch)

    jobs = command(
        "jobs",
        "list the jobs of a batch journal and their states",
        "List every job the journal of a batch knows (also jobs not in the current batch file): index,\n"
        "task id, model, state, file and cost. Reads the journal read-only and takes no lock, so it works\n"
        "while the batch runs. Never prints the key.",
    )
    jobs.add_argument("dir", metavar="DIR", nargs="?", help="the batch's --out folder (or a journal file)")
    _add_store(
        jobs,
        "list the jobs of a shared store instead (every job of the account recorded there: model, task id, "
        "state, submit time, file)",
    )
    jobs.add_argument("--journal", metavar="PATH", help="the journal file, if not DIR/journal.sqlite")
    jobs.add_argument(
        "--download-commands",
        action="store_true",
        help="print one 'download' command per submitted job whose video is not on disk, instead of the table",
    )
    _add_json(jobs, "one object per job, then a summary")

    status = command("status", "ask once how a task is doing", "Ask once how a task is doing (one request).")
    status.add_argument("task_id", metavar="TASK_ID")
    status.add_argument("--model", required=True, help="the model the task was submitted with")
    _add_json(status, "the task's status")

    download = command(
        "download", "wait for a task and download its video", "Wait for a task to end, then download its video."
    )
    download.add_argument("task_id", metavar="TASK_ID")
    download.add_argument("--model", required=True, help="the model the task was submitted with")
    download.add_argument("-o", "--output", metavar="FILE", required=True, help="where to write the video (.mp4)")
    download.add_argument("--overwrite", action="store_true", help="replace FILE if it exists (default: refuse)")
    _add_json(download, "each status change, download progress, the file and the result")

    models = command(
        "models", "list the known models and their parameters", "List the known models and the parameters each accepts."
    )
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.add_argument(
        "--refresh", action="store_true", help="first fetch FastRouter's public model list into the local cache"
    )

    simulator = command(
        "simulator",
        "serve the simulator for other programs",
        "Serve a simulated FastRouter (the one behind --simulate) until Ctrl-C or SIGTERM.",
    )
    simulator.add_argument("--port", type=int, default=0, help="port to listen on (default 0: a free port)")
    simulator.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    return parser
