"""Watchers and submitters in real processes, sharing one store and one simulator (run by the test's process).

Each worker is ``python -m tests._watcher_workers``: a FastRouterSession of its own on the same store
(a SQLite file; a real redis-server where one can be had). The simulator serves them all from the
test's event loop, so its records count every request each process sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from fastrouter_async import FastRouterSession, JobState
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan, SimulatorServer, sample_video

from ._redis import RedisServer, find_redis_server, skip_reason
from ._servers import free_ports
from ._watcher_workers import POLL, worker_command
from .conftest import API_KEY

ROOT = Path(__file__).resolve().parent.parent
REDIS_SKIP = skip_reason()
NOWHERE = "http://127.0.0.1:9"  # nothing listens there: a process given it must never need FastRouter
DEADLINE = 60.0  # seconds a whole multi-process run may take on a loaded machine (it takes a few)


class Worker:
    """One worker process, its stdout read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    @classmethod
    async def start(cls, *command: str) -> Worker:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
        )
        return cls(process)

    async def line_starting(self, prefix: str) -> str:
        """Read until a line that starts with ``prefix`` (``AssertionError`` if the process ends first)."""
        assert self.process.stdout is not None
        while True:
            raw = await self.process.stdout.readline()
            assert raw, f"the worker ended (status {await self.process.wait()}) before printing {prefix!r}"
            line = raw.decode().strip()
            self.lines.append(line)
            if line.startswith(prefix):
                return line

    async def finish(self) -> list[str]:
        """Wait for the process to exit with 0; every line it printed."""
        assert self.process.stdout is not None
        rest = await self.process.stdout.read()
        self.lines.extend(line for line in rest.decode().splitlines() if line)
        assert await self.process.wait() == 0, self.lines
        return self.lines

    def stop(self, signum: int = signal.SIGTERM) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signum)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = find_redis_server()
    assert binary is not None
    with RedisServer(binary, tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(params=["sqlite", "redis"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path, server: SimulatorServer) -> str:
    """A fresh store (a SQLite file, or a real redis-server's database), opened once before the workers start."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    else:
        if REDIS_SKIP is not None:
            pytest.skip(REDIS_SKIP)
        redis: RedisServer = request.getfixturevalue("redis_server")
        from redis.asyncio import Redis  # noqa: PLC0415 (only with a redis-server)

        client = Redis.from_url(redis.url)
        await client.flushall()
        await client.aclose()
        url = redis.url
    async with FastRouterSession(API_KEY, base_url=server.base_url, store=url) as opener:
        await opener.jobs()  # the store's file and tables exist before several processes open it
    return url


@pytest.fixture
async def workers() -> AsyncIterator[list[Worker]]:
    """Every worker a test starts: killed at the end if still running."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop(signal.SIGKILL)
        await worker.process.wait()


async def start(workers: list[Worker], *command: str) -> Worker:
    worker = await Worker.start(*command)
    workers.append(worker)
    return worker


def completed_downloads(sim: FastRouterSimulator) -> dict[str, int]:
    """Task id -> how many downloads of its video the simulator answered."""
    counts: dict[str, int] = {}
    for request in sim.records.downloads:
        if request.task_id is not None and request.method == "GET":
            counts[request.task_id] = counts.get(request.task_id, 0) + 1
    return counts


def check_file(shown: dict[str, Any], folder: Path) -> None:
    """The file a record names is in ``folder``, complete, and its size and sha256 are as recorded."""
    path = Path(shown["file"])
    assert path.parent == folder
    data = path.read_bytes()
    assert data == sample_video()
    assert shown["size"] == len(data)
    assert shown["sha256"] == hashlib.sha256(data).hexdigest()


async def test_submitters_submit_watchers_download_each_video_once(
    sim: FastRouterSimulator, server: SimulatorServer, store_url: str, tmp_path: Path, workers: list[Worker]
) -> None:
    """Two submitter and two watcher processes: every job is downloaded once, and a third process tells its status."""
    sim.default_plan = JobPlan(duration=0.3)
    out = tmp_path / "videos"
    base = server.base_url
    with anyio.fail_after(DEADLINE):
        watchers = [await start(workers, *worker_command("watch", base, store_url, 30, out, "forever")) for _ in "ab"]
        for watcher in watchers:
            await watcher.line_starting("watching")
        submitters = [await start(workers, *worker_command("submit", base, store_url, 30, 6, f"p{n}")) for n in "12"]
        task_ids = [line.split()[1] for s in submitters for line in await s.finish() if line.startswith("task ")]
        assert len(task_ids) == 12
        async with FastRouterSession(API_KEY, base_url=NOWHERE, store=store_url) as reader:
            while not all(r.details.get("file") for r in await reader.jobs()) or len(await reader.jobs()) < 12:
                await asyncio.sleep(0.02)
        # NOWHERE: a status process that sent FastRouter anything would fail.
        status = await start(workers, *worker_command("status", NOWHERE, store_url, 30, *task_ids))
        shown = [json.loads(line) for line in await status.finish()]
    assert completed_downloads(sim) == dict.fromkeys(task_ids, 1)
    assert [s["task_id"] for s in shown] == task_ids
    for record in shown:
        assert record["state"] == JobState.SUCCEEDED.value
        check_file(record, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.mp4" for t in task_ids)
    for watcher in watchers:
        watcher.stop()
        with anyio.move_on_after(15):
            assert "stopped" in await watcher.finish()
        assert watcher.process.returncode == 0


async def test_a_killed_watchers_jobs_are_finished_by_another_within_a_lease(
    sim: FastRouterSimulator, server: SimulatorServer, store_url: str, tmp_path: Path, workers: list[Worker]
) -> None:
    """A watcher killed by SIGKILL mid-job: another watcher takes its jobs once their leases expire, and ends them."""
    lease = 1.0
    watch_ttl = lease + POLL.max_interval
    sim.default_plan = JobPlan(polls=1_000_000)
    out = tmp_path / "videos"
    base = server.base_url
    async with FastRouterSession(API_KEY, base_url=base, store=store_url, max_concurrent_jobs=None) as submitter:
        task_ids = [(await submitter.submit(model="google/veo3", prompt=f"k{n}")).task_id for n in range(4)]
        with anyio.fail_after(DEADLINE):
            doomed = await start(workers, *worker_command("watch", base, store_url, lease, out, "forever"))
            while {p.task_id for p in sim.records.polls} != set(task_ids):
                await asyncio.sleep(0.01)
            doomed.stop(signal.SIGKILL)
            await doomed.process.wait()
            killed_at = anyio.current_time()
            polls_before = len(sim.records.polls)
            for task_id in task_ids:
                sim.jobs[task_id].plan = JobPlan(polls=1)  # any further poll ends the job
            survivor = await start(workers, *worker_command("watch", base, store_url, lease, out, "idle"))
            assert "done" in await survivor.finish()
        taken_over: dict[str | None, float] = {}
        for poll in sim.records.polls[polls_before:]:
            taken_over.setdefault(poll.task_id, poll.time - killed_at)
        assert set(taken_over) == set(task_ids)
        assert min(taken_over.values()) > watch_ttl / 2  # nobody polled them while the dead one's leases lived
        assert max(taken_over.values()) < 3 * watch_ttl  # about one lease period, plus a process start
        assert completed_downloads(sim) == dict.fromkeys(task_ids, 1)
        for task_id in task_ids:
            record = await submitter.job_record(task_id)
            assert record is not None
            assert record.state is JobState.SUCCEEDED
            check_file(dict(record.details), out)


async def test_a_download_cut_short_by_sigkill_is_done_once_by_another_watcher(
    sim: FastRouterSimulator, server: SimulatorServer, store_url: str, tmp_path: Path, workers: list[Worker]
) -> None:
    """A watcher killed mid-download: once its download lease expires another watcher downloads the video, once."""
    lease = 1.0
    out = tmp_path / "videos"
    base = server.base_url
    sim.inject(Fault.slow(3600, route="download"))  # the first download never ends
    async with FastRouterSession(API_KEY, base_url=base, store=store_url, max_concurrent_jobs=None) as submitter:
        task_id = (await submitter.submit(model="google/veo3", prompt="cut short")).task_id
        with anyio.fail_after(DEADLINE):
            doomed = await start(workers, *worker_command("watch", base, store_url, lease, out, "forever"))
            while not sim.records.downloads:
                await asyncio.sleep(0.01)
            doomed.stop(signal.SIGKILL)
            await doomed.process.wait()
            killed_at = anyio.current_time()
            survivor = await start(workers, *worker_command("watch", base, store_url, lease, out, "idle"))
            assert "done" in await survivor.finish()
        first, second = sim.records.downloads
        assert first.path == second.path == f"/videos-content/{task_id}"  # the slowed one is never answered
        assert second.time - killed_at > lease / 2  # not while the dead watcher's download lease lived
        record = await submitter.job_record(task_id)
        assert record is not None
        check_file(dict(record.details), out)


def polls_per_job(sim: FastRouterSimulator) -> float:
    jobs = {p.task_id for p in sim.records.polls}
    return len(sim.records.polls) / len(jobs)


async def test_three_processes_poll_each_job_as_often_as_one(
    sim: FastRouterSimulator, server: SimulatorServer, tmp_path: Path, workers: list[Worker]
) -> None:
    """With a fixed poll policy, the polls per job of 3 processes sharing a store stay within 10% of one process's."""
    sim.default_plan = JobPlan(duration=0.6)
    figures = []
    for processes in (1, 3):
        sim.records.reset()
        store = f"sqlite:///{tmp_path / f'store-{processes}.sqlite'}"
        async with FastRouterSession(API_KEY, base_url=server.base_url, store=store) as opener:
            await opener.jobs()
        with anyio.fail_after(DEADLINE):
            started = [
                await start(workers, *worker_command("both", server.base_url, store, 30, 12 // processes, f"n{n}"))
                for n in range(processes)
            ]
            for worker in started:
                await worker.finish()
        assert sim.records.jobs_created == 12
        figures.append(polls_per_job(sim))
    one, three = figures
    # A 0.6 s job polled every 0.05 s takes 12 or 13 polls from one poller on time; a loaded machine
    # makes polls late, so fewer (in either run), and a second poller per job would double them.
    on_time = 0.6 / POLL.interval + 1
    assert three <= 1.10 * max(one, on_time), f"polls per job: one process {one:.2f}, three processes {three:.2f}"


async def test_a_web_backend_of_several_workers(
    sim: FastRouterSimulator, server: SimulatorServer, store_url: str, tmp_path: Path, workers: list[Worker]
) -> None:
    """Three web workers on one port: POST submits (202), GET answers from the store; the videos end up on disk."""
    sim.default_plan = JobPlan(duration=0.2)
    out = tmp_path / "videos"
    (port,) = free_ports(1)
    with anyio.fail_after(DEADLINE):
        web = [await start(workers, *worker_command("web", server.base_url, store_url, 30, port, out)) for _ in "abc"]
        for worker in web:
            await worker.line_starting("serving")
        answered_by: set[str] = set()
        connector = aiohttp.TCPConnector(force_close=True)  # a new connection per request: spread over the workers
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=connector) as http:
            task_ids = []
            for n in range(9):
                async with http.post("/videos", json={"prompt": f"web {n}"}) as answer:
                    assert answer.status == 202
                    task_ids.append((await answer.json())["task_id"])
                    answered_by.add(answer.headers["X-Worker"])
            pending = set(task_ids)
            shown: dict[str, dict[str, Any]] = {}
            while pending:
                for task_id in sorted(pending):
                    async with http.get(f"/videos/{task_id}") as answer:
                        assert answer.status == 200
                        answered_by.add(answer.headers["X-Worker"])
                        body = await answer.json()
                    if body["state"] == "succeeded" and body["file"]:
                        shown[task_id] = body
                        pending.discard(task_id)
                await asyncio.sleep(0.02)
        for worker in web:
            worker.stop()
            await worker.finish()
    assert len(answered_by) >= 2  # the kernel spread the connections over several workers
    assert completed_downloads(sim) == dict.fromkeys(task_ids, 1)
    for body in shown.values():
        check_file(body, out)
