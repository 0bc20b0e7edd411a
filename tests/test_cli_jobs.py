"""The batch command tells the truth about each job: account errors stop it, each kind of job gets its own
next step, jobs of the journal that are not in the file are named, and ``jobs DIR`` lists them all."""

from __future__ import annotations

import shlex
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan, SimulatorServer

from .conftest import API_KEY
from .test_cli import batch_args, cli, prompts_file, read_manifest, run

__all__ = ["cli"]


class Clock:
    """The simulator's clock, which a test can move forward (jobs with a duration then end at once)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return anyio.current_time() + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> FastRouterSimulator:
    """The shared simulator, on a clock the test can move."""
    return FastRouterSimulator(api_key=API_KEY, default_plan=JobPlan(polls=1), clock=clock)


async def test_wrong_key_stops_the_batch_after_one_refusal(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A 401 on the first submit: one request sent, one clear message, the rest never sent (not 'failed')."""
    sim.inject(Fault.status(401, route="submit", times=None))
    source = prompts_file(tmp_path, [f"scene {i}" for i in range(20)])
    code, child = await run(cli, *batch_args(server, source.name, "--concurrency", "1"))
    assert code == 1, child.stdout + child.stderr
    assert sim.records.submit_count == 1
    assert "20 jobs: 0 succeeded, 0 failed, 0 uncertain, 20 not sent" in child.stdout
    assert "refused the API key (401)" in child.stdout
    assert "--retry-failed" not in child.stdout
    assert child.stdout.count("not_sent") == 0  # no event line per job: one message names the cause
    rows = read_manifest(tmp_path / "out")
    assert {row["status"] for row in rows} == {"not_sent"}
    assert {row["task_id"] for row in rows} == {None}

    sim.clear_faults()  # the key is fixed: a plain re-run submits all 20
    code, child = await run(cli, *batch_args(server, source.name))
    assert code == 0, child.stdout + child.stderr
    assert sim.records.jobs_created == 20


async def test_summary_tells_failed_from_never_sent(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A job that ran and failed needs --retry-failed; a refused submit needs only a plain re-run."""
    sim.plan_for("moderation", JobPlan(outcome="failed", error="flagged"))
    sim.inject(Fault.status(400, route="submit", times=1))
    source = prompts_file(tmp_path, ["a refused one", "a moderation case", "a fine one"])
    code, child = await run(cli, *batch_args(server, source.name, "--concurrency", "1"))
    assert code == 1
    assert "3 jobs: 1 succeeded, 1 failed, 0 uncertain, 1 not sent" in child.stdout
    assert "1 failed: the jobs ran and failed" in child.stdout
    assert "1 not sent: never created on FastRouter (nothing billed). Run the same command again" in child.stdout
    code, child = await run(cli, *batch_args(server, source.name))
    assert sim.records.jobs_created == 3  # the plain re-run submitted the refused one, not the failed one
    assert "3 jobs: 2 succeeded, 1 failed, 0 uncertain" in child.stdout


async def test_jobs_of_another_file_are_named_kept_and_listed(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path, clock: Clock
) -> None:
    """Ctrl-C, edit a prompt, run again: the orphaned running job is named, kept in the manifest, and listed."""
    sim.default_plan = JobPlan(duration=30.0)
    source = prompts_file(tmp_path, ["a cat", "a dog"])
    first = await cli(*batch_args(server, source.name))
    await first.until(lambda: sim.records.jobs_created == 2, "two jobs created")
    first.process.send_signal(signal.SIGINT)
    assert await first.finish() == 130
    dog_task = next(job.task_id for job in sim.jobs.values() if job.prompt == "a dog")

    sim.default_plan = JobPlan()
    clock.offset += 60  # the two jobs have finished meanwhile; nobody has looked
    prompts_file(tmp_path, ["a cat", "a dog, edited"])
    code, child = await run(cli, *batch_args(server, source.name))
    assert code == 0, child.stdout + child.stderr
    assert "1 job in the journal is not in prompts.jsonl" in child.stdout
    assert "it was submitted (running or paid)" in child.stdout
    command = shlex.join(
        ["fastrouter-video", "download", dog_task, "--model", "google/veo3", "-o", str(Path("out") / f"{dog_task}.mp4"),
         "--base-url", server.base_url]
    )  # fmt: skip
    assert command in child.stdout
    rows = read_manifest(tmp_path / "out")
    orphan = [row for row in rows if not row["in_batch_file"]]
    assert [(row["prompt"], row["task_id"], row["status"]) for row in orphan] == [("a dog", dog_task, "running")]

    code, listing = await run(cli, "jobs", "out")
    assert code == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0] == "index\ttask id\tmodel\tstate\tfile\tcost"
    assert any(line.startswith(f"1\t{dog_task}\tgoogle/veo3\trunning") for line in lines)
    assert "3 jobs: 1 running, 2 succeeded" in listing.stdout
    assert API_KEY not in listing.stdout + listing.stderr

    code, commands = await run(cli, "jobs", "out", "--download-commands", "--base-url", server.base_url)
    assert commands.stdout.splitlines() == [command]
    code, fetched = await run(cli, *shlex.split(command)[1:], "--poll-interval", "0.005")
    assert code == 0, fetched.stderr
    assert sim.records.jobs_created == 3


async def test_jobs_reads_a_journal_in_use(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """jobs DIR works while a batch holds the journal's lock, and a missing journal is a usage error."""
    sim.default_plan = JobPlan(duration=30.0)
    source = prompts_file(tmp_path, ["a cat", "a dog"])
    first = await cli(*batch_args(server, source.name))
    await first.until(lambda: sim.records.jobs_created == 2, "two jobs created")
    code, listing = await run(cli, "jobs", "out")
    assert code == 0, listing.stderr
    assert "2 jobs: 2 running" in listing.stdout
    first.process.send_signal(signal.SIGINT)
    assert await first.finish() == 130
    code, missing = await run(cli, "jobs", "nowhere")
    assert code == 2
    assert "no journal at" in missing.stderr


async def test_manifest_after_kill_9_lists_every_submitted_job(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Killed with SIGKILL before any job ended, the batch still leaves a manifest naming each job's task id."""
    sim.default_plan = JobPlan(duration=30.0)
    source = prompts_file(tmp_path, ["a cat", "a dog", "a fox"])
    child = await cli(*batch_args(server, source.name))
    manifest = tmp_path / "out" / "manifest.jsonl"

    def all_named() -> bool:
        if sim.records.jobs_created < 3 or not manifest.exists():
            return False
        return all(row["task_id"] for row in read_manifest(tmp_path / "out"))

    await child.until(all_named, "a manifest naming three running jobs")
    child.process.send_signal(signal.SIGKILL)
    await child.finish()
    rows = read_manifest(tmp_path / "out")
    assert {row["task_id"] for row in rows} == set(sim.jobs)
    assert {row["status"] for row in rows} == {"running"}
