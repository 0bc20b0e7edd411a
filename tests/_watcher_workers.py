"""The worker processes of tests/test_watcher_processes.py: sessions of one store, each in its own process.

``python -m tests._watcher_workers ROLE BASE_URL STORE LEASE ARGS...`` runs one worker (see
:func:`main`) with a :class:`FastRouterSession` on ``STORE`` (``store_lease=LEASE``) against the
simulator at ``BASE_URL``. Each prints what it did on stdout, one line per event, and stops cleanly
on ``SIGTERM`` (its session closed, its leases given back).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from fastrouter_async import FastRouterSession, JobRecord, PollPolicy, RetryPolicy, Timeouts

from .conftest import API_KEY

__all__ = ["POLL", "worker_command"]

POLL = PollPolicy.fixed(0.05)
# A fixed policy: the polls a job gets depend on its duration alone, so processes can be compared.
SCAN = 0.02


def worker_command(role: str, base_url: str, store: str, lease: float, *args: object) -> list[str]:
    """The command line of one worker process (run it from the repository's root)."""
    return [sys.executable, "-m", "tests._watcher_workers", role, base_url, store, str(lease), *map(str, args)]


def say(*words: object) -> None:
    print(*words, flush=True)


def session_for(base_url: str, store: str, lease: float, **options: Any) -> FastRouterSession:
    return FastRouterSession(
        API_KEY,
        base_url=base_url,
        store=store,
        store_lease=lease,
        poll_policy=POLL,
        retry_policy=RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05),
        timeouts=Timeouts(connect=2.0, request=10.0, read=10.0),
        **options,
    )


async def until_terminated(work: Callable[[], Coroutine[Any, Any, object]]) -> None:
    """Run ``work`` until it ends or a ``SIGTERM`` arrives (then cancelled)."""
    task = asyncio.create_task(work())
    loop = asyncio.get_running_loop()

    def terminate() -> None:
        task.cancel()
        loop.call_later(5, _dump_tasks)  # a worker that does not stop by then says where it is stuck

    loop.add_signal_handler(signal.SIGTERM, terminate)
    try:
        await task
    except asyncio.CancelledError:
        say("stopped")


def _dump_tasks() -> None:
    """Print where each task waits: its chain of awaits, innermost last."""
    for running in asyncio.all_tasks():
        print(f"task {running.get_name()}:", file=sys.stderr)
        awaited: Any = running.get_coro()
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is not None:
                print(f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}", file=sys.stderr)
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        sys.stderr.flush()


async def submit(base_url: str, store: str, lease: float, count: int, prefix: str) -> None:
    """Submit ``count`` jobs and wait for none of them: print each task id."""
    async with session_for(base_url, store, lease, max_concurrent_jobs=None) as session:
        for n in range(count):
            job = await session.submit(model="google/veo3", prompt=f"{prefix} {n}")
            say("task", job.task_id)


async def watch(base_url: str, store: str, lease: float, output_dir: str, mode: str) -> None:
    """Watch the store (``mode``: ``idle`` returns once nothing is left, ``forever`` until SIGTERM)."""
    async with session_for(base_url, store, lease) as session:
        say("watching", os.getpid())
        await until_terminated(lambda: session.watch(output_dir, until_idle=mode == "idle", scan_interval=SCAN))
    say("done")


async def submit_and_watch(base_url: str, store: str, lease: float, count: int, prefix: str) -> None:
    """Submit ``count`` jobs, then watch the store until nothing is left."""
    async with session_for(base_url, store, lease, max_concurrent_jobs=None) as session:
        for n in range(count):
            await session.submit(model="google/veo3", prompt=f"{prefix} {n}")
        await session.watch(until_idle=True, scan_interval=SCAN)
    say("done")


async def status(base_url: str, store: str, lease: float, *task_ids: str) -> None:
    """Print what the store says of each task (``base_url``: nothing listens there; nothing is sent)."""
    async with session_for(base_url, store, lease) as session:
        for task_id in task_ids:
            record = await session.job_record(task_id)
            say(json.dumps(_shown(task_id, record)))


def _shown(task_id: str, record: JobRecord | None) -> dict[str, Any]:
    if record is None:
        return {"task_id": task_id, "state": None}
    state = None if record.state is None else record.state.value
    return {"task_id": task_id, "state": state, **{k: record.details.get(k) for k in ("file", "size", "sha256")}}


async def web_worker(base_url: str, store: str, lease: float, port: int, output_dir: str) -> None:
    """One worker of a web backend: submit on POST, answer status from the store on GET, watch in the background."""
    routes = web.RouteTableDef()
    session = session_for(base_url, store, lease, max_concurrent_jobs=50)
    worker = {"X-Worker": str(os.getpid())}

    @routes.post("/videos")
    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        job = await session.submit(model="google/veo3", prompt=body["prompt"])
        return web.json_response({"task_id": job.task_id, "status": "queued"}, status=202, headers=worker)

    @routes.get("/videos/{task_id}")
    async def show(request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        record = await session.job_record(task_id)
        if record is None:
            return web.json_response({"error": "unknown task"}, status=404, headers=worker)
        return web.json_response(_shown(task_id, record), headers=worker)

    async def lifespan(app: web.Application) -> Any:
        watcher = asyncio.create_task(session.watch(output_dir, scan_interval=SCAN))
        yield
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await session.aclose()

    app = web.Application()
    app.add_routes(routes)
    app.cleanup_ctx.append(lifespan)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_port=True)
    await site.start()
    say("serving", os.getpid())
    try:
        await until_terminated(asyncio.Event().wait)
    finally:
        await runner.cleanup()
    say("done")


def main(argv: list[str]) -> None:
    """``ROLE BASE_URL STORE LEASE ARGS...``: run one worker (roles: submit, watch, both, status, web)."""
    role, base_url, store, lease_text, *rest = argv
    lease = float(lease_text)
    if role == "submit":
        asyncio.run(submit(base_url, store, lease, int(rest[0]), rest[1]))
    elif role == "watch":
        asyncio.run(watch(base_url, store, lease, rest[0], rest[1]))
    elif role == "both":
        asyncio.run(submit_and_watch(base_url, store, lease, int(rest[0]), rest[1]))
    elif role == "status":
        asyncio.run(status(base_url, store, lease, *rest))
    elif role == "web":
        asyncio.run(web_worker(base_url, store, lease, int(rest[0]), rest[1]))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
