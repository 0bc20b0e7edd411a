"""Run every benchmark, one after the other, each printing its table: what ``make bench`` does.

    .venv/bin/python benchmarks/run_all.py                  # default sizes
    .venv/bin/python benchmarks/run_all.py --tiny --repeat 1
    .venv/bin/python benchmarks/run_all.py --only scale --json results/
    .venv/bin/python benchmarks/run_all.py --list           # what would run, and what is skipped and why

Each benchmark runs in a process of its own (``python benchmarks/NAME.py``),
so none inherits another's memory or event loop. A script may define
``skip_reason() -> str | None`` to say why it cannot run on this machine
(``download`` needs nginx and curl); it is then skipped with that reason.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

BENCHMARKS = (
    "request_cost",  # job.status() calls per second against bare aiohttp and httpx
    "scale",  # 10,000 jobs in flight in one process: memory per job, event-loop lag
    "polling",  # polls per job and detection delay: our polling against fixed 1 s, fixed 5 s and runway's
    "budget",  # jobs kept in flight under 600 requests/minute: our polling against fixed 5 s
    "makespan",  # 1,000 jobs with a cap of 100: wall time against the ideal schedule
    "download",  # VideoResult.download() against curl from a local nginx
    "many_workers",  # 1, 2 and 4 processes on one account: same limits, divided, a shared store
)
# Run in this order. A new benchmark is a script here with main(argv) and the options of
# _harness.base_parser (--repeat, --tiny, --json); add its name to this tuple.

HERE = Path(__file__).resolve().parent


def skip_reason(name: str) -> str | None:
    """Why benchmark ``name`` cannot run here, from its own ``skip_reason()``; ``None`` if it can."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    module = importlib.import_module(name)
    check = getattr(module, "skip_reason", None)
    if check is None:
        return None
    reason = check()
    return None if reason is None else str(reason)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=None, help="passed on to every benchmark (default: theirs)")
    parser.add_argument("--tiny", action="store_true", help="every benchmark at its very small size")
    parser.add_argument("--json", type=Path, default=None, metavar="DIR", help="write DIR/NAME.json for each")
    parser.add_argument("--only", default=None, help="comma-separated benchmark names (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and whether they can run")
    args = parser.parse_args(argv)
    names = list(BENCHMARKS)
    if args.only:
        names = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in names if name not in BENCHMARKS]
        if unknown:
            parser.error(f"unknown benchmarks {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    if args.json is not None:
        args.json.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in names:
        reason = skip_reason(name)
        if args.list:
            print(f"{name}: {'skipped: ' + reason if reason else 'runs'}")
            continue
        if reason is not None:
            print(f"== {name}: skipped: {reason}\n", flush=True)
            continue
        command = [sys.executable, str(HERE / f"{name}.py")]
        if args.repeat is not None:
            command += ["--repeat", str(args.repeat)]
        if args.tiny:
            command.append("--tiny")
        if args.json is not None:
            command += ["--json", str(args.json / f"{name}.json")]
        print(f"== {name}", flush=True)
        started = time.monotonic()
        code = subprocess.run(command, check=False).returncode
        print(f"== {name}: {'done' if code == 0 else f'FAILED (exit {code})'} in {time.monotonic() - started:.0f} s\n")
        if code != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
