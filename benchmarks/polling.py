"""Requests per job: our default polling against fixed 1 s, fixed 5 s and runway's 6 s with jitter.

Run it from the repository root, after ``make test`` (or ``make bench``)::

    .venv/bin/python benchmarks/polling.py                    # 200 jobs, time scale 0.05, 3 runs
    .venv/bin/python benchmarks/polling.py --jobs 400 --time-scale 0.1 --repeat 5
    .venv/bin/python benchmarks/polling.py --policy max_interval=60   # ours with another setting

Goal: at least 2.2 times fewer polls per job than fixed 5 s polling once the
durations are learned (warm), 1.6 times from the priors (cold), at a p95 detection
delay no worse than fixed 5 s's.

One simulator process (``--realistic-durations``, pinned to core 1) runs every
job for a duration drawn for its model and length: a lognormal of a minute
(Veo 3 Fast, Runway) to five minutes (Kling 10 s) in real time, ``--time-scale``
times shorter here. This process (pinned to core 0) submits a mixed batch of
``--jobs`` jobs at once, eight kinds of job in turn (see ``_waiting.MIX``), with
no concurrency limit and no request budget, and waits for them with each
strategy in turn, all against the same simulator process:

- **fixed 1 s** (openai's waiter): ``job.status()`` at once, then every second;
- **fixed 5 s**: the same, every 5 s;
- **runway 6 s +- 1.5 s**: sleep 6 s give or take a uniform 1.5 s before every
  ``job.status()``, the first one too (runway's waiter);
- **ours (cold)**: a fresh ``FastRouterSession`` with ``PollPolicy().scaled(scale)``
  (the default policy, only scaled) and ``await job.result()``;
- **ours (warm)**: the same, started with ``import_durations()`` of what the
  cold run just before it (the same batch, other durations) exported: what
  ``fastrouter-video batch`` does with its ``durations.json``.

``--policy NAME=VALUE`` (repeatable) measures ours with a ``PollPolicy`` field
changed from its default (seconds in real time, scaled like the rest).

The three peers are plain loops over our session's ``job.status()`` with
``asyncio.sleep`` in between, exactly like those SDKs' waiters; every interval
is multiplied by the time scale. Polls per job is what reached the simulator
(its per-job ``poll_count``). The detection delay of a job is the moment its
waiter returned minus the moment the simulator finished it (``finishes_at`` in
``GET /_simulator/jobs``), both on ``time.monotonic()``, divided by the time
scale: real seconds. Each figure is the median over ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
from collections.abc import Sequence
from typing import Any

import attrs
from _harness import API_KEY, base_parser, machine_line, median, pin_client, print_table, simulator_process, write_json
from _waiting import (
    JobRecord,
    add_scale_options,
    detection_stats,
    fixed_loop,
    keeping_up_notes,
    mixed_batch,
    ours_policy,
    records_for,
    runway_loop,
    submit_all,
    timeline,
    wait_all,
)

from fastrouter_async import FastRouterSession, PollPolicy, VideoJob, VideoRequest

TITLE = "polling: requests per job and detection delay, mixed batch of realistic durations"
COLUMNS = ("strategy", "polls/job", "vs fewest", "fixed 5 s / this", "detection p50 (s)", "detection p95 (s)")
JOBS, TINY_JOBS = 200, 20
SCALE, TINY_SCALE = 0.05, 0.002
SEED = 1

FIXED_1, FIXED_5, RUNWAY, COLD, WARM = (
    "fixed 1 s (openai)",
    "fixed 5 s",
    "runway 6 s +- 1.5 s",
    "ours (cold)",
    "ours (warm: imported durations)",
)
PEERS = {FIXED_1: 1.0, FIXED_5: 5.0}
POLLS_GOAL = {COLD: 1.6, WARM: 2.2}  # fixed 5 s polls per job / ours
STRATEGIES = (FIXED_1, FIXED_5, RUNWAY, COLD, WARM)
SECONDS_FIELDS = ("first_delay", "interval", "max_interval", "not_found_grace")  # scaled with the time scale


def policy_setting(text: str) -> tuple[str, float]:
    """``NAME=VALUE`` for ``--policy``: a numeric ``PollPolicy`` field and its value."""
    name, _, value = text.partition("=")
    fields = {field.name for field in attrs.fields(PollPolicy)} - {"learn", "duration_scale"}
    if name not in fields:
        raise argparse.ArgumentTypeError(f"{name!r} is not one of {', '.join(sorted(fields))}")
    try:
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None


def our_policy(scale: float, settings: Sequence[tuple[str, float]]) -> PollPolicy:
    """The default policy scaled like the simulator's jobs, with ``settings`` (real seconds) applied."""
    changes: dict[str, Any] = {name: value * scale if name in SECONDS_FIELDS else value for name, value in settings}
    return attrs.evolve(ours_policy(scale), **changes)


async def run_peer(name: str, base_url: str, requests: Sequence[VideoRequest], scale: float) -> dict[str, float]:
    """Submit the batch and wait with one of the peers' loops; task id -> when the loop saw the end."""
    rng = random.Random()
    async with FastRouterSession(API_KEY, base_url=base_url, max_concurrent_jobs=None) as session:
        jobs = await submit_all(session, requests)
        if name == RUNWAY:
            return await wait_all(jobs, lambda job: runway_loop(job, scale, rng))
        interval = PEERS[name] * scale
        return await wait_all(jobs, lambda job: fixed_loop(job, interval))


async def run_ours(
    base_url: str, requests: Sequence[VideoRequest], policy: PollPolicy, learned: dict[str, Any] | None
) -> tuple[dict[str, float], dict[str, Any]]:
    """Submit the batch to a fresh session with our (scaled) policy and await every result."""
    async with FastRouterSession(API_KEY, base_url=base_url, max_concurrent_jobs=None, poll_policy=policy) as session:
        if learned is not None:
            session.import_durations(learned)
        jobs = await submit_all(session, requests)

        async def wait(job: VideoJob) -> float:
            await job.result()
            return time.monotonic()

        detected = await wait_all(jobs, wait)
        return detected, session.export_durations()


async def run_all(
    base_url: str, requests: Sequence[VideoRequest], scale: float, turn: int, policy: PollPolicy
) -> dict[str, dict[str, float]]:
    """One run: every strategy once, in an order that rotates with ``turn`` (ours warm right after ours cold)."""
    units: list[tuple[str, ...]] = [(FIXED_1,), (FIXED_5,), (RUNWAY,), (COLD, WARM)]
    units = units[turn % len(units) :] + units[: turn % len(units)]
    detected: dict[str, dict[str, float]] = {}
    learned: dict[str, Any] | None = None
    for unit in units:
        for name in unit:
            if name == COLD:
                detected[name], learned = await run_ours(base_url, requests, policy, None)
            elif name == WARM:
                detected[name], _ = await run_ours(base_url, requests, policy, learned)
            else:
                detected[name] = await run_peer(name, base_url, requests, scale)
    return detected


def expected_polls(records: Sequence[JobRecord], interval: float) -> float:
    """Polls a fixed-interval waiter needs for these jobs: one at once, then one per interval until the end."""
    return sum(1 + math.ceil(record.duration / interval) for record in records)


def measure(
    base_url: str, jobs: int, scale: float, repeat: int, policy: PollPolicy
) -> list[dict[str, dict[str, float]]]:
    """``repeat`` runs; for each, per strategy, the figures of :func:`detection_stats` and a keeping-up check."""
    requests = mixed_batch(jobs, tag="polling")
    runs = []
    for turn in range(repeat):
        detected = asyncio.run(run_all(base_url, requests, scale, turn, policy))
        known = timeline(base_url)
        run: dict[str, dict[str, float]] = {}
        for name in STRATEGIES:
            finished = records_for(known, detected[name])
            stats = detection_stats(finished, scale)
            if name in PEERS:
                records = [job.record for job in finished]
                sent = sum(record.poll_count for record in records)
                stats["share_of_schedule"] = sent / expected_polls(records, PEERS[name] * scale)
            stats["mean_duration"] = sum(job.record.duration for job in finished) / len(finished) / scale
            run[name] = stats
        runs.append(run)
    return runs


def summarize(runs: Sequence[dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    """Per strategy, the median over runs of each figure and of the same-run ratios."""
    rows = []
    for name in STRATEGIES:
        fewest = [min(run[other]["polls_per_job"] for other in STRATEGIES) for run in runs]
        row: dict[str, Any] = {"strategy": name}
        for key in runs[0][name]:
            row[key] = median([run[name][key] for run in runs])
        row["vs_fewest"] = median([run[name]["polls_per_job"] / low for run, low in zip(runs, fewest, strict=True)])
        row["fixed5_over_this"] = median([run[FIXED_5]["polls_per_job"] / run[name]["polls_per_job"] for run in runs])
        row["p95_over_fixed5"] = median([run[name]["detection_p95"] / run[FIXED_5]["detection_p95"] for run in runs])
        rows.append(row)
    return rows


def goal_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    by_name = {row["strategy"]: row for row in rows}
    fixed5 = by_name[FIXED_5]
    lines = []
    for name, goal in POLLS_GOAL.items():
        row = by_name[name]
        met = row["fixed5_over_this"] >= goal and row["detection_p95"] <= fixed5["detection_p95"]
        lines.append(
            f"goal: {name} >= {goal:g}x fewer polls per job than fixed 5 s, p95 detection no worse: "
            f"{'MET' if met else 'NOT MET'} ({row['fixed5_over_this']:.2f}x fewer; p95 {row['detection_p95']:.2f} s "
            f"vs {fixed5['detection_p95']:.2f} s)"
        )
    return lines


def spread_lines(runs: Sequence[dict[str, dict[str, float]]]) -> list[str]:
    """Per run, for ours: fixed 5 s polls / ours and the p95 against fixed 5 s's (the spread behind the medians)."""
    lines = []
    for name in POLLS_GOAL:
        ratios = ", ".join(f"{run[FIXED_5]['polls_per_job'] / run[name]['polls_per_job']:.2f}" for run in runs)
        p95s = ", ".join(f"{run[name]['detection_p95']:.2f}/{run[FIXED_5]['detection_p95']:.2f}" for run in runs)
        lines.append(f"{name} per run: fixed 5 s / this [{ratios}]; p95 this/fixed 5 s [{p95s}]")
    return lines


def notes(
    rows: Sequence[dict[str, Any]],
    runs: Sequence[dict[str, dict[str, float]]],
    *,
    jobs: int,
    scale: float,
    repeat: int,
    seed: int,
    settings: Sequence[tuple[str, float]],
) -> list[str]:
    out = [
        f"{jobs} jobs submitted at once, cycling over 8 kinds (mean true duration "
        f"{median([row['mean_duration'] for row in rows]):.0f} s real), time scale {scale:g} "
        f"(fixed 1 s = {1000 * scale:g} ms here), simulator seed {seed}; median of {repeat} run(s)",
        "detection delay: waiter returned - simulator finished the job, in real seconds (measured / time scale); "
        "polls/job counted by the simulator",
        "peers: plain loops over job.status() and asyncio.sleep; ours: await job.result() on a fresh session; "
        "warm: import_durations() of the cold run just before",
    ]
    if settings:
        changed = ", ".join(f"{name}={value:g}" for name, value in settings)
        out.append(f"ours with PollPolicy {changed} (real time), the other fields at their defaults")
    out.extend(keeping_up_notes(rows, PEERS, how=" (it sleeps after each answer)"))
    out.extend(spread_lines(runs))
    out.extend(goal_lines(rows))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else TITLE)
    parser.add_argument("--jobs", type=int, default=None, help=f"jobs in the batch (default {JOBS}; tiny {TINY_JOBS})")
    add_scale_options(parser, scale=SCALE, seed=SEED, scaled="simulated durations and every interval")
    parser.add_argument(
        "--policy",
        type=policy_setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="measure ours with this PollPolicy field changed (seconds in real time); repeatable",
    )
    args = parser.parse_args(argv)
    jobs = args.jobs or (TINY_JOBS if args.tiny else JOBS)
    scale = args.time_scale or (TINY_SCALE if args.tiny else SCALE)
    if jobs < 1 or not 0 < scale <= 1:
        parser.error("--jobs must be at least 1 and --time-scale in (0, 1]")
    pin_client(0)
    with simulator_process("--realistic-durations", "--time-scale", repr(scale), "--seed", str(args.seed)) as base_url:
        runs = measure(base_url, jobs, scale, args.repeat, our_policy(scale, args.policy))
    rows = summarize(runs)
    print(machine_line())
    print_table(
        TITLE,
        COLUMNS,
        [
            [
                row["strategy"],
                row["polls_per_job"],
                row["vs_fewest"],
                row["fixed5_over_this"],
                row["detection_p50"],
                row["detection_p95"],
            ]
            for row in rows
        ],
        notes(rows, runs, jobs=jobs, scale=scale, repeat=args.repeat, seed=args.seed, settings=args.policy),
    )
    write_json(
        args.json,
        "polling",
        {
            "jobs": jobs,
            "time_scale": scale,
            "seed": args.seed,
            "repeat": args.repeat,
            "policy": dict(args.policy),
            "rows": rows,
            "runs": runs,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
