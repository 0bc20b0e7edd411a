"""What the waiting benchmarks share: the mixed batch, the peers' polling loops, and the simulator's timeline.

``polling.py``, ``budget.py`` and ``makespan.py`` all submit the same mix of
models (each with its own realistic duration in the simulator, see
:class:`~fastrouter_async.testing.RealisticDurations`), wait for the jobs with
several strategies, and judge each strategy from the simulator's own record of
every job (``GET /_simulator/jobs``): when it was created, when it finished,
and how many polls reached the server for it.

Every time here is on ``time.monotonic()``, the clock the simulator process
uses too (on Linux, one clock for every process). A benchmark runs its jobs
``scale`` times faster than real ones (``--time-scale``) and divides what it
measures by ``scale`` to report real seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
from _harness import fetch_json, percentile

from fastrouter_async import FastRouterSession, PollPolicy, VideoJob, VideoRequest
from fastrouter_async.testing import RealisticDurations

__all__ = [
    "MIX",
    "Finished",
    "JobRecord",
    "detection_stats",
    "fixed_loop",
    "mean_duration",
    "mixed_batch",
    "ours_policy",
    "records_for",
    "runway_loop",
    "submit_all",
    "timeline",
    "wait_all",
]

IMAGE = "https://example.com/benchmark-first-frame.png"  # image-to-video models need one; it is never fetched

MIX: tuple[Mapping[str, Any], ...] = (
    # Eight kinds of job, from four model families, some in two lengths: each has its own duration
    # in the simulator (RealisticDurations.table), from about a minute to about five.
    {"model": "google/veo3", "length": 8},
    {"model": "google/veo3-fast", "length": 8},
    {"model": "kling-ai/kling-v2-1", "length": 5, "image": IMAGE},
    {"model": "kling-ai/kling-v2-1", "length": 10, "image": IMAGE},
    # Sora is retired (the catalog refuses it by default); it stays in the mix, opted in, so that
    # figures remain comparable with earlier runs: the simulator still plays its durations.
    {"model": "openai/sora-2", "seconds": 8, "allow_retired": True},
    {"model": "bytedance/seedance-pro", "length": 5, "resolution": "720p"},
    {"model": "minimax/minimax-hailuo-02", "length": 6},
    {"model": "runway/runway-gen-4-turbo", "length": 5, "image": IMAGE},
)

RUNWAY_SLEEP = 6.0  # runway's waiter: sleep 6 s, give or take a uniform 1.5 s, before every poll (the first too)
RUNWAY_JITTER = 1.5


def mixed_batch(count: int, *, tag: str, start: int = 0) -> list[VideoRequest]:
    """``count`` requests cycling over :data:`MIX` (so every kind of job is equally represented)."""
    return [
        VideoRequest(prompt=f"{tag}: benchmark video {i}", **MIX[i % len(MIX)]) for i in range(start, start + count)
    ]


def mean_duration() -> float:
    """The mean real duration, in seconds, of a job of :data:`MIX` in the simulator (lognormal means)."""
    durations = RealisticDurations()
    total = 0.0
    for fields in MIX:
        sigma = next(
            entry.sigma
            for pattern, entry in RealisticDurations.table.items()
            if fnmatch.fnmatchcase(fields["model"], pattern)
        )
        total += durations.median(fields) * math.exp(sigma**2 / 2)
    return total / len(MIX)


def ours_policy(scale: float) -> PollPolicy:
    """Our default policy, with every duration (priors included) scaled like the simulator's jobs."""
    return PollPolicy().scaled(scale)


# -- the peers' waiters, as plain loops over job.status() --------------------------------


async def fixed_loop(job: VideoJob, interval: float) -> float:
    """openai's waiter: ask at once, then every ``interval`` seconds until done; returns when it saw the end."""
    while True:
        status = await job.status()
        if status.done:
            return time.monotonic()
        await asyncio.sleep(interval)


async def runway_loop(job: VideoJob, scale: float, rng: random.Random) -> float:
    """runway's waiter: sleep 6 s +- 1.5 s (scaled) before every poll, the first one too."""
    while True:
        await asyncio.sleep(rng.uniform(RUNWAY_SLEEP - RUNWAY_JITTER, RUNWAY_SLEEP + RUNWAY_JITTER) * scale)
        status = await job.status()
        if status.done:
            return time.monotonic()


async def submit_all(session: FastRouterSession, requests: Sequence[VideoRequest]) -> list[VideoJob]:
    """Submit every request at once; the jobs come back in request order."""
    return list(await asyncio.gather(*(session.submit(request) for request in requests)))


async def wait_all(jobs: Iterable[VideoJob], wait: Callable[[VideoJob], Any]) -> dict[str, float]:
    """Run ``wait(job)`` (returning the ``time.monotonic()`` it saw the end) for every job; task id -> that time."""
    jobs = list(jobs)
    seen = await asyncio.gather(*(wait(job) for job in jobs))
    return {job.task_id: float(when) for job, when in zip(jobs, seen, strict=True)}


# -- the simulator's record ----------------------------------------------------------------


@attrs.frozen
class JobRecord:
    """One job as the simulator saw it (``time.monotonic()`` seconds, scaled)."""

    task_id: str
    model: str
    created: float
    finishes_at: float
    poll_count: int

    @property
    def duration(self) -> float:
        return self.finishes_at - self.created


@attrs.frozen
class Finished:
    """A job of one strategy: the simulator's record, and when the strategy saw it end (``None``: never)."""

    record: JobRecord
    detected_at: float | None

    def delay(self, scale: float) -> float:
        """Real seconds from the job's end to the moment the strategy knew (``inf`` if it never did)."""
        if self.detected_at is None:
            return math.inf
        return (self.detected_at - self.record.finishes_at) / scale


def timeline(base_url: str) -> dict[str, JobRecord]:
    """Every job the simulator has created, by task id (blocking: call it between runs)."""
    jobs = fetch_json(base_url, "/_simulator/jobs")["jobs"]
    return {
        job["task_id"]: JobRecord(
            task_id=job["task_id"],
            model=job["model"],
            created=float(job["created"]),
            finishes_at=float(job["finishes_at"]),
            poll_count=int(job["poll_count"]),
        )
        for job in jobs
        if job["finishes_at"] is not None
    }


def records_for(known: Mapping[str, JobRecord], detected: Mapping[str, float | None]) -> list[Finished]:
    """The strategy's jobs (task id -> when it saw the end) matched with the simulator's records.

    Raises if a job is missing from the record, or if a job was seen to end before
    it ended: either would make every figure computed from them wrong.
    """
    out = []
    for task_id, when in detected.items():
        record = known.get(task_id)
        if record is None:
            raise RuntimeError(f"the simulator has no record of task {task_id}")
        if when is not None and when < record.finishes_at - 1e-3:
            raise RuntimeError(
                f"task {task_id} was seen to end {record.finishes_at - when:.4f} s before it ended: "
                "the client and the simulator do not share one monotonic clock"
            )
        out.append(Finished(record, when))
    return out


def detection_stats(finished: Sequence[Finished], scale: float) -> dict[str, float]:
    """Polls per job (mean) and the detection delay's mean, p50, p95 and maximum (real seconds) over ``finished``."""
    delays = [job.delay(scale) for job in finished]
    return {
        "jobs": len(finished),
        "polls_per_job": sum(job.record.poll_count for job in finished) / len(finished),
        "detection_mean": sum(delays) / len(delays),
        "detection_p50": percentile(delays, 50),
        "detection_p95": percentile(delays, 95),
        "detection_max": max(delays),
    }


KEEPING_UP = 0.8
# Below this share of its strict schedule, a fixed loop was slowed by this machine, not by its design.


def add_scale_options(parser: argparse.ArgumentParser, *, scale: float, seed: int, scaled: str) -> None:
    """``--time-scale`` (``scaled`` says what it multiplies) and ``--seed``, shared by the timed benchmarks."""
    parser.add_argument(
        "--time-scale", type=float, default=None, help=f"{scaled} are multiplied by this (default {scale:g})"
    )
    parser.add_argument("--seed", type=int, default=seed, help=f"the simulator's duration seed (default {seed})")


def keeping_up_notes(rows: Iterable[Mapping[str, Any]], intervals: Mapping[str, float], *, how: str = "") -> list[str]:
    """One note per fixed-interval row: how close its loop came to its strict schedule."""
    out = []
    for row in rows:
        share = row.get("share_of_schedule")
        if share is None:
            continue
        interval = intervals[row["strategy"]]
        verdict = "" if share >= KEEPING_UP else "; the client could NOT keep up at this time scale"
        out.append(
            f"{row['strategy']}: a poll every {interval / share:.2f} s on average{how}: "
            f"{100 * share:.0f} % of the polls of a strict {interval:g} s schedule{verdict}"
        )
    return out
