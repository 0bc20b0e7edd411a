"""Several ``fastrouter-video batch --store`` processes on one batch, against one simulator served by the test.

Four command-line processes run the same batch file into the same folder with the same store (a SQLite
file, or a real redis-server when one can be started) and a global cap of 10 jobs. The simulator, in this
process, is the one all four reach: it counts every job created and the most jobs in flight at once.

Each run has 200 lines (about 6-10 s on two cores; a run with a process killed mid-batch may also wait
out the store's 30 s leases of that process); ``FASTROUTER_BATCH_STORE_LINES=N`` runs another size.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from fastrouter_async import (
    DEFAULT_REPLAY_POLICY,
    FastRouterSession,
    InvalidRequestError,
    OutcomeStatus,
    SubmitUncertainError,
    VideoRequest,
)
from fastrouter_async._batch_keys import batch_job_key, request_fingerprint, shared_namespace
from fastrouter_async._protocol import build_submit_body
from fastrouter_async.testing import FastRouterSimulator, SimulatorServer, sample_video

from ._internals import engine_of
from .conftest import API_KEY, SessionFactory

LINES = int(os.environ.get("FASTROUTER_BATCH_STORE_LINES", "200"))
WORKERS = 4
CAP = 10
CHILD_TIMEOUT = 120.0  # a healthy run of 200 lines takes a few seconds; a process killed mid-batch adds its leases


class Worker:
    """One ``python -m fastrouter_async batch ... --store URL`` process; its output goes to files."""

    def __init__(self, process: asyncio.subprocess.Process, out: Path, err: Path) -> None:
        self.process = process
        self.out = out
        self.err = err

    @property
    def stdout(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    async def finish(self) -> int:
        async with asyncio.timeout(CHILD_TIMEOUT):
            return await self.process.wait()


async def start_workers(tmp_path: Path, server: SimulatorServer, store: str, count: int, *extra: str) -> list[Worker]:
    source = tmp_path / "prompts.txt"
    source.write_text("".join(f"shot number {n}\n" for n in range(LINES)), encoding="utf-8")
    env = worker_env(tmp_path)
    args = (
        "batch", str(source), "--model", "google/veo3", "--out", str(tmp_path / "out"), "--store", store,
        "--concurrency", str(CAP), "--base-url", server.base_url, "--poll-interval", "0.05", *extra,
    )  # fmt: skip
    workers = []
    first = len(list(tmp_path.glob("worker*.out")))
    for n in range(first, first + count):
        out, err = tmp_path / f"worker{n}.out", tmp_path / f"worker{n}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "fastrouter_async", *args, stdout=stdout, stderr=stderr, env=env, cwd=tmp_path
            )
        workers.append(Worker(process, out, err))
    return workers


async def stop_all(workers: list[Worker]) -> None:
    for worker in workers:
        if worker.process.returncode is None:
            worker.process.kill()
            await worker.process.wait()


def own_videos(worker: Worker) -> int:
    """How many videos ``worker`` has reported that it submitted itself (its lines say nothing of another process)."""
    lines = worker.stdout.splitlines()
    return sum(" succeeded " in line and "another process" not in line for line in lines)


def manifests(folder: Path) -> list[list[dict[str, Any]]]:
    return [
        [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        for path in sorted(folder.glob("manifest.*.jsonl"))
    ]


async def simulator_stats(server: SimulatorServer) -> dict[str, Any]:
    """The simulator's counters, read over HTTP as any other program would."""
    root = urlsplit(server.base_url)
    async with aiohttp.ClientSession() as http, http.get(f"{root.scheme}://{root.netloc}/_simulator/stats") as answer:
        stats: dict[str, Any] = await answer.json()
        return stats


def check_files(folder: Path, rows: list[dict[str, Any]]) -> None:
    """Every line succeeded with its own file, whose bytes are what the simulator serves (its sample video)."""
    expected = hashlib.sha256(sample_video()).hexdigest()
    assert sorted(row["index"] for row in rows) == list(range(LINES))
    assert all(row["status"] == "succeeded" for row in rows), [r for r in rows if r["status"] != "succeeded"]
    assert len({row["task_id"] for row in rows}) == LINES
    assert len({row["file"] for row in rows}) == LINES
    for row in rows:
        path = folder / Path(row["file"]).name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == expected == row["sha256"]


async def test_four_processes_share_one_batch(
    tmp_path: Path, sim: FastRouterSimulator, server: SimulatorServer, store_url: str
) -> None:
    """Four processes on one batch: every line created once, never more than 10 in flight, each video once."""
    workers = await start_workers(tmp_path, server, store_url, WORKERS)
    try:
        codes = [await worker.finish() for worker in workers]
    finally:
        await stop_all(workers)
    assert codes == [0] * WORKERS, [w.stderr[-2000:] for w in workers]
    stats = await simulator_stats(server)
    assert stats["jobs_created"] == sim.records.jobs_created == LINES
    assert sim.records.billed_count == LINES
    assert stats["max_in_flight"] <= CAP
    assert sim.records.download_count == LINES  # each video downloaded by one process only
    every = manifests(tmp_path / "out")
    assert len(every) == WORKERS
    for rows in every:  # every process reports every line: its own, and those the others did
        check_files(tmp_path / "out", rows)
    submitted_here = [sum(row["submitted_by"] == "this process" for row in rows) for rows in every]
    assert sum(submitted_here) == LINES
    downloaded_here = [sum(row["downloaded_by"] == "this process" for row in rows) for rows in every]
    assert sum(downloaded_here) == LINES
    assert all(f"{n} submitted by this process" in w.stdout for n, w in zip(submitted_here, workers, strict=True))

    async with FastRouterSession(API_KEY, base_url=server.base_url, store=store_url) as session:
        records = await session.jobs()
    assert len(records) == LINES
    assert all(record.details.get("file") for record in records)

    # jobs --store lists the store's jobs; running the batch again resumes from the store: nothing is sent.
    listing = await run_command(tmp_path, "jobs", "--store", store_url, "--json", "--base-url", server.base_url)
    jobs = [json.loads(line) for line in listing.splitlines()]
    assert (
        sum(row["type"] == "job" and row["state"] == "succeeded" and row["file"] is not None for row in jobs) == LINES
    )
    (again,) = await start_workers(tmp_path, server, store_url, 1)
    assert await again.finish() == 0, again.stderr[-2000:]
    assert sim.records.jobs_created == LINES
    assert sim.records.download_count == LINES
    assert f"{LINES} done by another process" in again.stdout


async def test_a_journal_with_a_store_is_refused(server: SimulatorServer, tmp_path: Path) -> None:
    """With a store and an output folder the store is the batch's record: a journal is refused before anything."""
    store = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    async with FastRouterSession(API_KEY, base_url=server.base_url, store=store) as session:
        with pytest.raises(InvalidRequestError) as caught:
            session.generate_many(
                [{"model": "google/veo3", "prompt": "a cat"}],
                output_dir=tmp_path / "out",
                journal=tmp_path / "j.sqlite",
            )
    assert caught.value.field == "journal"


async def run_command(tmp_path: Path, *args: str) -> str:
    """Run one command-line command to its end; its standard output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fastrouter_async", *args, stdout=asyncio.subprocess.PIPE, env=worker_env(tmp_path)
    )
    async with asyncio.timeout(CHILD_TIMEOUT):
        out, _ = await process.communicate()
    assert process.returncode == 0
    return out.decode()


def worker_env(tmp_path: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("FASTROUTER_")}
    env["FASTROUTER_API_KEY"] = API_KEY
    env["XDG_CACHE_HOME"] = str(tmp_path / "no-cache")
    return env


async def lines_held_by(session: FastRouterSession, pid: int) -> set[str]:
    """The keys of the lines whose submit claim process ``pid`` holds and whose video is not recorded yet."""
    sharing = engine_of(session).sharing
    assert sharing is not None
    state = await sharing.state()
    held = set()
    for record in await session.jobs():
        owner = await state.watches.owner(f"submit:{record.key}")
        if owner is not None and owner.startswith(f"{pid}-") and not record.details.get("file"):
            held.add(record.key)
    return held


async def test_a_process_killed_mid_batch_is_covered_by_the_others(
    tmp_path: Path, sim: FastRouterSimulator, server: SimulatorServer, store_url: str
) -> None:
    """One of four processes is SIGKILLed mid-batch: the others finish its lines, each created once, all files there."""
    workers = await start_workers(tmp_path, server, store_url, WORKERS)
    victim, survivors = workers[0], workers[1:]
    try:
        async with (
            FastRouterSession(API_KEY, base_url=server.base_url, store=store_url) as session,
            asyncio.timeout(CHILD_TIMEOUT),
        ):
            # Killed once it has finished some lines of its own and holds others (submitting, running or downloading).
            while own_videos(victim) < 3 or not (held := await lines_held_by(session, victim.process.pid)):
                assert victim.process.returncode is None, victim.stderr
                await asyncio.sleep(0.005)
            victim.process.send_signal(signal.SIGKILL)
            await victim.process.wait()
        assert sim.records.jobs_created < LINES  # mid-batch
        codes = [await worker.finish() for worker in survivors]
    finally:
        await stop_all(workers)
    assert codes == [0] * len(survivors), [w.stderr[-2000:] for w in survivors]
    assert sim.records.jobs_created == sim.records.billed_count == LINES
    every = manifests(tmp_path / "out")
    finished = [rows for rows in every if len(rows) == LINES and all(r["status"] == "succeeded" for r in rows)]
    assert len(finished) == len(survivors)  # the victim's own manifest stops mid-batch
    for rows in finished:
        check_files(tmp_path / "out", rows)
    async with FastRouterSession(API_KEY, base_url=server.base_url, store=store_url) as session:
        records = {record.key: record for record in await session.jobs()}
    assert all(records[key].details.get("file") for key in held)  # the lines it held were finished by the others


def line_key(output_dir: Path, prompt: str) -> str:
    """The key a shared batch into ``output_dir`` gives its first line asking for ``prompt`` (google/veo3)."""
    body = build_submit_body(VideoRequest(model="google/veo3", prompt=prompt))
    return batch_job_key(
        namespace=shared_namespace(output_dir),
        fingerprint=request_fingerprint(body),
        occurrence=0,
        generation=0,
    )


async def record_dead_intent(session: FastRouterSession, key: str, prompt: str, age: float) -> None:
    """What a process that died mid-submit ``age`` seconds ago leaves in the store: an intent, no task id."""
    sharing = engine_of(session).sharing
    assert sharing is not None
    body = build_submit_body(VideoRequest(model="google/veo3", prompt=prompt))
    assert await sharing.intent(key, body=body, cache_key=key, model="google/veo3", at=time.time() - age)


async def test_a_line_left_mid_submit_is_replayed_with_its_key(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """An intent without a task id (its process died mid-submit) is sent again with the same key: found again."""
    out = tmp_path / "out"
    key = line_key(out, "a cat")
    first = make_session()
    reached = await first.submit(VideoRequest(model="google/veo3", prompt="a cat", cache_key=key))  # it had arrived
    session = make_session(store=f"sqlite:///{tmp_path / 'shared.sqlite'}")
    await record_dead_intent(session, key, "a cat", age=5)
    outcomes = [o async for o in session.generate_many([{"model": "google/veo3", "prompt": "a cat"}], output_dir=out)]
    (outcome,) = outcomes
    assert (outcome.status, outcome.task_id, outcome.found_again) == (OutcomeStatus.SUCCEEDED, reached.task_id, True)
    assert sim.records.jobs_created == 1
    assert [hit.cache_key for hit in sim.records.cache_hits] == [key]
    record = await session.job_record(reached.task_id)
    assert record is not None
    assert outcome.file is not None
    assert record.details["file"]["sha256"] == outcome.file.sha256


async def test_a_line_left_mid_submit_past_the_window_is_uncertain(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """An intent without a task id older than the replay window is reported uncertain, and nothing is sent."""
    out = tmp_path / "out"
    key = line_key(out, "a cat")
    session = make_session(store=f"sqlite:///{tmp_path / 'shared.sqlite'}")
    await record_dead_intent(session, key, "a cat", age=DEFAULT_REPLAY_POLICY.window + 60)
    outcomes = [o async for o in session.generate_many([{"model": "google/veo3", "prompt": "a cat"}], output_dir=out)]
    assert [o.status for o in outcomes] == [OutcomeStatus.UNCERTAIN]
    assert isinstance(outcomes[0].error, SubmitUncertainError)
    assert "past the replay window" in outcomes[0].error.reason
    assert sim.records.submit_count == 0


async def test_a_rerun_resumes_from_the_store(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Run again, a finished shared batch sends nothing; a video deleted since is fetched again, not generated."""
    out = tmp_path / "out"
    store = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    requests = [{"model": "google/veo3", "prompt": f"shot {n}"} for n in range(3)]
    first = [o async for o in make_session(store=store).generate_many(requests, output_dir=out)]
    assert all(o.ok and not o.submitted_elsewhere and not o.downloaded_elsewhere for o in first)
    gone = next(o for o in first if o.index == 1)
    assert gone.file is not None
    gone.file.path.unlink()
    again = sorted(
        [o async for o in make_session(store=store).generate_many(requests, output_dir=out)], key=lambda o: o.index
    )
    assert [(o.ok, o.submitted_elsewhere, o.downloaded_elsewhere) for o in again] == [
        (True, True, True),
        (True, True, False),  # downloaded again here
        (True, True, True),
    ]
    assert again[1].file is not None
    assert again[1].file.path.read_bytes() == sample_video()
    assert sim.records.jobs_created == 3
    assert sim.records.download_count == 4
