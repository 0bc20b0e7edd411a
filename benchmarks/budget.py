"""Throughput under a budget: the jobs kept in flight under 600 requests per minute, ours against fixed 5 s.

Run it from the repository root, after ``make test`` (or ``make bench``)::

    .venv/bin/python benchmarks/budget.py                     # time scale 0.02, 3 searches
    .venv/bin/python benchmarks/budget.py --time-scale 0.05 --repeat 1

Goal: more jobs in flight than fixed 5 s polling under the same budget, at a
p95 detection delay under 10 s. (The goal gives no number: the table says what
was measured.)

One simulator process (``--realistic-durations``, pinned to core 1) runs every
job for a duration drawn for its model and length, ``--time-scale`` times
shorter than real. This process (pinned to core 0) keeps ``N`` jobs in flight
with one ``FastRouterSession(max_concurrent_jobs=N, request_budget=...)``: a
closed loop, where a new job (the next of the mixed batch of ``_waiting.MIX``)
is submitted as soon as the session sees one end. The budget is 600 requests
per minute of real time, shared by submits and polls: ``RequestBudget.per_minute(600 / scale,
burst=10)`` here (the burst stays 10 requests, one real second's worth, as it
would be without scaling). The strategies differ only in the poll policy:

- **ours**: ``PollPolicy().scaled(scale)``, the default policy, starting from its
  priors (it learns during the warm-up);
- **fixed 5 s**: ``PollPolicy.fixed(5 * scale, first_delay=0)``: a poll at once,
  then every 5 s. It goes through the same session, so its polls wait in the same
  token bucket as ours; a plain loop over ``job.status()`` would do exactly the
  same, since ``status()`` spends from the budget too.

One measurement at a given ``N`` runs the loop for ``--warmup`` job lifetimes
(the mean duration of the mix, about 150 s real), then ``--window`` lifetimes,
then a grace time; its figure is the p95 detection delay of the jobs the
simulator finished within the window: from ``finishes_at`` in ``GET /_simulator/jobs``
to the moment ``result()`` returned, in real seconds (a job not detected by the
end counts as infinitely late). For each strategy the largest ``N`` whose p95
is under 10 s is searched for by doubling (25, 50, 100, ...) and then bisecting
to within 10 %. Each search is repeated ``--repeat`` times; the table shows
medians.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import anyio
from _harness import (
    API_KEY,
    base_parser,
    fetch_json,
    machine_line,
    median,
    pin_client,
    print_table,
    simulator_process,
    write_json,
)
from _waiting import (
    MIX,
    add_scale_options,
    detection_stats,
    mean_duration,
    mixed_batch,
    ours_policy,
    records_for,
    timeline,
)

from fastrouter_async import FastRouterSession, PollPolicy, RequestBudget, VideoJob, VideoRequest

TITLE = "budget: jobs kept in flight under 600 requests/minute with p95 detection under 10 s"
COLUMNS = (
    "strategy",
    "jobs in flight",
    "vs best",
    "cap",
    "detection p95 (s)",
    "polls/job",
    "requests/s (real)",
    "limited by",
)
BUDGET_PER_MINUTE = 600.0  # real time
BURST = 10.0  # requests: one real second of the budget
LIMIT = 10.0  # p95 detection delay, real seconds
SCALE, TINY_SCALE = 0.02, 0.002
WARMUP, WINDOW = 1.5, 2.0  # job lifetimes
GRACE = 30.0  # real seconds after the window for the last jobs of the window to be detected
START, RESOLUTION = 25, 0.10  # the doubling of the cap starts here; bisection stops within 10 %
SATURATED = 0.9  # fewer jobs in flight than this share of the cap: the budget, not the cap, is what binds
TINY_GRID = (4, 8)
MARGIN = 1.05  # "more jobs in flight" has to be more than run-to-run noise
SEED = 2

OURS, FIXED_5 = "ours (default policy)", "fixed 5 s"
STRATEGIES = (OURS, FIXED_5)


def policy_for(name: str, scale: float) -> PollPolicy:
    return ours_policy(scale) if name == OURS else PollPolicy.fixed(5.0 * scale, first_delay=0.0)


async def closed_loop(
    base_url: str, policy: PollPolicy, cap: int, *, requests: Sequence[VideoRequest], scale: float, seconds: float
) -> tuple[dict[str, float | None], float, float]:
    """Keep up to ``cap`` jobs in flight for ``seconds``.

    Returns (task id -> when ``result()`` returned, ``None`` if it had not by the
    end; the start; the end), on ``time.monotonic()``.
    """
    budget = RequestBudget.per_minute(BUDGET_PER_MINUTE / scale, burst=BURST)
    detected: dict[str, float | None] = {}
    async with FastRouterSession(
        API_KEY, base_url=base_url, max_concurrent_jobs=cap, poll_policy=policy, request_budget=budget
    ) as session:

        async def wait(job: VideoJob) -> None:
            await job.result()
            detected[job.task_id] = time.monotonic()

        start = time.monotonic()
        async with anyio.create_task_group() as tg:
            submitted = 0
            while time.monotonic() < start + seconds:
                job = await session.submit(requests[submitted % len(requests)])  # waits for a slot, then the budget
                submitted += 1
                detected[job.task_id] = None
                tg.start_soon(wait, job)
            end = time.monotonic()
            tg.cancel_scope.cancel()  # stop waiting; the jobs still running are left to the simulator
    return detected, start, end


def measure_at(
    base_url: str, name: str, cap: int, *, requests: Sequence[VideoRequest], scale: float, lifetime: float
) -> dict[str, float]:
    """One closed-loop run of strategy ``name`` with ``cap``: the jobs in flight and detection figures of its window."""
    warmup, window, grace = WARMUP * lifetime * scale, WINDOW * lifetime * scale, GRACE * scale
    before = fetch_json(base_url, "/_simulator/stats")
    detected, start, end = asyncio.run(
        closed_loop(
            base_url, policy_for(name, scale), cap, requests=requests, scale=scale, seconds=warmup + window + grace
        )
    )
    after = fetch_json(base_url, "/_simulator/stats")
    sent = sum(after[key] - before[key] for key in ("polls", "submits"))
    jobs = records_for(timeline(base_url), detected)
    opens, closes = start + warmup, start + warmup + window
    finished = [job for job in jobs if opens <= job.record.finishes_at < closes]
    if not finished:
        raise RuntimeError(f"no job of {name} with cap {cap} finished within the measuring window")
    stats = detection_stats(finished, scale)
    # Jobs in flight (submitted, not yet seen to end: what holds a slot), averaged over the window.
    held = sum(
        max(0.0, min(closes, end if job.detected_at is None else job.detected_at) - max(opens, job.record.created))
        for job in jobs
    )
    stats["in_flight"] = held / window
    stats["cap"] = cap
    stats["requests_per_second"] = sent / (end - start) * scale
    print(
        f"  {name}, cap {cap}: {stats['in_flight']:.1f} jobs in flight, p95 {stats['detection_p95']:.2f} s over "
        f"{len(finished)} jobs, {stats['polls_per_job']:.1f} polls/job, {stats['requests_per_second']:.2f} requests/s",
        file=sys.stderr,
        flush=True,
    )
    return stats


def search(
    base_url: str, name: str, *, requests: Sequence[VideoRequest], scale: float, lifetime: float, grid: Sequence[int]
) -> dict[str, Any]:
    """The most jobs ``name`` keeps in flight with a p95 detection delay under :data:`LIMIT`.

    The cap doubles from :data:`START` until the p95 goes over the limit (then the
    cap is bisected) or until the budget binds (fewer jobs in flight than
    :data:`SATURATED` of the cap: a larger cap would keep no more in flight, the
    submits wait for the budget too).
    """
    tried: dict[int, dict[str, float]] = {}

    def passes(cap: int) -> bool:
        if cap not in tried:
            tried[cap] = measure_at(base_url, name, cap, requests=requests, scale=scale, lifetime=lifetime)
        return tried[cap]["detection_p95"] < LIMIT

    failed: int | None = None
    if grid:
        failed = next((cap for cap in grid if not passes(cap)), None)
    else:
        cap, low = START, 0
        while passes(cap):
            low = cap
            if tried[cap]["in_flight"] < SATURATED * cap:
                break
            cap *= 2
        else:
            failed = cap
            while failed - low > max(1, RESOLUTION * low):
                middle = (low + failed) // 2
                if passes(middle):
                    low = middle
                else:
                    failed = middle
    passing = [stats for stats in tried.values() if stats["detection_p95"] < LIMIT]
    best = max(passing, key=lambda stats: stats["in_flight"], default=None)
    if failed is not None:
        limited_by = "p95 limit"
    elif best is not None and best["in_flight"] < SATURATED * best["cap"]:
        limited_by = "budget"
    else:
        limited_by = "caps tried"
    return {
        "strategy": name,
        "n_max": 0.0 if best is None else best["in_flight"],
        "at_n_max": best,
        "limited_by": limited_by,
        "first_failing_cap": failed,
        "tried": tried,
    }


def measure(base_url: str, scale: float, repeat: int, tiny: bool) -> list[dict[str, dict[str, Any]]]:
    requests = mixed_batch(len(MIX), tag="budget")  # the closed loop cycles over them
    lifetime = mean_duration()
    if tiny:
        lifetime /= 2  # short runs: the figures mean little, the code runs
    runs = []
    for turn in range(repeat):
        order = STRATEGIES[turn % 2 :] + STRATEGIES[: turn % 2]
        runs.append(
            {
                name: search(
                    base_url, name, requests=requests, scale=scale, lifetime=lifetime, grid=TINY_GRID if tiny else ()
                )
                for name in order
            }
        )
    return runs


def whole(value: float) -> float | int:
    """``value`` as an int when it is one (the median of caps), so the table prints no decimals."""
    return int(value) if math.isfinite(value) and value == int(value) else value


def summarize(runs: Sequence[dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    best = [max(run[name]["n_max"] for name in STRATEGIES) for run in runs]
    for name in STRATEGIES:
        searches = [run[name] for run in runs]
        at = [found["at_n_max"] for found in searches if found["at_n_max"] is not None]

        def at_best(key: str, at: list[dict[str, float]] = at) -> float:
            return median([stats[key] for stats in at]) if at else math.nan

        limits = sorted({found["limited_by"] for found in searches})
        rows.append(
            {
                "strategy": name,
                "n_max": median([found["n_max"] for found in searches]),
                "vs_best": median(
                    [found["n_max"] / top if top else math.nan for found, top in zip(searches, best, strict=True)]
                ),
                "cap": whole(at_best("cap")),
                "detection_p95": at_best("detection_p95"),
                "polls_per_job": at_best("polls_per_job"),
                "requests_per_second": at_best("requests_per_second"),
                "limited_by": " / ".join(limits),
                "n_max_each_run": [round(found["n_max"], 1) for found in searches],
            }
        )
    return rows


def goal_line(rows: Sequence[dict[str, Any]], runs: Sequence[dict[str, dict[str, Any]]]) -> str:
    by_name = {row["strategy"]: row for row in rows}
    ours, fixed = by_name[OURS], by_name[FIXED_5]
    ratio = median([run[OURS]["n_max"] / run[FIXED_5]["n_max"] if run[FIXED_5]["n_max"] else math.inf for run in runs])
    met = ours["n_max"] > MARGIN * fixed["n_max"]
    return (
        f"goal: ours keeps more jobs in flight than fixed 5 s (by more than {MARGIN - 1:.0%}) under the same budget "
        f"with p95 detection < {LIMIT:g} s: {'MET' if met else 'NOT MET'} ({ours['n_max']:.0f} vs {fixed['n_max']:.0f} "
        f"jobs, {ratio:.2f}x)"
    )


def notes(rows: Sequence[dict[str, Any]], runs: Sequence[dict[str, dict[str, Any]]], scale: float) -> list[str]:
    out = [
        f"budget {BUDGET_PER_MINUTE:g} requests/minute of real time (= {BUDGET_PER_MINUTE / 60 / scale:g}/s here, "
        f"burst {BURST:g}) for submits and polls; time scale {scale:g}; median of {len(runs)} search(es)",
        f"closed loop under a cap (max_concurrent_jobs), mixed batch of 8 kinds; jobs in flight (submit to detection) "
        f"averaged and p95 taken over {WINDOW:g} job lifetimes after {WARMUP:g} of warm-up; cap doubled from "
        f"{START}, bisected to 10 % if the p95 goes over the limit",
        "limited by 'budget': a larger cap keeps no more jobs in flight (submits wait in the budget too), "
        "with the p95 still under the limit",
        "both strategies are our session with the same budget: fixed 5 s polls wait in the same token bucket",
    ]
    out.extend(f"{row['strategy']}: jobs in flight per search {row['n_max_each_run']}" for row in rows)
    out.append(goal_line(rows, runs))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else TITLE)
    add_scale_options(parser, scale=SCALE, seed=SEED, scaled="simulated durations, intervals and the budget's period")
    args = parser.parse_args(argv)
    scale = args.time_scale or (TINY_SCALE if args.tiny else SCALE)
    if not 0 < scale <= 1:
        parser.error("--time-scale must be in (0, 1]")
    pin_client(0)
    with simulator_process("--realistic-durations", "--time-scale", repr(scale), "--seed", str(args.seed)) as base_url:
        runs = measure(base_url, scale, args.repeat, args.tiny)
    rows = summarize(runs)
    print(machine_line())
    print_table(
        TITLE,
        COLUMNS,
        [
            [
                row["strategy"],
                row["n_max"],
                row["vs_best"],
                row["cap"],
                row["detection_p95"],
                row["polls_per_job"],
                row["requests_per_second"],
                row["limited_by"],
            ]
            for row in rows
        ],
        notes(rows, runs, scale),
    )
    write_json(
        args.json,
        "budget",
        {"time_scale": scale, "seed": args.seed, "repeat": args.repeat, "rows": rows, "runs": runs},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
