"""Many workers: N processes share one account's limits; throughput, 429s and jobs in flight, by how limits are set.

Run it from the repository root, after ``make test`` (or ``make bench``)::

    .venv/bin/python benchmarks/many_workers.py                    # 200 jobs, 1, 2 and 4 workers, 3 runs
    .venv/bin/python benchmarks/many_workers.py --workers 1,4 --modes same,sqlite --repeat 1

Goal: with a shared store, 4 workers complete at least 0.95 x the jobs per minute
of 1 worker, and the account's cap on jobs at once is never exceeded (no submit
refused with "too many concurrent tasks").

One simulator process (pinned to core 1) plays the account: it answers 429 to
requests beyond ``--rate`` per second (a bucket of one second's worth) and to
submits while ``--cap`` jobs are in flight (``--account-rate-limit`` and
``--account-max-jobs``), and runs each job for ``--duration`` seconds. ``N``
worker processes (pinned to core 0) each open a ``FastRouterSession`` and
``generate()`` their share of ``--jobs`` jobs at once (what a batch does), all
starting at the same moment. They poll every fifth of the duration (about six
requests per job), so that ``--cap`` jobs at once need a little more than
``--rate`` requests per second at the default sizes: both limits bind. The
modes differ only in the session's options:

- **same limits**: every worker ``max_concurrent_jobs=cap, request_budget=rate``,
  what a program started N times does today;
- **divided**: ``cap / N`` and ``rate / N`` each, limits split by hand;
- **shared store (sqlite)** and **(redis)**: every worker ``store=URL,
  max_concurrent_jobs=cap, request_budget=rate``: one cap, one bucket and one
  pause for the account, in a SQLite file in a temporary folder, or in a
  ``redis-server`` started on a free loopback port (with ``appendonly yes`` and
  ``appendfsync always``, the settings docs/many-workers.md asks for). They are
  skipped, saying why, where ``FastRouterSession`` has no ``store=`` or no
  redis-server is installed.

Figures per mode and ``N``: jobs per minute (jobs completed / the time from the
common start to the last worker's end) and its ratio to ``N = 1`` in the same mode;
429s the simulator sent (request rate / jobs at once); the most jobs it saw in
flight (it refuses more than ``--cap``, so the 429s show how hard the workers
pushed past it); polls per job; the workers' CPU time per API request, and for
the shared modes the difference from ``same limits`` at ``N = 1``: the store's
cost per request. Each run uses a fresh simulator and a fresh account (API key),
so nothing carries over.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from _harness import (
    base_parser,
    fetch_json,
    machine_line,
    median,
    pin_client,
    print_table,
    simulator_process,
    write_json,
)

from fastrouter_async import FastRouterSession, PollPolicy

MODEL = "google/veo3-fast"
GOAL = 0.95  # shared store: jobs per minute at the most workers, relative to one worker
MODES = {
    "same": "same limits",
    "divided": "divided",
    "sqlite": "shared store (sqlite)",
    "redis": "shared store (redis)",
}
STORE_MISSING = "store= not available in this version"
REDIS_MISSING = "redis-server is not installed (apt-get install redis-server)"
WORKER_TIMEOUT = 900.0  # seconds a run's workers may take
TITLE = "many workers: N processes on one account"
COLUMNS = (
    "mode",
    "workers",
    "jobs",
    "failed",
    "wall s",
    "jobs/min",
    "vs N=1",
    "429 rate",
    "429 jobs",
    "max in flight",
    "polls/job",
    "CPU us/request",
    "store us/request",
    "redis CPU us/request",
)


POLLS_PER_DURATION = 5  # a poll every fifth of a job's duration: about 5 polls, 6 requests per job


def poll_policy(duration: float) -> PollPolicy:
    """A poll every fifth of the jobs' duration, with a little jitter: both account limits bind (see the notes)."""
    gap = duration / POLLS_PER_DURATION
    return PollPolicy.fixed(gap, jitter=0.05)


def store_supported() -> bool:
    """Whether this version's ``FastRouterSession`` takes ``store=``."""
    return "store" in inspect.signature(FastRouterSession).parameters


def skip_reason() -> str | None:
    return None  # the modes without a store run everywhere; the others say why they are skipped


# -- one worker process ---------------------------------------------------------------------------


async def worker(options: dict[str, Any]) -> dict[str, Any]:
    """Generate this worker's share of jobs at once, after the parent says go; what happened, as a dict."""
    logging.getLogger("fastrouter_async").addHandler(logging.NullHandler())  # its 429 warnings: counted, not printed
    extra: dict[str, Any] = {"store": options["store"]} if options["store"] else {}
    session = FastRouterSession(
        options["api_key"],
        base_url=options["base_url"],
        max_concurrent_jobs=options["cap"],
        request_budget=options["rate"],
        poll_policy=poll_policy(options["duration"]),
        **extra,
    )
    async with session:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # the parent's "go"
        started, cpu = time.time(), time.process_time()
        prompts = [f"worker {options['index']} job {i}" for i in range(options["share"])]
        outcomes = await asyncio.gather(
            *(session.generate(model=MODEL, prompt=prompt) for prompt in prompts), return_exceptions=True
        )
        ended, cpu = time.time(), time.process_time() - cpu
        errors = [f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)]
        return {
            "started": started,
            "ended": ended,
            "cpu": cpu,
            "done": len(outcomes) - len(errors),
            "failed": len(errors),
            "errors": sorted(set(errors))[:3],
            "rate_limited": session.rate_limited,
            "concurrency_limited": session.concurrency_limited,
        }


# -- one run: a simulator, N workers ----------------------------------------------------------------


def limits_for(mode: str, workers: int, cap: int, rate: float) -> tuple[int, float]:
    """Each worker's ``max_concurrent_jobs`` and ``request_budget`` in ``mode``."""
    if mode == "divided":
        return max(1, cap // workers), rate / workers
    return cap, rate


def run_once(args: argparse.Namespace, mode: str, workers: int, store: str | None, run: int) -> dict[str, Any]:
    """One run of ``workers`` processes in ``mode`` against a fresh simulator; the figures of the run."""
    cap, rate = limits_for(mode, workers, args.cap, args.rate)
    simulator_args = ["--duration", str(args.duration), "--account-rate-limit", str(args.rate)]
    simulator_args += ["--account-max-jobs", str(args.cap)]
    shares = [args.jobs // workers + (i < args.jobs % workers) for i in range(workers)]
    server_cpu = cpu_seconds(_redis_pids.get(store or "", 0))
    with simulator_process(*simulator_args) as base_url:
        common = {"base_url": base_url, "cap": cap, "rate": rate, "duration": args.duration, "store": store}
        common["api_key"] = f"sk-bench-{mode}-{workers}-{run}-{os.getpid()}"  # a fresh account each run
        processes = [spawn({**common, "index": i, "share": share}) for i, share in enumerate(shares)]
        try:
            for process in processes:
                assert process.stdout is not None
                if process.stdout.readline().strip() != "ready":
                    raise RuntimeError(f"a {mode} worker did not start: {process.communicate()[1]}")
            for process in processes:
                assert process.stdin is not None
                process.stdin.write("go\n")
                process.stdin.flush()
            results = [finish(process, mode) for process in processes]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        stats = fetch_json(base_url, "/_simulator/stats")
    server_cpu = cpu_seconds(_redis_pids.get(store or "", 0)) - server_cpu
    wall = max(r["ended"] for r in results) - min(r["started"] for r in results)
    done = sum(r["done"] for r in results)
    requests = stats["submits"] + stats["polls"]
    return {
        "mode": mode,
        "workers": workers,
        "jobs": args.jobs,
        "done": done,
        "failed": sum(r["failed"] for r in results),
        "errors": sorted({e for r in results for e in r["errors"]})[:3],
        "wall": wall,
        "jobs_per_minute": done / wall * 60 if wall > 0 else 0.0,
        "rate_429": stats["rate_limited"],
        "concurrency_429": stats["concurrency_limited"],
        "sessions_rate_limited": sum(r["rate_limited"] for r in results),
        "sessions_concurrency_limited": sum(r["concurrency_limited"] for r in results),
        "max_in_flight": stats["max_in_flight"],
        "polls_per_job": stats["polls"] / max(1, stats["jobs_created"]),
        "cpu_us_per_request": sum(r["cpu"] for r in results) / max(1, requests) * 1e6,
        "redis_us_per_request": server_cpu / max(1, requests) * 1e6,  # NaN without a redis store
        "requests": requests,
    }


def spawn(options: dict[str, Any]) -> subprocess.Popen[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(options)]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str], mode: str) -> dict[str, Any]:
    out, err = process.communicate(timeout=WORKER_TIMEOUT)
    if process.returncode != 0:
        raise RuntimeError(f"a {mode} worker failed ({process.returncode}): {err.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# -- the stores -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """``redis-server`` on a free loopback port, its files in ``folder``, every write synced; yields its URL."""
    binary = shutil.which("redis-server")
    assert binary is not None
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", ""]
    command += ["--appendonly", "yes", "--appendfsync", "always", "--logfile", str(folder / "redis.log")]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not _pings(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        url = f"redis://127.0.0.1:{port}/0"
        _redis_pids[url] = process.pid
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_redis_pids: dict[str, int] = {}  # URL -> the redis-server's process id


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) process ``pid`` has used so far; NaN if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def mode_skip_reason(mode: str) -> str | None:
    if mode in ("sqlite", "redis") and not store_supported():
        return STORE_MISSING
    if mode == "redis" and shutil.which("redis-server") is None:
        return REDIS_MISSING
    return None


# -- the table ------------------------------------------------------------------------------------


def summarize(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per mode and number of workers: medians over the runs, ratios to N = 1 of the mode."""
    rows: list[dict[str, Any]] = []
    for mode in MODES:
        for workers in sorted({run["workers"] for run in runs if run["mode"] == mode}):
            mine = [run for run in runs if run["mode"] == mode and run["workers"] == workers]
            row = {"mode": mode, "workers": workers, "runs": len(mine), "jobs": mine[0]["jobs"]}
            for key in ("wall", "jobs_per_minute", "polls_per_job", "cpu_us_per_request", "redis_us_per_request"):
                row[key] = median([run[key] for run in mine])
            for key in ("failed", "rate_429", "concurrency_429", "max_in_flight"):
                row[key] = max(run[key] for run in mine)  # the worst run
            rows.append(row)
    baseline = {row["mode"]: row["jobs_per_minute"] for row in rows if row["workers"] == 1}
    reference = next((r["cpu_us_per_request"] for r in rows if r["mode"] == "same" and r["workers"] == 1), None)
    for row in rows:
        one = baseline.get(row["mode"])
        row["vs_one"] = row["jobs_per_minute"] / one if one else float("nan")
        shared = row["mode"] in ("sqlite", "redis") and reference is not None
        row["store_us"] = row["cpu_us_per_request"] - reference if shared and reference is not None else float("nan")
    return rows


def notes_for(
    rows: Sequence[dict[str, Any]], args: argparse.Namespace, skipped: dict[str, str], runs: Sequence[dict[str, Any]]
) -> list[str]:
    gap = args.duration / POLLS_PER_DURATION
    notes = [
        f"{args.jobs} jobs of {args.duration:g} s each, split evenly, polled every {gap:g} s; "
        f"the simulator allows {args.rate:g} requests/s and {args.cap} jobs at once; "
        f"median of {args.repeat} run(s) (429s, failures, max in flight: the worst run)",
        "429 rate / 429 jobs: answers for a request rate exceeded / for too many jobs at once; "
        "CPU: the workers' CPU time over the API requests the simulator received; "
        "store us/request: that CPU time minus same limits' at N=1 (the store's cost per request, client side); "
        "redis CPU: the redis-server's CPU time over the same requests",
    ]
    notes += [f"{MODES[mode]}: skipped: {reason}" for mode, reason in skipped.items()]
    errors = sorted({e for run in runs for e in run["errors"]})
    if errors:
        notes.append("failures seen: " + "; ".join(errors[:3]))
    most = max((row["workers"] for row in rows), default=1)
    for mode in ("sqlite", "redis"):
        label = f"goal: {MODES[mode]} at N={most} >= {GOAL:g} x the jobs/min of N=1, and no 429 for jobs at once"
        top = next((r for r in rows if r["mode"] == mode and r["workers"] == most), None)
        if mode in skipped:
            notes.append(f"{label}: not measured ({skipped[mode]})")
            continue
        if top is None:
            notes.append(f"{label}: not measured (not among --modes)")
            continue
        if most == 1:
            notes.append(f"{label}: not measured (run with more than one worker)")
            continue
        met = top["vs_one"] >= GOAL and top["concurrency_429"] == 0 and top["max_in_flight"] <= args.cap
        notes.append(
            f"{label}: {'MET' if met else 'NOT MET'} ({top['vs_one']:.2f} x, "
            f"{top['concurrency_429']} x 429 for jobs at once, at most {top['max_in_flight']} in flight)"
        )
    return notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "many workers")
    parser.add_argument("--jobs", type=int, default=None, help="jobs in all, split over the workers (default 200)")
    parser.add_argument("--workers", default=None, help="numbers of worker processes to try (default 1,2,4)")
    parser.add_argument("--modes", default=None, help=f"modes to run (default all: {','.join(MODES)})")
    parser.add_argument("--rate", type=float, default=None, help="the account's requests per second (default 50)")
    parser.add_argument("--cap", type=int, default=None, help="the account's jobs at once (default 16)")
    parser.add_argument("--duration", type=float, default=None, help="seconds each job runs (default 1.5)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        pin_client(0)
        print(json.dumps(asyncio.run(worker(json.loads(args.child)))), flush=True)
        return 0
    args.jobs = args.jobs or (24 if args.tiny else 200)
    args.rate = args.rate or (20.0 if args.tiny else 50.0)
    args.cap = args.cap or (4 if args.tiny else 16)
    args.duration = args.duration or (0.3 if args.tiny else 1.5)
    counts = [int(n) for n in (args.workers or ("1,2" if args.tiny else "1,2,4")).split(",")]
    modes = [m.strip() for m in (args.modes or ",".join(MODES)).split(",")]
    if unknown := [m for m in modes if m not in MODES]:
        parser.error(f"unknown modes {', '.join(unknown)}; known: {', '.join(MODES)}")
    skipped = {mode: reason for mode in modes if (reason := mode_skip_reason(mode)) is not None}
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="many-workers-") as folder, contextlib.ExitStack() as stack:
        with_redis = "redis" in modes and "redis" not in skipped
        redis_url = stack.enter_context(redis_server(Path(folder))) if with_redis else ""
        for run in range(args.repeat):
            for mode in (m for m in modes if m not in skipped):
                for workers in counts:
                    store = {"sqlite": f"sqlite:///{folder}/shared-{run}-{workers}.sqlite", "redis": redis_url}
                    runs.append(run_once(args, mode, workers, store.get(mode) or None, run))
    rows = summarize(runs)
    print(machine_line())
    print_table(
        f"{TITLE}: {args.jobs} jobs, account limits {args.rate:g} requests/s and {args.cap} jobs at once",
        COLUMNS,
        [
            [
                MODES[row["mode"]],
                row["workers"],
                row["jobs"],
                row["failed"],
                row["wall"],
                row["jobs_per_minute"],
                row["vs_one"],
                row["rate_429"],
                row["concurrency_429"],
                row["max_in_flight"],
                row["polls_per_job"],
                row["cpu_us_per_request"],
                row["store_us"],
                row["redis_us_per_request"],
            ]
            for row in rows
        ],
        notes_for(rows, args, skipped, runs),
    )
    write_json(args.json, "many_workers", {"options": vars(args), "skipped": skipped, "rows": rows, "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
