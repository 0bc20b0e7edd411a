"""Makespan: 1,000 jobs with a cap of 100, wall time against the ideal schedule of the same jobs.

Run it from the repository root, after ``make test`` (or ``make bench``)::

    .venv/bin/python benchmarks/makespan.py                   # 1,000 jobs, cap 100, time scale 0.03, 3 runs
    .venv/bin/python benchmarks/makespan.py --time-scale 0.1 --repeat 1

Goal: wall time at most 1.05 times the ideal schedule's.

One simulator process (``--realistic-durations``, pinned to core 1) runs every
job for a duration drawn for its model and length, ``--time-scale`` times
shorter than real. This process (pinned to core 0) runs ``--jobs`` requests of
the mixed batch (``_waiting.MIX``) through ``session.generate_many(requests)``
(no output folder: nothing is downloaded) on a fresh
``FastRouterSession(max_concurrent_jobs=--cap)``, once per strategy, all
against the same simulator process. The strategies differ only in the poll
policy, since the cap is the session's:

- **ours (cold)**: ``PollPolicy().scaled(scale)``, the default policy, from its priors;
- **ours (warm)**: the same, started with ``import_durations()`` of what the cold
  run just before it (the same batch, other durations) exported;
- **fixed 1 s** and **fixed 5 s**: ``PollPolicy.fixed(x * scale, first_delay=0)``.

The wall time runs from the call to ``generate_many`` to the last outcome. The
ideal is the makespan of list scheduling with zero overhead: the jobs' true
durations (``finishes_at - created`` in ``GET /_simulator/jobs``), in submit
order, each started the instant one of the ``--cap`` slots frees. A slot frees
only when the session sees its job end, so every detection delay (from the
job's end to the poll that sees it) pushes back every later job of that slot.
Both are reported in real seconds (measured / time scale); figures are medians
over ``--repeat`` runs.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

from _harness import API_KEY, base_parser, machine_line, median, pin_client, print_table, simulator_process, write_json
from _waiting import (
    Finished,
    add_scale_options,
    detection_stats,
    keeping_up_notes,
    mixed_batch,
    ours_policy,
    records_for,
    timeline,
)

from fastrouter_async import FastRouterSession, PollPolicy, VideoRequest

TITLE = "makespan: {jobs:,} jobs with a cap of {cap}, wall time / ideal schedule"
COLUMNS = (
    "strategy",
    "wall (s)",
    "ideal (s)",
    "wall - ideal (s)",
    "wall / ideal",
    "vs best",
    "polls/job",
    "detection mean (s)",
)
JOBS, CAP = 1000, 100
TINY_JOBS, TINY_CAP = 50, 5
SCALE, TINY_SCALE = 0.03, 0.001
SEED = 3
GOAL = 1.05

COLD, WARM, FIXED_1, FIXED_5 = (
    "ours (cold)",
    "ours (warm: imported durations)",
    "fixed 1 s",
    "fixed 5 s",
)
FIXED = {FIXED_1: 1.0, FIXED_5: 5.0}
STRATEGIES = (COLD, WARM, FIXED_1, FIXED_5)


async def run_batch(
    base_url: str, policy: PollPolicy, requests: Sequence[VideoRequest], *, cap: int, learned: dict[str, Any] | None
) -> tuple[float, float, dict[str, float | None], dict[str, Any]]:
    """One ``generate_many`` over ``requests``: (start, end, task id -> when its outcome arrived, learned durations)."""
    detected: dict[str, float | None] = {}
    async with FastRouterSession(API_KEY, base_url=base_url, max_concurrent_jobs=cap, poll_policy=policy) as session:
        if learned is not None:
            session.import_durations(learned)
        start = time.monotonic()
        async with session.generate_many(requests) as batch:
            async for outcome in batch:
                if not outcome.ok or outcome.task_id is None:
                    raise RuntimeError(f"request #{outcome.index} ended {outcome.status.value}: {outcome.error}")
                detected[outcome.task_id] = time.monotonic()
        end = time.monotonic()
        return start, end, detected, session.export_durations()


def ideal_makespan(finished: Sequence[Finished], cap: int) -> float:
    """List scheduling of the true durations in submit order on ``cap`` slots, with zero overhead (scaled seconds)."""
    slots = [0.0] * cap
    end = 0.0
    for job in sorted(finished, key=lambda job: job.record.created):
        start = heapq.heappop(slots)
        finish = start + job.record.duration
        end = max(end, finish)
        heapq.heappush(slots, finish)
    return end


def policy_for(name: str, scale: float) -> PollPolicy:
    if name in FIXED:
        return PollPolicy.fixed(FIXED[name] * scale, first_delay=0.0)
    return ours_policy(scale)


def measure(base_url: str, jobs: int, cap: int, scale: float, repeat: int) -> list[dict[str, dict[str, float]]]:
    requests = mixed_batch(jobs, tag="makespan")
    runs = []
    for turn in range(repeat):
        units: list[tuple[str, ...]] = [(COLD, WARM), (FIXED_1,), (FIXED_5,)]
        units = units[turn % len(units) :] + units[: turn % len(units)]
        learned: dict[str, Any] | None = None
        raw: dict[str, tuple[float, float, dict[str, float | None]]] = {}
        for unit in units:
            for name in unit:
                start, end, detected, exported = asyncio.run(
                    run_batch(
                        base_url,
                        policy_for(name, scale),
                        requests,
                        cap=cap,
                        learned=learned if name == WARM else None,
                    )
                )
                if name == COLD:
                    learned = exported
                raw[name] = (start, end, detected)
        known = timeline(base_url)
        run: dict[str, dict[str, float]] = {}
        for name, (start, end, detected) in raw.items():
            finished = records_for(known, detected)
            stats = detection_stats(finished, scale)
            stats["wall"] = (end - start) / scale
            stats["ideal"] = ideal_makespan(finished, cap) / scale
            stats["lost"] = stats["wall"] - stats["ideal"]
            stats["ratio"] = stats["wall"] / stats["ideal"]
            if name in FIXED:
                interval = FIXED[name] * scale
                needed = sum(1 + math.ceil(job.record.duration / interval) for job in finished)
                stats["share_of_schedule"] = sum(job.record.poll_count for job in finished) / needed
            run[name] = stats
        runs.append(run)
    return runs


def summarize(runs: Sequence[dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    rows = []
    for name in STRATEGIES:
        row: dict[str, Any] = {"strategy": name}
        for key in runs[0][name]:
            row[key] = median([run[name][key] for run in runs])
        row["vs_best"] = median([run[name]["ratio"] / min(run[o]["ratio"] for o in STRATEGIES) for run in runs])
        rows.append(row)
    return rows


def goal_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [
        f"goal: {row['strategy']} wall time <= {GOAL:g} x the ideal schedule's: "
        f"{'MET' if row['ratio'] <= GOAL else 'NOT MET'} ({row['ratio']:.3f})"
        for row in rows
        if row["strategy"] in (COLD, WARM)
    ]


def notes(rows: Sequence[dict[str, Any]], *, jobs: int, cap: int, scale: float, repeat: int, seed: int) -> list[str]:
    out = [
        f"{jobs:,} jobs of the mixed batch (8 kinds), cap {cap}, generate_many without downloads; time scale "
        f"{scale:g}, simulator seed {seed}; seconds are real (measured / time scale); median of {repeat} run(s)",
        "ideal: list scheduling of the true durations in submit order on the same slots, zero overhead; "
        "detection delay: the job's end to its outcome",
    ]
    out.extend(keeping_up_notes(rows, FIXED))
    out.extend(goal_lines(rows))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else TITLE)
    parser.add_argument("--jobs", type=int, default=None, help=f"jobs (default {JOBS:,}; tiny {TINY_JOBS})")
    parser.add_argument("--cap", type=int, default=None, help=f"max_concurrent_jobs (default {CAP}; tiny {TINY_CAP})")
    add_scale_options(parser, scale=SCALE, seed=SEED, scaled="simulated durations and every interval")
    args = parser.parse_args(argv)
    jobs = args.jobs or (TINY_JOBS if args.tiny else JOBS)
    cap = args.cap or (TINY_CAP if args.tiny else CAP)
    scale = args.time_scale or (TINY_SCALE if args.tiny else SCALE)
    if jobs < 1 or cap < 1 or not 0 < scale <= 1:
        parser.error("--jobs and --cap must be at least 1 and --time-scale in (0, 1]")
    pin_client(0)
    with simulator_process("--realistic-durations", "--time-scale", repr(scale), "--seed", str(args.seed)) as base_url:
        runs = measure(base_url, jobs, cap, scale, args.repeat)
    rows = summarize(runs)
    print(machine_line())
    print_table(
        TITLE.format(jobs=jobs, cap=cap),
        COLUMNS,
        [
            [
                row["strategy"],
                row["wall"],
                row["ideal"],
                row["lost"],
                f"{row['ratio']:.3f}",
                f"{row['vs_best']:.3f}",
                row["polls_per_job"],
                row["detection_mean"],
            ]
            for row in rows
        ],
        notes(rows, jobs=jobs, cap=cap, scale=scale, repeat=args.repeat, seed=args.seed),
    )
    write_json(
        args.json,
        "makespan",
        {
            "jobs": jobs,
            "cap": cap,
            "time_scale": scale,
            "seed": args.seed,
            "repeat": args.repeat,
            "rows": rows,
            "runs": runs,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
