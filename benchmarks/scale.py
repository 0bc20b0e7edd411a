"""Scale: 10,000 jobs in flight at once in one process, all being polled; memory per job and event-loop lag.

Run it from the repository root, after ``make test`` (or ``make bench``)::

    .venv/bin/python benchmarks/scale.py                       # 10,000 jobs held 30 s, 3 runs
    .venv/bin/python benchmarks/scale.py --jobs 20000 --seconds 60 --repeat 5

Goal: at most 5 KB per in-flight job, and an event-loop lag p99 under 50 ms
while all of them are being polled.

Each run is a fresh child process (pinned to core 0) against a fresh simulator
process (``--hold``: jobs never finish; pinned to core 1), so memory starts
clean; this process only orchestrates and prints. A run:

1. warms up: submits and polls 64 jobs, so imports and the connection pool
   count in the baseline; then takes the baseline RSS and restarts the peak
   (``VmRSS``/``VmHWM`` from ``/proc/self/status``);
2. submits ``--jobs`` jobs from 64 concurrent submitters, a 10 ms heartbeat
   task measuring the event-loop lag meanwhile;
3. starts one ``result()`` waiter per job, as a program that ``asyncio.gather``s
   its jobs does, and keeps them polling for ``--seconds`` with the heartbeat
   running; polls per second are counted by the simulator;
4. reads the peak RSS, cancels the waiters and closes.

The worst stall is the largest heartbeat lag while polling (``max ms``): the loop iteration in
which every waiter takes its first step, once they all start at once. ``start ms`` is the time
spent before that in the program's own synchronous ``asyncio.gather`` of one ``result()`` per job
(creating the tasks): the heartbeat has not taken its first step yet then, so it is not in
``max ms``.
For ours, ``behind`` says whether the session reported its poller behind its schedule
(``session.poller_statistics()``) at the end of the hold.

Two pollers run in turn in every run:

- **ours**: ``FastRouterSession(max_concurrent_jobs=None, poll_policy=POLL_POLICY)``,
  ``submit()`` and ``job.result()``;
- **hand-written**: what a user writes without a client library: one
  ``aiohttp.ClientSession``, one task per job sleeping and polling in a loop on
  the same schedule (first poll ``first_delay`` after its submit, then
  ``interval`` growing by ``multiplier`` up to ``max_interval``, with the same
  jitter), no retries, nothing kept but the task id.

KB are 1000 bytes; memory per job is (peak RSS - baseline RSS) / jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import random
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from _harness import (
    API_KEY,
    base_parser,
    fetch_json,
    loop_lag_probe,
    machine_line,
    median,
    memory_kib,
    pin_client,
    print_table,
    reset_peak_rss,
    simulator_process,
    write_json,
)

from fastrouter_async import FastRouterSession, PollPolicy, VideoJob

POLL_POLICY = PollPolicy(first_delay=0.5, interval=1.0, max_interval=5.0)
# Every job is polled again and again during the hold: first after 0.5 s, then 1, 1.5, 2.25, 3.4 and
# every 5 s, with the default jitter. Both pollers follow it; change it here for both.
MODEL = "google/veo3-fast"
SUBMITTERS = 64
WARMUP_JOBS = 64
KB = 1000
MEMORY_GOAL_KB = 5.0  # per in-flight job
LAG_GOAL_MS = 50.0  # p99 while polling
STALL_GOAL_MS = 200.0  # the worst lag while polling (starting every waiter at once included), at 100,000 jobs
POLLERS = {"ours": "ours", "bare": "hand-written (aiohttp)"}  # child names -> table names
CHILD_TIMEOUT_SLACK = 300.0  # seconds a child may take beyond its hold
TITLE = "scale: jobs in flight in one process, all polled: memory per job and event-loop lag"
COLUMNS = (
    "poller",
    "jobs",
    "KB per job",
    "peak RSS growth MiB",
    "polling lag p50 ms",
    "p99 ms",
    "max ms",
    "start ms",
    "submit lag p50 ms",
    "p99 ms",
    "polls/s",
    "submits/s",
    "behind",
)


# -- the child: one run of one poller ------------------------------------------------


async def run_concurrently(count: int, work: Callable[[int], Awaitable[None]], concurrency: int = SUBMITTERS) -> None:
    numbers = itertools.count()

    async def worker() -> None:
        while (i := next(numbers)) < count:
            await work(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


class Ours:
    """The poller under test: our session, ``submit()`` and ``result()``."""

    def __init__(self, base_url: str) -> None:
        self.session = FastRouterSession(API_KEY, base_url=base_url, max_concurrent_jobs=None, poll_policy=POLL_POLICY)
        self.jobs: list[VideoJob] = []

    async def submit(self, count: int) -> None:
        async def one(i: int) -> None:
            self.jobs.append(await self.session.submit(model=MODEL, prompt=f"scale {i}"))

        await run_concurrently(count, one)

    async def poll_once(self) -> None:
        await asyncio.gather(*(job.status() for job in self.jobs))

    def forget(self) -> None:
        self.jobs = []

    def waiters(self) -> asyncio.Future[list[Any]]:
        return asyncio.gather(*(job.result() for job in self.jobs))

    def poller_statistics(self) -> dict[str, Any]:
        stats = self.session.poller_statistics()
        return {"behind": stats.behind, "lateness": stats.lateness, "max_lateness": stats.max_lateness}

    async def aclose(self) -> None:
        await self.session.aclose()


class HandWritten:
    """A poller written by hand: one aiohttp session, one task per job sleeping and polling in a loop."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = aiohttp.ClientSession()
        self.headers = {"Authorization": f"Bearer {API_KEY}"}
        self.jobs: list[tuple[str, float]] = []  # task id, submitted at (loop time)
        self.rng = random.Random()

    async def submit(self, count: int) -> None:
        loop = asyncio.get_running_loop()

        async def one(i: int) -> None:
            body = {"model": MODEL, "prompt": f"scale {i}"}
            async with self.http.post(f"{self.base_url}/videos", json=body, headers=self.headers) as r:
                answer = await r.json()
            self.jobs.append((answer["data"]["taskId"], loop.time()))

        await run_concurrently(count, one)

    async def poll(self, task_id: str) -> str:
        body = {"taskId": task_id, "model": MODEL}
        async with self.http.post(f"{self.base_url}/getVideoResponse", json=body, headers=self.headers) as r:
            answer = await r.json()
        return str(answer["data"]["status"])

    async def poll_once(self) -> None:
        await asyncio.gather(*(self.poll(task_id) for task_id, _ in self.jobs))

    def forget(self) -> None:
        self.jobs = []

    async def watch(self, task_id: str, submitted_at: float) -> str:
        policy = POLL_POLICY
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, policy.first_delay - (loop.time() - submitted_at)))
        polls = 0
        while True:
            status = await self.poll(task_id)
            if status in ("succeed", "failed"):
                return status
            delay = min(policy.interval * policy.multiplier**polls, policy.max_interval)
            polls += 1
            await asyncio.sleep(delay * self.rng.uniform(1 - policy.jitter, 1 + policy.jitter))

    def waiters(self) -> asyncio.Future[list[Any]]:
        return asyncio.gather(*(self.watch(task_id, at) for task_id, at in self.jobs))

    def poller_statistics(self) -> dict[str, Any]:
        return {}  # a hand-written poller does not know

    async def aclose(self) -> None:
        await self.http.close()


async def child(poller_name: str, base_url: str, jobs: int, seconds: float, *, freeze: bool = False) -> dict[str, Any]:
    poller: Ours | HandWritten = Ours(base_url) if poller_name == "ours" else HandWritten(base_url)
    try:
        await poller.submit(WARMUP_JOBS)
        await poller.poll_once()
        poller.forget()
        gc.collect()
        reset_peak_rss()
        baseline = memory_kib()["VmRSS"]
        async with loop_lag_probe() as submit_lag:
            started = time.perf_counter()
            await poller.submit(jobs)
            submit_seconds = time.perf_counter() - started
        if freeze:  # the program's choice (--gc-freeze): what exists now is left out of later collections
            gc.freeze()
        polls_before = fetch_json(base_url, "/_simulator/stats")["polls"]
        async with loop_lag_probe() as poll_lag:
            held_from = time.perf_counter()
            waiters = poller.waiters()
            start_seconds = time.perf_counter() - held_from
            await asyncio.sleep(seconds)
            held = time.perf_counter() - held_from
        polls = fetch_json(base_url, "/_simulator/stats")["polls"] - polls_before
        poller_stats = poller.poller_statistics()
        peak = memory_kib()["VmHWM"]
        waiters.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiters
    finally:
        await poller.aclose()
    return {
        "poller": poller_name,
        "jobs": jobs,
        "baseline_kib": baseline,
        "peak_kib": peak,
        "growth_bytes": (peak - baseline) * 1024,
        "submit_seconds": submit_seconds,
        "held_seconds": held,
        "polls": polls,
        "submit_lag_ms": submit_lag.summary_ms(),
        "poll_lag_ms": poll_lag.summary_ms(),
        "start_waiters_ms": start_seconds * 1000,
        "poller_statistics": poller_stats,
        "gc_freeze": freeze,
    }


# -- the parent: runs, medians, table --------------------------------------------------


def run_child(poller: str, jobs: int, seconds: float, *, freeze: bool = False) -> dict[str, Any]:
    with simulator_process("--hold") as base_url:
        command = [sys.executable, str(Path(__file__).resolve()), "--child", poller, base_url]
        command += ["--jobs", str(jobs), "--seconds", str(seconds)] + (["--gc-freeze"] if freeze else [])
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=seconds + CHILD_TIMEOUT_SLACK
        )
    if done.returncode != 0:
        raise RuntimeError(f"the {poller} child failed ({done.returncode}): {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def summarize(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for poller in POLLERS:
        mine = [run for run in runs if run["poller"] == poller]
        if not mine:
            continue
        rows.append(
            {
                "poller": poller,
                "jobs": mine[0]["jobs"],
                "kb_per_job": median([run["growth_bytes"] / run["jobs"] / KB for run in mine]),
                "growth_mib": median([run["growth_bytes"] / 2**20 for run in mine]),
                "poll_lag_p50_ms": median([run["poll_lag_ms"]["p50"] for run in mine]),
                "poll_lag_p99_ms": median([run["poll_lag_ms"]["p99"] for run in mine]),
                "poll_lag_max_ms": median([run["poll_lag_ms"]["max"] for run in mine]),
                "worst_stall_ms": max(run["poll_lag_ms"]["max"] for run in mine),
                "start_waiters_ms": median([run["start_waiters_ms"] for run in mine]),
                "behind": sum(bool(run["poller_statistics"].get("behind")) for run in mine)
                if poller == "ours"
                else None,
                "submit_lag_p50_ms": median([run["submit_lag_ms"]["p50"] for run in mine]),
                "submit_lag_p99_ms": median([run["submit_lag_ms"]["p99"] for run in mine]),
                "polls_per_second": median([run["polls"] / run["held_seconds"] for run in mine]),
                "submits_per_second": median([run["jobs"] / run["submit_seconds"] for run in mine]),
            }
        )
    return rows


def notes_for(rows: Sequence[dict[str, Any]], *, repeat: int, seconds: float, freeze: bool = False) -> list[str]:
    by_name = {row["poller"]: row for row in rows}
    notes = [
        f"median of {repeat} run(s), each a fresh process; jobs held running and polled for {seconds:g} s "
        f"({POLL_POLICY.first_delay:g} s, then {POLL_POLICY.interval:g} s x{POLL_POLICY.multiplier:g} up to "
        f"{POLL_POLICY.max_interval:g} s, jitter {POLL_POLICY.jitter:g}); KB = 1000 bytes, MiB = 2^20 bytes",
        "lag: how late a 10 ms heartbeat task woke up; client pinned to core 0, simulator process to core 1",
    ]
    if freeze:
        notes.append(
            "--gc-freeze: each program called gc.freeze() once its jobs were submitted, before starting the waiters"
        )
    if "ours" in by_name and "bare" in by_name:
        ours, bare = by_name["ours"], by_name["bare"]
        notes.append(
            f"ours / hand-written: {ours['kb_per_job'] / bare['kb_per_job']:.2f} x the memory per job, "
            f"{ours['poll_lag_p99_ms'] / bare['poll_lag_p99_ms']:.2f} x the polling lag p99, "
            f"{ours['polls_per_second'] / bare['polls_per_second']:.2f} x the polls per second"
        )
    if "ours" in by_name:
        ours = by_name["ours"]
        memory_met = "MET" if ours["kb_per_job"] <= MEMORY_GOAL_KB else "NOT MET"
        lag_met = "MET" if ours["poll_lag_p99_ms"] < LAG_GOAL_MS else "NOT MET"
        notes.append(f"goal: ours <= {MEMORY_GOAL_KB:g} KB per in-flight job: {memory_met} ({ours['kb_per_job']:.2f})")
        notes.append(
            f"goal: ours loop lag p99 < {LAG_GOAL_MS:g} ms while polling: {lag_met} ({ours['poll_lag_p99_ms']:.1f})"
        )
        stall_met = "MET" if ours["worst_stall_ms"] < STALL_GOAL_MS else "NOT MET"
        if ours["jobs"] < 100_000:
            stall_met = f"not measured here ({ours['jobs']:,} jobs; run --jobs 100000)"
        notes.append(
            f"goal: ours worst stall < {STALL_GOAL_MS:g} ms (at 100,000 jobs): {stall_met} "
            f"(worst of {repeat} run(s): {ours['worst_stall_ms']:.0f} ms; before it, the program's own gather creating "
            f"the waiters' tasks took {ours['start_waiters_ms']:.0f} ms, not counted); "
            "behind: in how many runs ours reported its poller behind at the end"
        )
    return notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "scale")
    parser.add_argument("--jobs", type=int, default=None, help="jobs in flight at once (default 10000)")
    parser.add_argument("--seconds", type=float, default=None, help="how long they are polled (default 30)")
    parser.add_argument(
        "--only", choices=sorted(POLLERS), default=None, help="run one poller only (default: both, in turn)"
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="call gc.freeze() once the jobs are submitted, in every poller's program (see docs/performance.md)",
    )
    parser.add_argument("--child", nargs=2, metavar=("POLLER", "BASE_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    jobs = args.jobs or (200 if args.tiny else 10_000)
    seconds = args.seconds or (1.0 if args.tiny else 30.0)
    if args.child:
        poller, base_url = args.child
        pin_client(0)
        print(json.dumps(asyncio.run(child(poller, base_url, jobs, seconds, freeze=args.gc_freeze))))
        return 0
    pollers = [args.only] if args.only else list(POLLERS)
    runs = []
    for run in range(args.repeat):
        for poller in pollers[run % len(pollers) :] + pollers[: run % len(pollers)]:
            runs.append(run_child(poller, jobs, seconds, freeze=args.gc_freeze))
    rows = summarize(runs)
    print(machine_line())
    print_table(
        TITLE,
        COLUMNS,
        [
            [
                POLLERS[row["poller"]],
                row["jobs"],
                row["kb_per_job"],
                row["growth_mib"],
                row["poll_lag_p50_ms"],
                row["poll_lag_p99_ms"],
                row["poll_lag_max_ms"],
                row["start_waiters_ms"],
                row["submit_lag_p50_ms"],
                row["submit_lag_p99_ms"],
                row["polls_per_second"],
                row["submits_per_second"],
                "-" if row["behind"] is None else f"{row['behind']}/{args.repeat}",
            ]
            for row in rows
        ],
        notes_for(rows, repeat=args.repeat, seconds=seconds, freeze=args.gc_freeze),
    )
    write_json(
        args.json, "scale", {"jobs": jobs, "seconds": seconds, "gc_freeze": args.gc_freeze, "rows": rows, "runs": runs}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
