"""Request cost: job.status() calls per second against a bare aiohttp loop and an httpx loop.

Run it from the repository root, after ``make test`` (or ``make bench``)::

    .venv/bin/python benchmarks/request_cost.py                  # 1,000 jobs, 20,000 requests each, 3 runs
    .venv/bin/python benchmarks/request_cost.py --requests 50000 --repeat 5
    .venv/bin/python benchmarks/request_cost.py --profile        # our contender alone, under pyinstrument
    .venv/bin/python benchmarks/request_cost.py --layers         # where ours spends: layer by layer

Goal: ``job.status()`` reaches at least 95 % of the bare aiohttp rate at no
more than 1/0.95 of its client CPU per request (bare aiohttp's CPU at least
0.95 of ours), and at least 5 times the httpx rate.

One simulator process (``--hold``: every job stays running, so every answer is
a "processing" status) is pinned to core 1, this process to core 0. 1,000 jobs
are submitted with a :class:`FastRouterSession`; then each contender sends
``--requests`` status requests from 64 concurrent workers cycling over the task
ids, after a warm-up of ``--warmup`` requests:

- **ours**: ``await job.status()`` on the job handles from ``submit``;
- **bare aiohttp**: one ``aiohttp.ClientSession`` (default connector, 100
  connections), ``async with s.post(url, json=..., headers=...) as r: await r.json()``
  with the body our client posts to ``{base}/getVideoResponse``: the practical limit;
- **httpx**: one ``httpx.AsyncClient`` (100 connections, all kept alive, as
  aiohttp does), ``(await c.post(url, json=..., headers=...)).json()``.

``--layers`` adds three contenders that stop part of the way down our own path, over the
same jobs: **transport only** (the session's transport sends the job's poll request and reads
the answer's bytes, nothing decoded), **+ budget** (the request budget's check before it),
**+ answer read** (one poll of the session's API: the answer decoded as untrusted JSON and
interpreted into a ``JobStatus``); **ours** adds the job's bookkeeping to that. Their rows are
the measured ceiling of each layer against the bare loop.

Within each run the measured requests go in ``--slices`` turns that the
contenders take in alternation (the order rotates between runs), so drift on a
shared machine hits them alike. Each row shows the median over runs of requests
per second and of CPU time per request, of this process (``time.process_time()``)
and of the simulator process: the client's figure is its own cost even when the
simulator is what limits the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import httpx
from _harness import (
    API_KEY,
    base_parser,
    machine_line,
    median,
    pin_client,
    print_table,
    simulator_cpu_seconds,
    simulator_process,
    write_json,
)

from fastrouter_async import FastRouterSession, VideoJob

MODEL = "google/veo3-fast"
CONCURRENCY = 64
CONNECTIONS = 100  # aiohttp's default pool, and our session's: httpx gets the same
RATE_GOAL = 0.95  # ours / bare aiohttp, requests per second
CPU_GOAL = 0.95  # bare aiohttp / ours, client CPU per request
HTTPX_GOAL = 5.0  # ours / httpx, requests per second
TITLE = "request cost: job.status() against a bare aiohttp loop and an httpx loop"
COLUMNS = (
    "contender",
    "requests/s",
    "client CPU us/request",
    "simulator CPU us/request",
    "ours/this (rate)",
    "this/ours (client CPU)",
)

Send = Callable[[int], Awaitable[Any]]


async def drive(send: Send, total: int, concurrency: int = CONCURRENCY) -> tuple[float, float]:
    """Send ``total`` requests from ``concurrency`` workers; return (wall seconds, CPU seconds of this process)."""
    numbers = itertools.count()

    async def worker() -> None:
        while (i := next(numbers)) < total:
            await send(i)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - wall, time.process_time() - cpu


async def submit_jobs(session: FastRouterSession, count: int) -> list[VideoJob]:
    numbers = itertools.count()
    jobs: list[VideoJob] = []

    async def submitter() -> None:
        while (i := next(numbers)) < count:
            jobs.append(await session.submit(model=MODEL, prompt=f"request cost {i}"))

    await asyncio.gather(*(submitter() for _ in range(CONCURRENCY)))
    return jobs


class Contenders:
    """The ways of asking for a job's status, over the same jobs and the same simulator."""

    def __init__(
        self,
        base_url: str,
        jobs: Sequence[VideoJob],
        http: aiohttp.ClientSession,
        hx: httpx.AsyncClient,
        session: FastRouterSession,
    ):
        self.url = f"{base_url}/getVideoResponse"
        self.jobs = jobs
        self.ids = [job.task_id for job in jobs]
        self.http = http
        self.hx = hx
        self.headers = {"Authorization": f"Bearer {API_KEY}"}
        self.api = session._engine.api  # the layers below job.status(), for --layers
        self.calls = [self.api.poll_call(job.task_id, job.model) for job in jobs]

    async def ours(self, i: int) -> None:
        await self.jobs[i % len(self.jobs)].status()

    async def aiohttp(self, i: int) -> None:
        body = {"taskId": self.ids[i % len(self.ids)], "model": MODEL}
        async with self.http.post(self.url, json=body, headers=self.headers) as r:
            await r.json()

    async def httpx(self, i: int) -> None:
        body = {"taskId": self.ids[i % len(self.ids)], "model": MODEL}
        r = await self.hx.post(self.url, json=body, headers=self.headers)
        r.json()

    async def transport(self, i: int) -> None:
        await self.api.transport.request(self.calls[i % len(self.calls)])

    async def budget(self, i: int) -> None:
        await self.api.request(self.calls[i % len(self.calls)])

    async def answer(self, i: int) -> None:
        job = self.jobs[i % len(self.jobs)]
        await self.api.poll_once(job.task_id, job.model, self.calls[i % len(self.calls)])

    def by_name(self) -> dict[str, Send]:
        return {
            "ours": self.ours,
            "bare aiohttp": self.aiohttp,
            "httpx": self.httpx,
            "transport only": self.transport,
            "+ budget": self.budget,
            "+ answer read": self.answer,
        }


CONTENDERS = {  # --only names -> table names
    "ours": "ours",
    "aiohttp": "bare aiohttp",
    "httpx": "httpx",
    "transport": "transport only",
    "budget": "+ budget",
    "answer": "+ answer read",
}
DEFAULT_CONTENDERS = ("ours", "aiohttp", "httpx")
LAYERS = ("ours", "aiohttp", "transport", "budget", "answer")  # --layers


def _slices(total: int, count: int) -> list[int]:
    """``total`` split into ``count`` near-equal positive parts (fewer when ``total`` is smaller)."""
    count = max(1, min(count, total))
    return [total // count + (1 if i < total % count else 0) for i in range(count)]


async def measure(
    base_url: str,
    *,
    jobs: int,
    requests: int,
    warmup: int,
    repeat: int,
    slices: int = 1,
    only: Sequence[str] = DEFAULT_CONTENDERS,
) -> list[dict[str, Any]]:
    """Every run's figures: ``[{"run", "contender", "requests", "seconds", "cpu_seconds"}, ...]``."""
    runs: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with (
        FastRouterSession(API_KEY, base_url=base_url, max_concurrent_jobs=None) as session,
        aiohttp.ClientSession() as http,
        httpx.AsyncClient(limits=limits) as hx,
    ):
        everyone = Contenders(base_url, await submit_jobs(session, jobs), http, hx, session).by_name()
        contenders = {CONTENDERS[key]: everyone[CONTENDERS[key]] for key in only}
        names = list(contenders)
        for run in range(repeat):
            order = names[run % len(names) :] + names[: run % len(names)]
            totals = {name: {"seconds": 0.0, "cpu": 0.0, "simulator_cpu": 0.0} for name in names}
            for name in order:
                await drive(contenders[name], warmup)
            # The measured requests go in slices, the contenders taking turns slice by slice, so that a
            # machine whose load changes during the run slows every contender alike.
            for size in _slices(requests, slices):
                for name in order:
                    served_before = simulator_cpu_seconds(base_url)
                    seconds, cpu = await drive(contenders[name], size)
                    totals[name]["simulator_cpu"] += simulator_cpu_seconds(base_url) - served_before
                    totals[name]["seconds"] += seconds
                    totals[name]["cpu"] += cpu
            runs += [{"run": run, "contender": name, "requests": requests, **totals[name]} for name in order]
    return runs


def summarize(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median rate and CPU per request of each contender, and the paired (same-run) ratios to ours."""
    names = list(dict.fromkeys(run["contender"] for run in runs))
    by_run: dict[int, dict[str, dict[str, Any]]] = {}
    for run in runs:
        by_run.setdefault(run["run"], {})[run["contender"]] = run

    def rate(run: dict[str, Any]) -> float:
        return float(run["requests"] / run["seconds"])

    def cpu_us(run: dict[str, Any]) -> float:
        return float(run["cpu"] / run["requests"] * 1e6)

    rows = []
    for name in names:
        pairs = [(one["ours"], one[name]) if "ours" in one else (None, one[name]) for one in by_run.values()]
        mine = [run for _, run in pairs]
        row = {
            "contender": name,
            "requests_per_second": median([rate(r) for r in mine]),
            "cpu_us_per_request": median([cpu_us(r) for r in mine]),
            "simulator_cpu_us_per_request": median([r["simulator_cpu"] / r["requests"] * 1e6 for r in mine]),
            "ours_over_this_rate": math.nan,
            "this_over_ours_cpu": math.nan,
        }
        if all(ours is not None for ours, _ in pairs):
            row["ours_over_this_rate"] = median([rate(o) / rate(r) for o, r in pairs if o is not None])
            row["this_over_ours_cpu"] = median([cpu_us(r) / cpu_us(o) for o, r in pairs if o is not None])
        rows.append(row)
    return rows


def goal_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    ratio = {row["contender"]: row["ours_over_this_rate"] for row in rows}
    cpu = {row["contender"]: row["this_over_ours_cpu"] for row in rows}
    if "ours" not in ratio:
        return []
    lines = []
    for name, goal in (("bare aiohttp", RATE_GOAL), ("httpx", HTTPX_GOAL)):
        if name in ratio:
            verdict = "MET" if ratio[name] >= goal else "NOT MET"
            lines.append(f"goal: ours >= {goal:g} x {name} (requests/s): {verdict} ({ratio[name]:.2f})")
    if "bare aiohttp" in cpu:
        verdict = "MET" if cpu["bare aiohttp"] >= CPU_GOAL else "NOT MET"
        lines.append(
            f"goal: bare aiohttp's client CPU >= {CPU_GOAL:g} x ours (per request): {verdict} "
            f"({cpu['bare aiohttp']:.2f})"
        )
    return lines


async def profile(base_url: str, *, jobs: int, requests: int, warmup: int) -> str:
    """Our contender alone under pyinstrument (every task of the loop sampled); the profile as text."""
    from pyinstrument import Profiler  # noqa: PLC0415  (only with --profile)

    async with FastRouterSession(API_KEY, base_url=base_url, max_concurrent_jobs=None) as session:
        handles = await submit_jobs(session, jobs)

        async def ours(i: int) -> None:
            await handles[i % len(handles)].status()

        await drive(ours, warmup)
        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
        seconds, cpu = await drive(ours, requests)
        profiler.stop()
    head = (
        f"our contender alone: {requests} requests in {seconds:.2f} s ({requests / seconds:,.0f}/s), "
        f"{cpu / requests * 1e6:.0f} us CPU per request\n"
    )
    return head + profiler.output_text(unicode=False, color=False, show_all=False)


def _contender_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(CONTENDERS))
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"contenders are among {', '.join(CONTENDERS)}; not {', '.join(unknown)}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "request cost")
    parser.add_argument("--jobs", type=int, default=None, help="jobs submitted and cycled over (default 1000)")
    parser.add_argument("--requests", type=int, default=None, help="measured requests per contender (default 20000)")
    parser.add_argument("--warmup", type=int, default=None, help="requests before each measure (default 500)")
    parser.add_argument(
        "--slices", type=int, default=None, help="turns the contenders take within a run (default 10; --tiny 1)"
    )
    parser.add_argument("--profile", action="store_true", help="profile our contender alone and print the profile")
    parser.add_argument(
        "--only",
        type=_contender_names,
        default=None,
        help=f"contenders to run, among {','.join(CONTENDERS)} (default: {','.join(DEFAULT_CONTENDERS)})",
    )
    parser.add_argument(
        "--layers", action="store_true", help=f"where ours spends, layer by layer: --only {','.join(LAYERS)}"
    )
    args = parser.parse_args(argv)
    jobs = args.jobs or (100 if args.tiny else 1000)
    requests = args.requests or (300 if args.tiny else 20_000)
    warmup = args.warmup or (64 if args.tiny else 500)
    slices = args.slices or (1 if args.tiny else 10)
    pin_client(0)
    with simulator_process("--hold") as base_url:
        if args.profile:
            print(asyncio.run(profile(base_url, jobs=jobs, requests=requests, warmup=warmup)))
            return 0
        runs = asyncio.run(
            measure(
                base_url,
                jobs=jobs,
                requests=requests,
                warmup=warmup,
                repeat=args.repeat,
                slices=slices,
                only=args.only or (LAYERS if args.layers else DEFAULT_CONTENDERS),
            )
        )
    rows = summarize(runs)
    notes = [
        f"{jobs:,} jobs held running; per contender and run: {warmup:,} requests of warm-up, then {requests:,} "
        f"measured in {slices} turn(s) taken in alternation; {CONCURRENCY} concurrent",
        f"median of {args.repeat} run(s); ratios are medians of same-run ratios",
        "client pinned to core 0, simulator process to core 1; CPU is this process's time.process_time() per request",
        *goal_lines(rows),
    ]
    print(machine_line())
    print_table(
        TITLE,
        COLUMNS,
        [
            [
                row["contender"],
                row["requests_per_second"],
                row["cpu_us_per_request"],
                row["simulator_cpu_us_per_request"],
                row["ours_over_this_rate"],
                row["this_over_ours_cpu"],
            ]
            for row in rows
        ],
        notes,
    )
    write_json(
        args.json,
        "request_cost",
        {
            "jobs": jobs,
            "requests": requests,
            "warmup": warmup,
            "slices": slices,
            "concurrency": CONCURRENCY,
            "rows": rows,
            "runs": runs,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
