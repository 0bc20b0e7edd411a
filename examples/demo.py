"""Generate a few videos in parallel and download them to ./videos.

By default this runs against the embedded FastRouter simulator (no key, no cost):

    python examples/demo.py

With ``--real`` it talks to FastRouter itself, using ``FASTROUTER_API_KEY``
(this costs money: every video is billed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from fastrouter_async import FastRouterError, FastRouterSession, JobFailedError, PollPolicy, VideoJob, VideoRequest
from fastrouter_async.testing import FastRouterSimulator, JobPlan

REQUESTS = [
    VideoRequest(model="google/veo3", prompt="a cat surfing a wave at sunset", length=8, aspect_ratio="16:9"),
    VideoRequest(model="kling-ai/kling-v1-6", prompt="a paper boat drifting down a rainy street", length=5),
    VideoRequest(model="google/veo3.1-fast", prompt="a lighthouse in a storm, cinematic", length=4, resolution="1080p"),
    VideoRequest(model="bytedance/seedance-pro", prompt="a hummingbird in slow motion", resolution="720p"),
    VideoRequest(model="minimax/minimax-hailuo-02", prompt="a city of glass at dawn (simulated moderation block)"),
]


def slug(text: str, limit: int = 48) -> str:
    """A file name from a prompt: lower-case words joined by dashes, cut at a word boundary."""
    words = "".join(ch if ch.isalnum() else " " for ch in text.lower()).split()
    name = ""
    for word in words:
        if len(name) + len(word) + 1 > limit:
            break
        name = f"{name}-{word}" if name else word
    return name or "video"


@contextlib.asynccontextmanager
async def backend(real: bool) -> AsyncIterator[FastRouterSession]:
    if real:
        if not os.environ.get("FASTROUTER_API_KEY"):
            sys.exit("--real needs FASTROUTER_API_KEY (a FastRouter key starting with sk-v1-)")
        async with FastRouterSession(max_concurrent_jobs=3) as session:
            yield session
        return
    # Simulated jobs take 1-3 s (real ones take minutes); one is blocked to show a failure.
    sim = FastRouterSimulator(api_key="sk-v1-demo", default_plan=JobPlan(duration=1.5))
    sim.plan_for(lambda body: body.get("model") == "google/veo3", JobPlan(duration=2.5))
    sim.plan_for("moderation", JobPlan(duration=1.0, outcome="failed", error="input flagged by content moderation"))
    async with sim.serve() as server:
        print(f"FastRouter simulator on {server.base_url}\n")
        demo_polling = PollPolicy(first_delay=0.3, interval=0.3, max_interval=1.0)
        async with FastRouterSession(
            "sk-v1-demo", base_url=server.base_url, max_concurrent_jobs=3, poll_policy=demo_polling
        ) as session:
            yield session


async def produce(session: FastRouterSession, request: VideoRequest, out: Path, started: float) -> list[str]:
    def stamp() -> str:
        return f"[{time.monotonic() - started:5.1f}s]"

    job: VideoJob | None = None
    try:
        job = await session.submit(request)
        print(f"{stamp()} submitted  {request.model:<28} task {job.task_id}")
        video = await job
        path = (await video.download(out / f"{slug(request.prompt)}.mp4")).path
        size = path.stat().st_size
        print(f"{stamp()} done       {request.model:<28} -> {path} ({size:,} bytes)")
        cost = f"${video.cost_usd:.2f}" if video.cost_usd is not None else "-"
        return [request.model, "ok", str(path), f"{size:,}", cost]
    except JobFailedError as exc:
        print(f"{stamp()} failed     {request.model:<28} {exc.message}")
        return [request.model, "failed", exc.message, "-", "-"]
    except FastRouterError as exc:
        where = f" (task {job.task_id})" if job else ""
        print(f"{stamp()} error      {request.model:<28} {exc}{where}")
        return [request.model, "error", str(exc), "-", "-"]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", action="store_true", help="use the real FastRouter API (billed)")
    parser.add_argument("--out", default="videos", help="output folder (default: videos)")
    args = parser.parse_args()
    out = Path(args.out)
    started = time.monotonic()
    async with backend(args.real) as session:
        print(f"generating {len(REQUESTS)} videos, at most {session.max_concurrent_jobs} at a time\n")
        rows = await asyncio.gather(*(produce(session, r, out, started) for r in REQUESTS))
    print(f"\n{'model':<28} {'status':<7} {'file / message':<52} {'bytes':>8} {'cost':>6}")
    for model, status, detail, size, cost in rows:
        print(f"{model:<28} {status:<7} {detail:<52} {size:>8} {cost:>6}")
    ok = sum(row[1] == "ok" for row in rows)
    print(f"\n{ok} of {len(rows)} videos written to {out}/ in {time.monotonic() - started:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
