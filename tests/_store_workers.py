"""Worker processes for tests/test_store_processes.py: each runs one FastRouterSession on a shared store.

``python -m tests._store_workers ROLE BASE_URL STORE ARGS...`` (see :func:`main`).
"""

from __future__ import annotations

import asyncio
import sys

from fastrouter_async import FastRouterSession, PollPolicy, RetryPolicy

from .conftest import API_KEY

__all__ = ["worker_command"]


def worker_command(role: str, base_url: str, store: str, *args: object) -> list[str]:
    """The command line of one worker process (run it from the repository's root)."""
    return [sys.executable, "-m", "tests._store_workers", role, base_url, store, *map(str, args)]


async def _poll_steadily(base_url: str, store: str, rate: float, seconds: float) -> None:
    """Submit one long job, then ask its status as fast as the shared budget lets, for ``seconds``."""
    async with FastRouterSession(API_KEY, base_url=base_url, store=store, request_budget=rate) as session:
        job = await session.submit(model="google/veo3", prompt="held running")
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        asks = 0
        while loop.time() < end:
            await job.status()
            asks += 1
        print(asks, flush=True)


async def _wait_for_job(base_url: str, store: str, count: int) -> None:
    """Submit ``count`` jobs and await them, polling every 10 ms (a 429 retried after a short backoff)."""
    async with FastRouterSession(
        API_KEY,
        base_url=base_url,
        store=store,
        poll_policy=PollPolicy.fixed(0.01, first_delay=0.0),
        retry_policy=RetryPolicy(max_attempts=20, base_delay=0.01, max_delay=0.05, max_retry_after=5.0),
    ) as session:
        jobs = [await session.submit(model="google/veo3", prompt=f"job {n}") for n in range(count)]
        await asyncio.gather(*(job.result() for job in jobs))
        print("done", flush=True)


def main(argv: list[str]) -> None:
    role, base_url, store, *args = argv
    if role == "poll":
        asyncio.run(_poll_steadily(base_url, store, float(args[0]), float(args[1])))
    elif role == "wait":
        asyncio.run(_wait_for_job(base_url, store, int(args[0])))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
