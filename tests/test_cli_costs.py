"""``fastrouter-video batch --dry-run`` and ``--max-spend``: the estimate sends nothing, the cap holds across runs."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fastrouter_async.testing import FastRouterSimulator, JobPlan, SimulatorServer

from ._sim import FakeClock
from .conftest import API_KEY
from .test_cli import batch_args, child_env, cli, read_manifest, run

__all__ = ["cli"]

KLING = {"model": "kling-ai/kling-v1-6", "length": 5}  # 0.21 in the shipped price table; the simulator bills 0.21


@pytest.fixture
def clock() -> FakeClock:
    """The simulator's clock, moved by the test: jobs with a duration end when it says so."""
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> FastRouterSimulator:
    """A simulator on the test's clock; jobs succeed at their first poll once their duration passed."""
    return FastRouterSimulator(api_key=API_KEY, default_plan=JobPlan(polls=1), clock=clock)


def _lines(tmp_path: Path, count: int, **fields: Any) -> Path:
    path = tmp_path / "jobs.jsonl"
    rows = [{"prompt": f"scene {i}", **KLING, **fields} for i in range(count)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


async def test_dry_run_prints_the_estimate_and_sends_nothing(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """--dry-run checks the file, prints the estimate per model and in total, and makes no request (no key needed)."""
    source = _lines(tmp_path, 2)
    with source.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"prompt": "unpriced", "model": "google/veo3"}) + "\n")
    code, child = await run(cli, *batch_args(server, source.name, "--dry-run"), env=child_env(key=False))
    assert code == 0, child.stdout + child.stderr
    assert "kling-ai/kling-v1-6: 2 x  $0.42  (shipped price table)" in child.stdout
    assert "google/veo3: 1 x  unknown  (unknown price)" in child.stdout
    assert "estimated total: $0.42 + 1 of unknown price" in child.stdout
    assert list(sim.records.requests) == []
    assert not (tmp_path / "out" / "journal.sqlite").exists()


async def test_dry_run_refuses_a_bad_file(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """--dry-run validates every line like a real run: a bad line exits 2 and nothing is sent."""
    source = _lines(tmp_path, 1, length=7)  # Kling takes 5 or 10 seconds
    code, child = await run(cli, *batch_args(server, source.name, "--dry-run"))
    assert code == 2, child.stdout + child.stderr
    assert "length" in child.stderr
    assert list(sim.records.requests) == []


async def test_max_spend_stops_the_batch_and_a_higher_cap_continues(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Under --max-spend the job that would go over and those after it are not sent (the manifest says why);
    the same command with a higher cap sends only what now fits."""
    source = _lines(tmp_path, 5)
    code, child = await run(cli, *batch_args(server, source.name, "--concurrency", "1", "--max-spend", "0.5"))
    assert code == 1, child.stdout + child.stderr
    rows = read_manifest(tmp_path / "out")
    assert [row["status"] for row in rows] == ["succeeded"] * 2 + ["not_sent"] * 3
    assert rows[2]["error"] is not None
    assert "spend cap $0.50 reached" in rows[2]["error"]
    assert [row["estimated_usd"] for row in rows] == [0.21] * 5
    assert [row["cost_kind"] for row in rows] == ["final"] * 2 + ["free"] * 3
    assert "with a higher --max-spend" in child.stdout
    assert "total cost: $0.42" in child.stdout
    assert "spent $0.42, reserved $0.00, rest ~$0.00 (cap $0.50)" in child.stdout  # the last progress line
    assert "estimated:  $1.05 for the whole file; cap $0.50" in child.stdout
    assert len(sim.jobs) == 2

    code, child = await run(cli, *batch_args(server, source.name, "--concurrency", "1", "--max-spend", "1.05"))
    assert code == 0, child.stdout + child.stderr
    assert [row["status"] for row in read_manifest(tmp_path / "out")] == ["succeeded"] * 5
    assert len(sim.jobs) == 5


async def test_unknown_price_needs_an_assumed_price_under_a_cap(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A model of unknown price is not sent under --max-spend; --unknown-price USD reserves that much for it."""
    source = tmp_path / "veo.jsonl"
    source.write_text(json.dumps({"prompt": "a cat", "model": "google/veo3"}) + "\n", encoding="utf-8")
    code, child = await run(cli, *batch_args(server, source.name, "--max-spend", "5"))
    assert code == 1
    assert read_manifest(tmp_path / "out")[0]["status"] == "not_sent"
    assert len(sim.jobs) == 0
    code, child = await run(cli, *batch_args(server, source.name, "--max-spend", "5", "--unknown-price", "1"))
    assert code == 0, child.stdout + child.stderr
    assert len(sim.jobs) == 1


async def test_sigkill_and_rerun_never_exceed_the_cap(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, clock: FakeClock, tmp_path: Path
) -> None:
    """Killed with SIGKILL while the jobs under the cap run, the re-run counts them (from the journal) and
    sends nothing more under the same cap; a higher cap then sends the rest."""
    sim.default_plan = JobPlan(polls=1, duration=60)  # running until the test moves the clock
    source = _lines(tmp_path, 6)
    args = batch_args(server, source.name, "--max-spend", "0.63")
    first = await cli(*args)
    records = sim.records
    await first.until(
        lambda: len(sim.jobs) == 3 and all(r.status is not None for r in records.submits) and len(records.polls) > 3,
        "three jobs submitted and polled",
    )
    first.process.send_signal(signal.SIGKILL)
    assert await first.finish() == -signal.SIGKILL
    assert len(sim.jobs) == 3

    clock.now += 100.0  # the three jobs are done now
    sim.default_plan = JobPlan(polls=1)  # and new ones end at once
    code, child = await run(cli, *args)
    assert code == 1, child.stdout + child.stderr
    rows = read_manifest(tmp_path / "out")
    assert sorted(row["status"] for row in rows) == ["not_sent"] * 3 + ["succeeded"] * 3
    assert len(sim.jobs) == 3
    assert sum(job.plan.cost_usd or 0 for job in sim.jobs.values()) <= 0.63 + 1e-9

    code, child = await run(cli, *batch_args(server, source.name, "--max-spend", "1.26"))
    assert code == 0, child.stdout + child.stderr
    assert len(sim.jobs) == 6


async def test_what_was_paid_is_kept_for_the_next_estimate(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A batch keeps what its jobs cost in DIR/costs.json; the next --dry-run into DIR estimates from it."""
    source = tmp_path / "veo.jsonl"
    source.write_text(json.dumps({"prompt": "a cat", "model": "google/veo3", "length": 8}) + "\n", encoding="utf-8")
    code, child = await run(cli, *batch_args(server, source.name))
    assert code == 0, child.stdout + child.stderr
    assert json.loads((tmp_path / "out" / "costs.json").read_text())["paid_usd"] == {"google/veo3 length=8": 0.21}
    submits = sim.records.submit_count
    code, child = await run(cli, *batch_args(server, source.name, "--dry-run"))
    assert code == 0, child.stdout + child.stderr
    assert "google/veo3: 1 x  $0.21  (paid before)" in child.stdout
    assert sim.records.submit_count == submits
