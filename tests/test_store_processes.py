"""Real processes sharing a store: one request budget for all of them, and a 429 that pauses them all.

Each worker process runs its own FastRouterSession with ``store=`` against the simulator this test
serves; the simulator's records say what arrived when. SQLite always; Redis where a redis-server can
be started (skipped, saying why, elsewhere).
"""

from __future__ import annotations

from pathlib import Path

import anyio

from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan, SimulatorServer

from ._store_workers import worker_command

ROOT = Path(__file__).resolve().parent.parent


async def _run(commands: list[list[str]]) -> list[str]:
    outputs: list[str] = [""] * len(commands)

    async def run(index: int, command: list[str]) -> None:
        done = await anyio.run_process(command, cwd=ROOT, check=False)
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
        outputs[index] = done.stdout.decode()

    async with anyio.create_task_group() as tg:
        for index, command in enumerate(commands):
            tg.start_soon(run, index, command)
    return outputs


async def test_one_request_budget_for_every_process(
    sim: FastRouterSimulator, server: SimulatorServer, store_url: str
) -> None:
    """Three processes with request_budget=30 on one store send about 30 requests/s together, not 90."""
    sim.default_plan = JobPlan(polls=1_000_000)  # held running: every status() is one more request
    rate, seconds = 30.0, 3.0
    await _run([worker_command("poll", server.base_url, store_url, rate, seconds) for _ in range(3)])
    times = sorted(r.time for r in sim.records.requests if r.route in ("submit", "poll"))
    # The steady part: from the moment all three run until the first stops (start-up and the
    # bucket's initial burst left out).
    steady = [t for t in times if times[0] + 1.0 <= t <= times[-1] - 0.5]
    span = steady[-1] - steady[0]
    measured = (len(steady) - 1) / span
    assert rate * 0.9 <= measured <= rate * 1.1, f"{measured:.1f} requests/s for a shared budget of {rate:g}"


async def test_a_429_to_one_process_pauses_all(
    sim: FastRouterSimulator, server: SimulatorServer, store_url: str
) -> None:
    """After a 429 with Retry-After 1 s to one process, no process sends a request until it is over."""
    sim.default_plan = JobPlan(polls=150)  # polled every 10 ms: about 1.5 s of polls per job
    sim.inject(Fault.rate_limit(route="poll", retry_after=1.0, skip=60))
    await _run([worker_command("wait", server.base_url, store_url, 2) for _ in range(3)])
    refused = [r for r in sim.records.requests if r.status == 429]
    assert len(refused) >= 1
    first = refused[0].time
    # Requests already on their way when the 429 was answered may still arrive (one per job at most).
    during = [r for r in sim.records.requests if first < r.time < first + 0.9]
    assert len(during) <= 6, f"{len(during)} requests arrived during the shared pause"
    assert sim.records.jobs_created == 6
