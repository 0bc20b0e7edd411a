"""The fastrouter-video command line, run as a subprocess against a simulator served by the test.

The child talks HTTP to the test's simulator over loopback, so the test can count
what the server saw across several runs of the same command (crashes included).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import os
import random
import re
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from fastrouter_async import FastRouterSession, JobState
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan, SimulatorServer, sample_video

from .conftest import API_KEY, FAST_POLL, FAST_RETRY, FAST_TIMEOUTS

CHILD_TIMEOUT = 60.0  # generous for a loaded CI machine; a healthy run takes about a second
POLL = ("--poll-interval", "0.005")
EVENT = re.compile(r"^\[\s*[\d.]+s\] (succeeded|failed|uncertain|skipped) ")


class Child:
    """A running ``python -m fastrouter_async ...``, its output collected line by line as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.out: list[str] = []
        self.err: list[str] = []
        assert process.stdout is not None
        assert process.stderr is not None
        self._pumps = [
            asyncio.ensure_future(_pump(process.stdout, self.out)),
            asyncio.ensure_future(_pump(process.stderr, self.err)),
        ]

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def events(self) -> list[str]:
        return [line for line in self.out if EVENT.match(line)]

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        """Wait (1 ms steps) until ``condition()`` holds; fail if the child ends first."""
        async with asyncio.timeout(CHILD_TIMEOUT):
            while not condition():
                if self.process.returncode is not None:
                    await self.finish()
                    pytest.fail(f"the command ended before {what}:\n{self.stdout}\n{self.stderr}")
                await asyncio.sleep(0.001)

    async def finish(self) -> int:
        """Wait for the child to end and for its output to be read; return its exit code."""
        async with asyncio.timeout(CHILD_TIMEOUT):
            code = await self.process.wait()
            await asyncio.gather(*self._pumps)
        return code

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.finish()


async def _pump(stream: asyncio.StreamReader, into: list[str]) -> None:
    while line := await stream.readline():
        into.append(line.decode())


def child_env(*, key: bool = True) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("FASTROUTER_")}
    if key:
        env["FASTROUTER_API_KEY"] = API_KEY
    env["XDG_CACHE_HOME"] = "/nonexistent/fastrouter-cli-cache"  # never a real user's refreshed model list
    return env


@pytest.fixture
async def cli(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start the command line in a subprocess (cwd: tmp_path); every child is ended by the end of the test."""
    children: list[Child] = []

    async def start(*args: str, env: Mapping[str, str] | None = None) -> Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fastrouter_async",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(child_env() if env is None else env),
            cwd=tmp_path,
        )
        child = Child(process)
        children.append(child)
        return child

    yield start
    for child in children:
        await child.kill()


async def run(start: Callable[..., Any], *args: str, env: Mapping[str, str] | None = None) -> tuple[int, Child]:
    child: Child = await start(*args, env=env)
    return await child.finish(), child


def batch_args(server: SimulatorServer, source: str | Path, *extra: str, out: str = "out") -> tuple[str, ...]:
    """``batch SOURCE --model google/veo3 --out OUT`` against ``server``, polling every 5 ms."""
    return ("batch", str(source), "--model", "google/veo3", "--out", out, "--base-url", server.base_url, *POLL, *extra)


def generate_args(server: SimulatorServer, prompt: str) -> tuple[str, ...]:
    return ("generate", prompt, "--model", "google/veo3", "--base-url", server.base_url, *POLL)


def read_manifest(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def prompts_file(tmp_path: Path, prompts: list[str], name: str = "prompts.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts), encoding="utf-8")
    return path


def plan_numbered_jobs(sim: FastRouterSimulator, count: int, rng: random.Random, longest: float) -> dict[str, bytes]:
    """``count`` jobs with their own prompt, duration and video bytes; returns the video of each prompt."""
    videos: dict[str, bytes] = {}
    for number in range(count):
        prompt = f"job {number:02d}: a fox crossing a frozen river"
        video = sample_video() + f"\n-- job {number:02d} --".encode()
        videos[prompt] = video
        sim.plan_for(_prompt_is(prompt), JobPlan(duration=rng.uniform(0.0, longest), video=video))
    return videos


def _prompt_is(prompt: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda body: body.get("prompt") == prompt


def submits_by_prompt(sim: FastRouterSimulator) -> collections.Counter[str]:
    return collections.Counter(record.json["prompt"] for record in sim.records.submits)


def jobs_by_prompt(sim: FastRouterSimulator) -> collections.Counter[str]:
    return collections.Counter(job.prompt for job in sim.jobs.values())


def assert_videos(folder: Path, rows: list[dict[str, Any]], videos: Mapping[str, bytes]) -> None:
    """Each succeeded row names a file in ``folder`` holding exactly its job's video."""
    for row in rows:
        if row["status"] != "succeeded":
            continue
        expected = videos[row["prompt"]]
        data = (folder / row["file"]).read_bytes()
        assert (row["sha256"], row["bytes"]) == (sha256(expected), len(expected)), row
        assert data == expected, row


MANIFEST_FIELDS = ["index", "line", "prompt", "model", "task_id", "status", "file", "bytes", "sha256", "cost_usd"]
MANIFEST_FIELDS += ["found_again", "cache_key", "estimate_credits", "estimate_usd", "error"]
MANIFEST_FIELDS += ["estimated_usd", "cost_kind", "in_batch_file"]

# -- bad batch files -------------------------------------------------------------------------------------

BAD_FILES = [
    pytest.param("p.yaml", "- a cat\n", "p.yaml: unknown file type '.yaml': use .txt", id="unknown-extension"),
    pytest.param(
        "p.jsonl",
        '{"prompt": "a cat"}\n{"prompt": "a dog",\n{"prompt": "a fox"}\n',
        "p.jsonl:2: malformed JSON: Expecting property name enclosed in double quotes (column 20)",
        id="malformed-json",
    ),
    pytest.param(
        "p.jsonl",
        '{"prompt": "a cat", "length": 8}\n{"prompt": "a dog", "length": 12}\n',
        "p.jsonl:2: field length: value 12: allowed values are 4, 6, 8 (model google/veo3)",
        id="length-out-of-range",
    ),
    pytest.param(
        "p.csv",
        "prompt,length,seed\na cat,8,1\na dog,8,one\n",
        "p.csv:3: field seed: value 'one': a whole number",
        id="csv-bad-int",
    ),
]


@pytest.mark.parametrize(("name", "content", "expected"), BAD_FILES)
async def test_bad_batch_file_is_refused_and_nothing_is_sent(
    cli: Callable[..., Any],
    server: SimulatorServer,
    sim: FastRouterSimulator,
    tmp_path: Path,
    name: str,
    content: str,
    expected: str,
) -> None:
    """A bad batch file is reported with its line and field, exit code 2, and the server sees no request at all."""
    (tmp_path / name).write_text(content, encoding="utf-8")
    code, child = await run(cli, *batch_args(server, name, out="videos"))
    assert code == 2, child.stderr
    assert expected in child.stderr
    assert "nothing was submitted" in child.stderr
    assert sim.records.requests == []
    assert not (tmp_path / "videos").exists()


# -- batch runs ------------------------------------------------------------------------------------------


async def test_batch_writes_videos_manifest_and_summary(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A batch downloads every video, writes one manifest line per job, reports failures, and exits 1 if any."""
    videos = plan_numbered_jobs(sim, 6, random.Random(1), longest=0.02)
    prompts = list(videos)
    sim.plan_for("moderation", JobPlan(outcome="failed", error="input flagged by content moderation"))
    source = prompts_file(tmp_path, [*prompts[:3], "a moderation test", *prompts[3:]])
    code, child = await run(cli, *batch_args(server, source.name, out="videos"))
    assert code == 1, child.stdout + child.stderr
    rows = read_manifest(tmp_path / "videos")
    assert [row["index"] for row in rows] == list(range(7))
    assert [row["line"] for row in rows] == list(range(1, 8))
    assert [row["status"] for row in rows] == ["succeeded"] * 3 + ["failed"] + ["succeeded"] * 3
    assert rows[3]["error"] == "input flagged by content moderation"
    assert rows[3]["task_id"] in sim.jobs
    assert list(rows[0]) == MANIFEST_FIELDS
    assert_videos(tmp_path / "videos", rows, videos)
    assert rows[0]["file"] == "0001-job-00-a-fox-crossing-a-frozen-river.mp4"
    assert rows[0]["cost_usd"] == 0.21
    assert len(child.events()) == 7
    assert re.search(r"failed +#3 line 4 +fr_\w+ +input flagged by content moderation", child.stdout)
    assert "7 jobs: 6 succeeded, 1 failed, 0 uncertain" in child.stdout
    assert "total cost: $1.26" in child.stdout
    assert f"manifest:   {Path('videos') / 'manifest.jsonl'}" in child.stdout
    assert "--retry-failed" in child.stdout

    again, child = await run(cli, *batch_args(server, source.name, out="videos"))
    assert again == 1
    assert sim.records.submit_count == 7  # nothing submitted again
    assert "7 finished in an earlier run" in child.stdout
    assert read_manifest(tmp_path / "videos") == rows

    (tmp_path / "videos" / rows[1]["file"]).unlink()  # a finished video lost: fetched again, not generated again
    again, child = await run(cli, *batch_args(server, source.name, out="videos"))
    assert again == 1
    assert sim.records.submit_count == 7
    assert read_manifest(tmp_path / "videos") == rows
    assert_videos(tmp_path / "videos", rows, videos)


async def test_batch_keeps_learned_durations_for_the_next_run(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A batch saves what it learned about durations beside its journal; the next run starts from it."""
    sim.default_plan = JobPlan(polls=3)
    source = prompts_file(tmp_path, [f"prompt {i}" for i in range(4)])
    code, child = await run(cli, *batch_args(server, source.name, out="videos"))
    assert code == 0, child.stdout + child.stderr
    learned = json.loads((tmp_path / "videos" / "durations.json").read_text(encoding="utf-8"))
    assert learned["durations"]["google/veo3"]["jobs"] == 4

    (tmp_path / "videos" / "durations.json").write_text("{not json", encoding="utf-8")
    more = prompts_file(tmp_path, [f"prompt {i}" for i in range(6)])
    code, child = await run(cli, *batch_args(server, more.name, out="videos"))
    assert code == 0, child.stdout + child.stderr
    assert "ignoring" in child.stderr
    assert "built-in priors" in child.stderr
    learned = json.loads((tmp_path / "videos" / "durations.json").read_text(encoding="utf-8"))
    assert learned["durations"]["google/veo3"]["jobs"] == 2  # the bad file was replaced by this run's knowledge

    most = prompts_file(tmp_path, [f"prompt {i}" for i in range(7)])
    code, child = await run(cli, *batch_args(server, most.name, out="videos"))
    assert code == 0, child.stdout + child.stderr
    learned = json.loads((tmp_path / "videos" / "durations.json").read_text(encoding="utf-8"))
    assert learned["durations"]["google/veo3"]["jobs"] == 3  # started from the 2 saved, plus the 1 new job


async def test_batch_identical_prompts_are_different_jobs(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """The same prompt on two lines is two jobs and two files, and a re-run submits neither again."""
    (tmp_path / "p.txt").write_text("# twice\na cat surfing\n\na cat surfing\n", encoding="utf-8")
    args = batch_args(server, "p.txt")
    code, child = await run(cli, *args)
    assert code == 0, child.stdout + child.stderr
    rows = read_manifest(tmp_path / "out")
    assert [(row["line"], row["file"]) for row in rows] == [
        (2, "0001-a-cat-surfing.mp4"),
        (4, "0002-a-cat-surfing.mp4"),
    ]
    assert rows[0]["task_id"] != rows[1]["task_id"]
    code, _ = await run(cli, *args)
    assert code == 0
    assert sim.records.jobs_created == 2


async def test_batch_concurrency_and_csv(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """--concurrency caps the jobs in flight, CSV columns reach the server typed, --journal moves the journal."""
    sim.default_plan = JobPlan(duration=0.02)
    rows = "".join(f"clip {n},{4 + 2 * (n % 3)},{n},true\n" for n in range(12))
    (tmp_path / "p.csv").write_text("prompt,length,seed,generateAudio\n" + rows, encoding="utf-8")
    options = ("--concurrency", "3", "--rps", "500", "--journal", "state/batch.sqlite")
    code, child = await run(cli, *batch_args(server, "p.csv", *options))
    assert code == 0, child.stdout + child.stderr
    assert sim.records.max_in_flight <= 3
    assert sim.records.jobs_created == 12
    assert (tmp_path / "state" / "batch.sqlite").is_file()
    assert not (tmp_path / "out" / "journal.sqlite").exists()
    assert f"journal:    {Path('state') / 'batch.sqlite'}" in child.stdout
    first = sim.records.submits[0].json
    assert {k: first[k] for k in ("length", "seed", "generateAudio")} == {"length": 4, "seed": 0, "generateAudio": True}


async def test_a_lost_submit_answer_is_replayed_and_billed_once(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A submit whose answer is lost is sent again with its cache key: found again, billed once, nothing uncertain."""
    source = prompts_file(tmp_path, ["a cat", "a dog", "a fox"])
    sim.inject(Fault.drop(route="submit", after_processing=True, skip=1))  # the job is created, its answer lost
    code, child = await run(cli, *batch_args(server, source.name, "--concurrency", "1"))
    assert code == 0, child.stdout + child.stderr
    rows = read_manifest(tmp_path / "out")
    assert [row["status"] for row in rows] == ["succeeded"] * 3
    assert [row["found_again"] for row in rows] == [False, True, False]
    assert all(row["cache_key"] for row in rows)
    assert sim.records.billed_count == 3
    assert "1 found again by replay (not billed twice)" in child.stdout
    assert "total cost: $0.63" in child.stdout  # three jobs, each counted once


async def test_uncertain_submit_past_the_window_is_left_alone_until_asked(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Past --replay-window a lost submit stays uncertain, until --resubmit-uncertain re-sends it with its key."""
    source = prompts_file(tmp_path, ["a cat", "a dog", "a fox"])
    sim.inject(Fault.drop(route="submit", after_processing=True, skip=1))
    args = batch_args(server, source.name, "--replay-window", "0.000001")
    code, child = await run(cli, *args)
    assert code == 1
    rows = read_manifest(tmp_path / "out")
    [uncertain] = [row for row in rows if row["status"] == "uncertain"]
    assert uncertain["task_id"] is None
    assert uncertain["cache_key"]
    assert "not sent again" in uncertain["error"]
    assert re.search(r"uncertain +#\d line \d", child.stdout)
    assert "--resubmit-uncertain" in child.stdout
    assert sim.records.submit_count == 3

    code, child = await run(cli, *args)
    assert code == 1
    assert sim.records.submit_count == 3  # left alone
    assert "past the replay window" in read_manifest(tmp_path / "out")[uncertain["index"]]["error"]

    code, child = await run(cli, *args, "--resubmit-uncertain")
    assert code == 0, child.stdout
    assert sim.records.submit_count == 4
    assert sim.records.submits[-1].headers["cache_key"] == uncertain["cache_key"]
    assert sim.records.billed_count == 3  # the job it had created was found again
    assert read_manifest(tmp_path / "out")[uncertain["index"]]["found_again"] is True
    assert jobs_by_prompt(sim) == {"a cat": 1, "a dog": 1, "a fox": 1}


async def test_no_replay_sends_no_key(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """--no-replay: no submit carries a cache key, and a lost answer stays uncertain, as without the feature."""
    source = prompts_file(tmp_path, ["a cat", "a dog"])
    sim.inject(Fault.drop(route="submit", after_processing=True, skip=1))
    code, _child = await run(cli, *batch_args(server, source.name, "--no-replay", "--concurrency", "1"))
    assert code == 1
    assert [record.headers.get("cache_key") for record in sim.records.submits] == [None, None]
    assert [row["status"] for row in read_manifest(tmp_path / "out")] == ["succeeded", "uncertain"]


async def test_a_replay_window_beyond_the_pending_timeout_is_refused(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """--replay-window above FastRouter's 30-minute pending timeout is a usage error; nothing is sent."""
    source = prompts_file(tmp_path, ["a cat"])
    code, child = await run(cli, *batch_args(server, source.name, "--replay-window", "1801"))
    assert code == 2
    assert "--replay-window 1801" in child.stderr
    assert sim.records.submit_count == 0


# -- crashes and interruptions ---------------------------------------------------------------------------

JOBS = 36
CAP = 5

# Where the first run is killed. Each is seeded: its random numbers (which event, which request)
# are the same on every run of the suite, so a failure reproduces.
KILL_POINTS = [
    pytest.param("events", 11, id="after-some-outcomes"),
    pytest.param("events", 12, id="after-more-outcomes"),
    pytest.param("submit-arrives", 13, id="as-a-submit-arrives"),
    pytest.param("held-submit-answer", 14, id="job-created-answer-not-yet-sent"),
    pytest.param("held-download", 15, id="mid-download"),
    pytest.param("polls", 16, id="after-some-polls"),
    pytest.param("budget", 17, id="submits-waiting-for-the-request-budget"),
    pytest.param("held-submit-answer", 18, id="job-created-answer-not-yet-sent-2"),
    pytest.param("held-submit-answers", 19, id="several-jobs-created-answers-held"),
    pytest.param("held-submit-answers", 20, id="several-jobs-created-answers-held-2"),
    pytest.param("submit-arrives", 21, id="as-another-submit-arrives"),
]


def _quiet_moment(sim: FastRouterSimulator, submits: int) -> Callable[[], bool]:
    """At least ``submits`` submits were answered a while ago, none is on its way, and a poll came last.

    Under a request budget the child journals a submit's intent and then waits for the budget
    before sending it: killed now, it leaves submits that were journaled but never sent.
    """

    def condition() -> bool:
        requests = list(sim.records.requests)
        answered = [r for r in requests if r.route == "submit" and (r.status is not None or r.dropped)]
        if len(answered) < submits or len(answered) < sim.records.submit_count:
            return False
        last = requests[-1]
        return last.route == "poll" and last.status is not None and sim.now() - answered[-1].time >= 0.01

    return condition


async def _kill_mid_batch(
    cli: Callable[..., Any], sim: FastRouterSimulator, args: tuple[str, ...], where: str, rng: random.Random
) -> None:
    """Start the batch, wait for the seeded kill point ``where``, and SIGKILL it there."""
    if where == "held-submit-answer":
        nth = rng.randint(8, 20)
        sim.inject(Fault.slow(30.0, route="submit", after_processing=True, skip=nth - 1))
    if where == "held-submit-answers":
        nth = rng.randint(5, 15)
        sim.inject(Fault.slow(30.0, route="submit", after_processing=True, skip=nth - 1, times=None))
    if where == "held-download":
        nth = rng.randint(5, 20)
        sim.inject(Fault.slow(30.0, route="download", skip=nth - 1))

    first = await cli(*args)
    records = sim.records
    if where == "events":
        count = rng.randint(3, 25)
        await first.until(lambda: len(first.events()) >= count, f"{count} outcomes")
    elif where == "submit-arrives":
        nth = rng.randint(6, 30)
        await first.until(lambda: records.submit_count >= nth, f"submit #{nth}")
    elif where == "held-submit-answer":
        await first.until(lambda: records.jobs_created >= nth, f"job #{nth} created")
    elif where == "held-submit-answers":
        held = rng.randint(2, CAP)
        await first.until(
            lambda: sum(r.status is None and not r.dropped for r in records.submits) >= held,
            f"{held} created jobs whose answers are held",
        )
    elif where == "held-download":
        await first.until(lambda: len(records.downloads) >= nth, f"download #{nth}")
    elif where == "polls":
        polls = rng.randint(20, 120)
        await first.until(lambda: len(records.polls) >= polls, f"{polls} polls")
    else:
        nth = rng.randint(5, 25)
        await first.until(_quiet_moment(sim, nth), f"a quiet moment after {nth} submits")
    first.process.send_signal(signal.SIGKILL)
    assert await first.finish() == -signal.SIGKILL
    sim.clear_faults()
    assert sim.records.billed_count == len(set(sim.records.billed_jobs))
    assert max(sim.billed_count(prompt=prompt) for prompt in set(jobs_by_prompt(sim)) or {""}) <= 1


def assert_billed_once_each(sim: FastRouterSimulator, rows: list[dict[str, Any]], videos: Mapping[str, bytes]) -> None:
    """The server billed exactly one job per line, and each line's job was created under that line's key."""
    assert {prompt: sim.billed_count(prompt=prompt) for prompt in videos} == dict.fromkeys(videos, 1)
    assert sim.records.billed_count == len(videos)
    stats = sim.cache_stats()["keys"]
    for row in rows:
        assert stats[row["cache_key"]]["billed"] == 1, row
        assert sim.jobs[row["task_id"]].cache_key == row["cache_key"], row


@pytest.mark.parametrize(("where", "seed"), KILL_POINTS)
async def test_sigkill_then_rerun_bills_each_job_once(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path, where: str, seed: int
) -> None:
    """Killed with SIGKILL mid-batch and run again: every job billed exactly once, every video intact, none uncertain.

    A kill between "intent journaled" and "task id journaled" leaves a job whose submit outcome is
    unknown: FastRouter may have created it (the kill landed inside the exchange) or not. The re-run
    sends it again with the cache key recorded for it: FastRouter answers the job it had created
    (found again, unbilled) or creates it now. Either way each line is billed once.
    """
    rng = random.Random(seed)
    videos = plan_numbered_jobs(sim, JOBS, rng, longest=0.06)
    source = prompts_file(tmp_path, list(videos))
    budget = ("--rps", "40") if where == "budget" else ()
    args = batch_args(server, source.name, "--concurrency", str(CAP), *budget)
    await _kill_mid_batch(cli, sim, args, where, rng)
    created_before = set(sim.jobs)

    code, second = await run(cli, *args)
    assert code == 0, second.stdout + second.stderr
    rows = read_manifest(tmp_path / "out")
    assert len(rows) == JOBS
    assert [row["status"] for row in rows] == ["succeeded"] * JOBS, second.stdout
    assert_videos(tmp_path / "out", rows, videos)
    assert_billed_once_each(sim, rows, videos)
    found_again = [row for row in rows if row["found_again"]]
    assert all(row["task_id"] in created_before for row in found_again)
    if where.startswith("held-submit-answer"):
        assert found_again, "the jobs created while their answers were held must be found again"
        assert f"{len(found_again)} found again by replay (not billed twice)" in second.stdout
    assert "uncertain" not in {row["status"] for row in rows}


@pytest.mark.parametrize(
    ("where", "seed"),
    [pytest.param("held-submit-answers", 31, id="answers-held"), pytest.param("events", 32, id="after-outcomes")],
)
async def test_sigkill_delete_the_journal_rerun_bills_nothing_twice(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path, where: str, seed: int
) -> None:
    """Killed, journal deleted, run again into the same folder: the same keys find every job, none billed twice."""
    rng = random.Random(seed)
    videos = plan_numbered_jobs(sim, JOBS, rng, longest=0.06)
    source = prompts_file(tmp_path, list(videos))
    args = batch_args(server, source.name, "--concurrency", str(CAP))
    await _kill_mid_batch(cli, sim, args, where, rng)
    created_before = set(sim.jobs)
    for path in (tmp_path / "out").glob("journal.sqlite*"):
        path.unlink()

    code, second = await run(cli, *args)
    assert code == 0, second.stdout + second.stderr
    rows = read_manifest(tmp_path / "out")
    assert [row["status"] for row in rows] == ["succeeded"] * JOBS, second.stdout
    assert_videos(tmp_path / "out", rows, videos)
    assert_billed_once_each(sim, rows, videos)
    assert {row["task_id"] for row in rows if row["found_again"]} == created_before


async def test_sigint_stops_cleanly_and_resumes(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Ctrl-C: exit 130, a resume hint, a consistent journal; running the command again finishes every job once."""
    videos = plan_numbered_jobs(sim, 24, random.Random(7), longest=0.1)
    source = prompts_file(tmp_path, list(videos))
    args = batch_args(server, source.name, "--concurrency", "4")
    first = await cli(*args)
    await first.until(lambda: len(first.events()) >= 5, "5 outcomes")
    first.process.send_signal(signal.SIGINT)
    assert await first.finish() == 130, first.stdout + first.stderr
    assert "To resume, run the same command again:" in first.stdout
    assert f"fastrouter-video {' '.join(args)}" in first.stdout
    rows = read_manifest(tmp_path / "out")
    statuses = collections.Counter(row["status"] for row in rows)
    assert statuses["running"] + statuses["not_sent"] > 0
    assert statuses["uncertain"] == 0
    submitted = {job.task_id for job in sim.jobs.values()}
    for row in rows:  # every submitted job appears with its task id; a null task id means never submitted
        assert (row["task_id"] is not None) == (row["status"] != "not_sent"), row
        assert row["task_id"] is None or row["task_id"] in submitted
    assert {row["task_id"] for row in rows} - {None} == submitted

    with sqlite3.connect(f"file:{tmp_path / 'out' / 'journal.sqlite'}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        twice = db.execute(
            "SELECT task_id FROM jobs WHERE task_id IS NOT NULL GROUP BY task_id HAVING COUNT(*) > 1"
        ).fetchall()
        assert twice == []
        states = dict(db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
    db.close()
    assert "submitting" not in states  # every submit on its way when Ctrl-C came was answered and recorded
    assert "uncertain" not in states

    code, second = await run(cli, *args)
    assert code == 0, second.stdout + second.stderr
    assert submits_by_prompt(sim) == dict.fromkeys(videos, 1)
    rows = read_manifest(tmp_path / "out")
    assert all(row["status"] == "succeeded" for row in rows)
    assert_videos(tmp_path / "out", rows, videos)


async def test_sigterm_stops_like_ctrl_c(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """SIGTERM stops a batch cleanly too, with exit code 143 and the resume hint."""
    sim.default_plan = JobPlan(duration=30.0)  # nothing finishes before the signal
    source = prompts_file(tmp_path, ["a cat", "a dog"])
    child = await cli(*batch_args(server, source.name))
    await child.until(lambda: sim.records.jobs_created == 2 and len(sim.records.polls) >= 2, "two jobs polled")
    child.process.send_signal(signal.SIGTERM)
    assert await child.finish() == 143
    assert "Stopped by SIGTERM" in child.stdout
    rows = read_manifest(tmp_path / "out")
    assert [row["status"] for row in rows] == ["running", "running"]
    assert {row["task_id"] for row in rows} == set(sim.jobs)  # the billed jobs keep their task ids
    assert "2 running: submitted" in child.stdout
    assert "--retry-failed" not in child.stdout


async def test_two_runs_cannot_share_a_journal(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A second run on a journal in use stops at once, sends nothing and leaves the first run's files alone."""
    sim.default_plan = JobPlan(duration=30.0)
    source = prompts_file(tmp_path, ["a cat", "a dog"])
    first = await cli(*batch_args(server, source.name))
    manifest = tmp_path / "out" / "manifest.jsonl"

    def both_running() -> bool:
        rows = read_manifest(tmp_path / "out") if manifest.exists() else []
        return len(rows) == 2 and all(row["status"] == "running" for row in rows)

    await first.until(both_running, "the first run's manifest naming its two jobs")
    code, second = await run(cli, *batch_args(server, source.name))
    assert code == 1
    assert "in use by another run" in second.stderr
    assert sim.records.submit_count == 2
    rows = read_manifest(tmp_path / "out")  # still the first run's: the second wrote nothing
    assert {(row["status"], row["task_id"] in sim.jobs) for row in rows} == {("running", True)}
    first.process.send_signal(signal.SIGINT)
    assert await first.finish() == 130


# -- one job at a time ---------------------------------------------------------------------------------


async def test_generate_prints_path_size_sha256_and_cost(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """generate submits once, shows the status changes and download, and prints the file's facts."""
    sim.default_plan = JobPlan(duration=0.3)  # running long enough for the display (10 looks a second) to see it
    options = "--length 8 --aspect-ratio 16:9 --audio --param negativePrompt=blurry --param cfg=7 -o out/cat.mp4"
    code, child = await run(cli, *generate_args(server, "a cat surfing"), *options.split())
    assert code == 0, child.stderr
    sent = {k: v for k, v in sim.records.submits[0].json.items() if k != "cache"}  # the generation parameters
    assert sent == {
        "model": "google/veo3",
        "prompt": "a cat surfing",
        "length": 8,
        "aspectRatio": "16:9",
        "generateAudio": True,
        "negativePrompt": "blurry",
        "cfg": 7,
    }
    data = (tmp_path / "out" / "cat.mp4").read_bytes()
    assert data == sample_video()
    assert f"path:   {Path('out') / 'cat.mp4'}" in child.stdout
    assert f"bytes:  {len(data)}" in child.stdout
    assert f"sha256: {sha256(data)}" in child.stdout
    assert "cost:   $0.21" in child.stdout
    assert "running (processing)" in child.stdout
    assert "downloaded 100%" in child.stdout


async def test_generate_refuses_invalid_request_and_reports_failure(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """An invalid parameter exits 2 before sending; a failed job exits 1 with the server's reason."""
    code, child = await run(cli, *generate_args(server, "a cat"), "--length", "12", "-o", "c.mp4")
    assert code == 2
    assert "field length: value 12: allowed values are 4, 6, 8 (model google/veo3)" in child.stderr
    assert sim.records.requests == []

    sim.plan_next(JobPlan(outcome="failed", error="input flagged by content moderation"))
    code, child = await run(cli, *generate_args(server, "a cat"), "-o", "c.mp4")
    assert code == 1
    assert "failed: input flagged by content moderation" in child.stderr
    assert not (tmp_path / "c.mp4").exists()


async def test_status_and_download(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """status makes one poll and prints the state (and URLs and cost once done); download waits and writes."""
    sim.default_plan = JobPlan(polls=2)
    async with FastRouterSession(API_KEY, base_url=server.base_url, poll_policy=FAST_POLL) as session:
        job = await session.submit(model="google/veo3", prompt="a cat")
    common = ("--model", "google/veo3", "--base-url", server.base_url, *POLL)

    code, child = await run(cli, "status", job.task_id, *common)
    assert code == 0, child.stderr
    assert "state:  running (processing)" in child.stdout
    assert len(sim.records.polls) == 1

    code, child = await run(cli, "download", job.task_id, *common, "-o", "v.mp4")
    assert code == 0, child.stderr
    assert (tmp_path / "v.mp4").read_bytes() == sample_video()
    assert f"sha256: {sha256(sample_video())}" in child.stdout

    code, child = await run(cli, "status", job.task_id, *common)
    assert "state:  succeeded" in child.stdout
    assert f"url:    {server.origin}/videos-content/{job.task_id}" in child.stdout
    assert "cost:   $0.21" in child.stdout

    code, child = await run(cli, "status", "fr_NOSUCHTASK", *common)
    assert code == 1
    assert "NotFoundError" in child.stderr


async def test_models_table_and_json(cli: Callable[..., Any]) -> None:
    """models lists every known model with its parameters, as a table or as JSON."""
    code, child = await run(cli, "models")
    assert code == 0
    veo3 = next(line for line in child.out if line.startswith("google/veo3 "))
    assert "length: 4, 6, 8" in veo3
    assert "720p, 1080p" in veo3
    code, child = await run(cli, "models", "--json")
    assert code == 0
    models = {row["id"]: row for row in json.loads(child.stdout)}
    assert models["google/veo3"]["durations"] == [4, 6, 8]
    assert models["openai/sora-2"]["duration_field"] == "seconds"
    assert models["openai/sora-2"]["sizes"] == ["720x1280", "1024x1792", "1280x720", "1792x1024"]
    assert models["runway/runway-gen-4-turbo"]["image"] == "required"


# -- simulate, simulator, key --------------------------------------------------------------------------


async def test_simulate_needs_no_key(cli: Callable[..., Any], tmp_path: Path) -> None:
    """--simulate runs generate and batch against an embedded simulator, without any key in the environment."""
    fast = ("--simulate", "--simulate-time-scale", "0", *POLL)
    env = child_env(key=False)
    code, child = await run(cli, "generate", "a cat", "--model", "google/veo3", "-o", "cat.mp4", *fast, env=env)
    assert code == 0, child.stderr
    assert (tmp_path / "cat.mp4").read_bytes() == sample_video()

    (tmp_path / "p.txt").write_text("a cat\na moderation test\na dog\n", encoding="utf-8")
    code, child = await run(cli, "batch", "p.txt", "--model", "google/veo3", "--out", "out", *fast, env=env)
    assert code == 1, child.stderr
    statuses = [row["status"] for row in read_manifest(tmp_path / "out")]
    assert statuses == ["succeeded", "failed", "succeeded"]


async def test_simulator_command_serves_until_ctrl_c(cli: Callable[..., Any], tmp_path: Path) -> None:
    """simulator serves the simulated API to other programs until Ctrl-C, then exits 0."""
    child: Child = await cli("simulator", "--port", "0", "--simulate-time-scale", "0")
    await child.until(lambda: "base URL:" in child.stdout, "the base URL is printed")
    base_url = re.search(r"base URL: (\S+)", child.stdout)
    assert base_url is not None
    async with FastRouterSession(
        "sk-v1-anything",
        base_url=base_url[1],
        poll_policy=FAST_POLL,
        retry_policy=FAST_RETRY,
        timeouts=FAST_TIMEOUTS,
    ) as session:
        job = await session.submit(model="google/veo3", prompt="a cat")
        video = await job
        file = await video.download(tmp_path / "cat.mp4")
        failing = await session.submit(model="google/veo3", prompt="a moderation test")
        status = await failing.status()
        while not status.done:
            status = await failing.status()
    assert file.sha256 == sha256(sample_video())
    assert status.state is JobState.FAILED
    child.process.send_signal(signal.SIGINT)
    assert await child.finish() == 0
    assert "stopped" in child.stdout


async def test_missing_key_is_a_clear_usage_error(cli: Callable[..., Any], server: SimulatorServer) -> None:
    """Without FASTROUTER_API_KEY (and without --simulate) a command exits 2 and says what to set."""
    code, child = await run(
        cli, "status", "fr_X", "--model", "google/veo3", "--base-url", server.base_url, env=child_env(key=False)
    )
    assert code == 2
    assert "no API key: set the FASTROUTER_API_KEY environment variable" in child.stderr
    assert "--simulate" in child.stderr


async def test_key_is_never_printed(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Even with -vv, and with a server that echoes the key in its errors, the key shows in no output or file."""
    echo = {"error": {"message": f"Invalid API key {API_KEY}", "type": "auth", "code": API_KEY, "status": 401}}
    sim.inject(Fault.status(401, route="submit", body=echo))
    sim.plan_for("dog", JobPlan(outcome="failed", error=f"upstream refused key {API_KEY}"))
    outputs: list[str] = []
    code, child = await run(cli, "-vv", *generate_args(server, "a cat"), "-o", "c.mp4")
    assert code == 1
    outputs.append(child.stdout + child.stderr)
    source = prompts_file(tmp_path, ["a cat", "a dog"])
    code, child = await run(cli, *batch_args(server, source.name, "-vv"))
    assert code == 1
    outputs.append(child.stdout + child.stderr)
    assert "redacted" in "".join(outputs)  # the echoed key really came back, masked
    for written in sorted((tmp_path / "out").iterdir()):  # manifest, journal (and its WAL), videos
        outputs.append(written.read_bytes().decode("utf-8", "replace"))
    leaks = [text for text in outputs if API_KEY in text or API_KEY[6:] in text]
    assert leaks == []
