"""Download benchmark: VideoResult.download() against curl, from the same local nginx; and the loop while downloading.

Run it from the repository root, after ``make test`` (or ``make .venv/.installed``)::

    .venv/bin/python benchmarks/download.py                       # 50 MB and 500 MB, 3 rounds each
    .venv/bin/python benchmarks/download.py --sizes 500 --repeat 5
    .venv/bin/python benchmarks/download.py --tiny --repeat 1     # 1 MB, for a quick check

It needs ``nginx`` and ``curl`` (``apt-get install nginx curl``). It starts nginx
on 127.0.0.1 with a temporary configuration and root (the same helper the tests
use), pinned to core 1 while the clients run on core 0, writes one random file
per size, and then runs ``--repeat`` alternating rounds per size, each of:

- ``curl -s -o FILE URL``: the practical limit of this machine for one HTTP
  download from this server (its own ``time_total``), then ``fsync`` of the
  file: "curl, then fsync" is the like-for-like reference, since ours fsyncs
  before its rename (a file that is not on the disk yet is not downloaded);
- our client, in a fresh child process: a :class:`FastRouterSimulator` in that
  process plays the API, its result URL points at nginx, and the time of
  ``await video.download(path)`` alone is measured (fsync included). The child
  reports its RSS once set up (imports, simulator, session: the baseline) and
  its peak RSS after the download, so any growth with the file size shows. Both
  come from ``/proc/self/status`` (``VmRSS``, ``VmHWM``): on Linux ``ru_maxrss``
  carries the parent's peak over into a child across ``exec``, which would hide
  the child's own figure.

CPU per GB is user + system time: curl's from ``getrusage(RUSAGE_CHILDREN)``
around it, ours from ``getrusage(RUSAGE_SELF)`` around the download in the
child (every thread of it, the writer thread included). The tables show medians
with the spread (lowest-highest) of the ratios; MB are 10^6 bytes, GB 10^9, RSS
in MiB. The sha256 of every download is checked.

**No stall while downloading.** A last child keeps ``--lag-jobs`` jobs (1,000)
polled against a simulator process that holds them running (``--hold``, core 1),
and downloads ``--lag-downloads`` files (4) of the largest size at once, while a
10 ms heartbeat measures the event loop's lag during the downloads.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the nginx helper lives with the tests

from _harness import (  # noqa: E402
    API_KEY,
    base_parser,
    loop_lag_probe,
    machine_line,
    median,
    memory_kib,
    pin_client,
    print_table,
    simulator_process,
    write_json,
)

from fastrouter_async import FastRouterSession, PollPolicy, VideoJob  # noqa: E402
from fastrouter_async.testing import FastRouterSimulator  # noqa: E402
from tests._nginx import NGINX_MISSING, NginxServer, find_nginx, nginx_version  # noqa: E402

MB = 1_000_000
GB = 1_000_000_000
_CHUNK = 4 * 1024 * 1024
_QUICK_POLL = PollPolicy(first_delay=0.0, interval=0.001, max_interval=0.002, jitter=0.0)
LAG_POLL_POLICY = PollPolicy(first_delay=0.5, interval=1.0, max_interval=5.0)  # as benchmarks/scale.py
LAG_GOAL_MS = 50.0  # loop lag p99 while downloading and polling
SPEED_GOAL = 1.3  # at least this times the speed of "curl, then fsync"
CPU_GOAL = 1.3  # client CPU per GB at most this times curl's
NGINX_CPU = 1  # nginx and the held-jobs simulator on core 1, the clients on core 0
CLIENT_CPU = 0


def write_random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; return their sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        # It must start like a video (an MP4 ftyp box): downloads refuse anything else.
        head = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"[:size]
        out.write(head)
        digest.update(head)
        left = size - len(head)
        while left:
            chunk = os.urandom(min(left, _CHUNK))
            out.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


# -- the child: one download through our client ------------------------------


async def finished_videos(sim: FastRouterSimulator, session: FastRouterSession, count: int) -> list[Any]:
    return [await (await session.submit(model="google/veo3", prompt=f"a benchmark {i}")) for i in range(count)]


async def child_download(origin: str, root: Path, source: Path, out: Path) -> dict[str, Any]:
    sim = FastRouterSimulator(asset_origin=origin)  # the hosted copy's URL: {origin}/videos-content/<task id>
    async with (
        sim.serve() as server,
        FastRouterSession("sk-benchmark-not-a-key", base_url=server.base_url, poll_policy=_QUICK_POLL) as session,
    ):
        (video,) = await finished_videos(sim, session, 1)
        link = root / "videos-content" / video.task_id
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source)
        baseline = memory_kib()["VmRSS"]
        cpu = cpu_seconds(resource.RUSAGE_SELF)
        started = time.perf_counter()
        written = await video.download(out)
        seconds = time.perf_counter() - started
        cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu
        link.unlink()
    peak = memory_kib()["VmHWM"]
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "size": written.size,
        "sha256": written.sha256,
        "baseline_kib": baseline,
        "peak_kib": peak,
    }


def run_child(*args: str) -> dict[str, Any]:
    command = [sys.executable, __file__, *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the download child failed ({done.returncode}): {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- the child: no stall while downloading ---------------------------------------


async def child_lag(
    origin: str, root: Path, source: Path, out_dir: Path, *, jobs: int, downloads: int
) -> dict[str, Any]:
    """Keep ``jobs`` jobs polled and download ``downloads`` copies of ``source`` at once; the loop's lag meanwhile."""
    sim = FastRouterSimulator(asset_origin=origin)
    with simulator_process("--hold", cpu=NGINX_CPU) as hold_url:
        async with (
            sim.serve() as server,
            FastRouterSession("sk-benchmark-not-a-key", base_url=server.base_url, poll_policy=_QUICK_POLL) as dl,
            FastRouterSession(
                API_KEY, base_url=hold_url, max_concurrent_jobs=None, poll_policy=LAG_POLL_POLICY
            ) as held_session,
        ):
            videos = await finished_videos(sim, dl, downloads)
            links = []
            for video in videos:
                link = root / "videos-content" / video.task_id
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(source)
                links.append(link)
            held: list[VideoJob] = []
            gate = asyncio.Semaphore(64)

            async def submit(i: int) -> None:
                async with gate:
                    held.append(await held_session.submit(model="google/veo3-fast", prompt=f"held {i}"))

            await asyncio.gather(*(submit(i) for i in range(jobs)))
            waiters = [asyncio.ensure_future(job.result()) for job in held]
            try:
                await asyncio.sleep(3.0)  # past the first, denser polls of every job
                async with loop_lag_probe() as lag:
                    started = time.perf_counter()
                    written = await asyncio.gather(
                        *(video.download(out_dir / f"v{i}.mp4") for i, video in enumerate(videos))
                    )
                    seconds = time.perf_counter() - started
                async with loop_lag_probe() as polling_lag:  # the control: as long, polling alone
                    await asyncio.sleep(seconds)
            finally:
                for waiter in waiters:
                    waiter.cancel()
                await asyncio.gather(*waiters, return_exceptions=True)
            for link in links:
                link.unlink()
    return {
        "seconds": seconds,
        "sizes": [w.size for w in written],
        "sha256": [w.sha256 for w in written],
        "lag_ms": lag.summary_ms(),
        "polling_only_lag_ms": polling_lag.summary_ms(),
    }


# -- curl -----------------------------------------------------------------------


def run_curl(curl: str, url: str, out: Path) -> dict[str, Any]:
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [curl, "-s", "-S", "-f", "-o", str(out), "-w", "%{time_total} %{size_download}", url],
        capture_output=True,
        text=True,
        check=False,
    )
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - cpu
    if done.returncode != 0:
        raise RuntimeError(f"curl failed ({done.returncode}): {done.stderr.strip()}")
    seconds, size = done.stdout.split()
    started = time.perf_counter()
    fd = os.open(out, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_seconds = time.perf_counter() - started
    return {"seconds": float(seconds), "fsync_seconds": fsync_seconds, "cpu_seconds": cpu, "size": int(size)}


def curl_version(curl: str) -> str:
    first = subprocess.run([curl, "--version"], capture_output=True, text=True, check=False).stdout.splitlines()
    return " ".join(first[0].split()[:2]) if first else "curl (unknown version)"


# -- the parent: files, runs, table ---------------------------------------------


def spread(values: Sequence[float]) -> str:
    return f"{median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def measure(nginx: NginxServer, curl: str, work: Path, size_mb: float, repeat: int) -> dict[str, Any]:
    size = int(size_mb * MB)
    source = work / f"source-{size}.bin"
    sha = write_random_file(source, size)
    url = nginx.origin + nginx.publish(f"files/{source.name}", source)
    curl_runs: list[dict[str, Any]] = []
    our_runs: list[dict[str, Any]] = []
    out = work / "out" / "video.mp4"
    out.parent.mkdir(exist_ok=True)
    for _ in range(repeat):  # alternating rounds: a noisy neighbour slows both, not one
        curl_runs.append(run_curl(curl, url, out))
        if curl_runs[-1]["size"] != size or sha256_of(out) != sha:
            raise RuntimeError(f"curl's copy of the {size_mb} MB file differs from the source")
        out.unlink()
        our_runs.append(run_child("--child", nginx.origin, str(nginx.root), str(source), str(out)))
        if (our_runs[-1]["size"], our_runs[-1]["sha256"]) != (size, sha) or sha256_of(out) != sha:
            raise RuntimeError(f"our copy of the {size_mb} MB file differs from the source")
        out.unlink()
    source.unlink()
    rounds = list(zip(curl_runs, our_runs, strict=True))
    return {
        "size_mb": size_mb,
        "curl_mbps": size / median([c["seconds"] for c in curl_runs]) / MB,
        "curl_fsync_mbps": size / median([c["seconds"] + c["fsync_seconds"] for c in curl_runs]) / MB,
        "ours_mbps": size / median([o["seconds"] for o in our_runs]) / MB,
        "vs_curl": [c["seconds"] / o["seconds"] for c, o in rounds],
        "vs_curl_fsync": [(c["seconds"] + c["fsync_seconds"]) / o["seconds"] for c, o in rounds],
        "curl_cpu_s_per_gb": median([c["cpu_seconds"] for c in curl_runs]) * GB / size,
        "ours_cpu_s_per_gb": median([o["cpu_seconds"] for o in our_runs]) * GB / size,
        "cpu_vs_curl": [o["cpu_seconds"] / c["cpu_seconds"] if c["cpu_seconds"] else 0.0 for c, o in rounds],
        "baseline_mib": median([run["baseline_kib"] for run in our_runs]) / 1024,
        "peak_mib": max(run["peak_kib"] for run in our_runs) / 1024,
        "growth_mib": max(run["peak_kib"] - run["baseline_kib"] for run in our_runs) / 1024,
        "runs": {"curl": curl_runs, "ours": our_runs},
    }


def measure_lag(nginx: NginxServer, work: Path, size_mb: float, jobs: int, downloads: int) -> dict[str, Any]:
    size = int(size_mb * MB)
    source = work / f"lag-source-{size}.bin"
    sha = write_random_file(source, size)
    out_dir = work / "lag-out"
    out_dir.mkdir(exist_ok=True)
    result = run_child(
        "--lag-child", nginx.origin, str(nginx.root), str(source), str(out_dir), str(jobs), str(downloads)
    )
    if result["sizes"] != [size] * downloads or result["sha256"] != [sha] * downloads:
        raise RuntimeError("a copy downloaded during the lag case differs from the source")
    shutil.rmtree(out_dir)
    source.unlink()
    return {"size_mb": size_mb, "jobs": jobs, "downloads": downloads, **result}


TITLE = "download: VideoResult.download() against curl, from the same local nginx"
COLUMNS = (
    "file",
    "curl MB/s",
    "curl+fsync MB/s",
    "ours MB/s",
    "ours/curl",
    "ours/(curl+fsync)",
    "CPU s/GB curl",
    "CPU s/GB ours",
    "CPU ours/curl",
    "RSS before",
    "peak RSS",
    "growth",
)
LAG_TITLE = "download: no stall, loop lag while downloading and polling"
LAG_COLUMNS = ("window", "jobs polled", "downloads", "file", "wall (s)", "lag p50 ms", "lag p99 ms", "lag max ms")


def print_results(rows: list[dict[str, Any]], lag: dict[str, Any] | None, repeat: int, extra: list[str]) -> None:
    print(machine_line(extra))
    print_table(
        TITLE,
        COLUMNS,
        [
            [
                f"{row['size_mb']:g} MB",
                row["curl_mbps"],
                row["curl_fsync_mbps"],
                row["ours_mbps"],
                spread(row["vs_curl"]),
                spread(row["vs_curl_fsync"]),
                row["curl_cpu_s_per_gb"],
                row["ours_cpu_s_per_gb"],
                spread(row["cpu_vs_curl"]),
                row["baseline_mib"],
                row["peak_mib"],
                f"{row['growth_mib']:+.1f}",
            ]
            for row in rows
        ],
        [
            f"{repeat} alternating round(s) (curl, then ours); throughput and CPU: medians; ratios: per-round "
            "median (lowest-highest). MB = 10^6 bytes, GB = 10^9. Our download process, in MiB: RSS once set up "
            "(median), peak RSS (highest), growth = peak - RSS before (largest)",
            f"goal: ours/(curl+fsync) >= {SPEED_GOAL} and CPU ours/curl <= {CPU_GOAL}",
        ],
    )
    if lag is not None:
        ms, alone = lag["lag_ms"], lag["polling_only_lag_ms"]
        keys = ("p50", "p99", "max")
        size = f"{lag['size_mb']:g} MB"
        print_table(
            LAG_TITLE,
            LAG_COLUMNS,
            [
                ["downloading", lag["jobs"], lag["downloads"], size, lag["seconds"], *(ms[k] for k in keys)],
                ["polling only", lag["jobs"], 0, "-", lag["seconds"], *(alone[k] for k in keys)],
            ],
            [
                f"10 ms heartbeat ({ms['samples']:.0f} and {alone['samples']:.0f} wake-ups); the control window, "
                f"as long, follows with the same jobs polled and nothing downloading; goal: p99 < {LAG_GOAL_MS:g} ms "
                "while downloading"
            ],
        )


def skip_reason() -> str | None:
    """Why this benchmark cannot run here (nginx or curl missing), or ``None``."""
    if find_nginx() is None:
        return NGINX_MISSING
    if shutil.which("curl") is None:
        return "curl is not installed: apt-get install curl"
    return None


def parse_sizes(text: str) -> list[float]:
    sizes = [float(part) for part in text.split(",") if part.strip()]
    if not sizes or any(size <= 0 for size in sizes):
        raise argparse.ArgumentTypeError("sizes are positive numbers of MB, comma-separated (e.g. 50,500)")
    return sizes


def pin_nginx(nginx: NginxServer) -> None:
    """nginx on its own core, apart from the clients (nothing to do where affinity cannot be set)."""
    try:
        pid = int((nginx.workdir / "nginx.pid").read_text().strip())
    except (OSError, ValueError):
        return
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > NGINX_CPU:
        os.sched_setaffinity(pid, {NGINX_CPU})


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "download")
    parser.add_argument("--sizes", type=parse_sizes, default=None, help="file sizes in MB (default 50,500; --tiny 1)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the files (default: a temporary folder)")
    parser.add_argument("--lag-jobs", type=int, default=None, help="jobs polled in the no-stall case (default 1000)")
    parser.add_argument("--lag-downloads", type=int, default=4, help="downloads at once in the no-stall case")
    parser.add_argument("--no-lag", action="store_true", help="skip the no-stall case")
    parser.add_argument("--child", nargs=4, metavar=("ORIGIN", "ROOT", "SOURCE", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--lag-child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        origin, root, source, out = args.child
        print(json.dumps(asyncio.run(child_download(origin, Path(root), Path(source), Path(out)))))
        return 0
    if args.lag_child:
        origin, root, source, out_dir, jobs, downloads = args.lag_child
        lag_run = child_lag(origin, Path(root), Path(source), Path(out_dir), jobs=int(jobs), downloads=int(downloads))
        print(json.dumps(asyncio.run(lag_run)))
        return 0
    sizes = args.sizes or ([1.0] if args.tiny else [50.0, 500.0])
    lag_jobs = args.lag_jobs if args.lag_jobs is not None else (100 if args.tiny else 1000)
    if (reason := skip_reason()) is not None:
        print(reason, file=sys.stderr)
        return 2
    binary, curl = find_nginx(), shutil.which("curl")
    assert binary is not None  # skip_reason() checked it
    assert curl is not None
    pin_client(CLIENT_CPU)  # curl and our child processes inherit it
    with tempfile.TemporaryDirectory(prefix="fastrouter-bench-", dir=args.dir) as tmp:
        work = Path(tmp)
        (work / "nginx").mkdir()
        with NginxServer(binary, work / "nginx") as nginx:
            pin_nginx(nginx)
            rows = [measure(nginx, curl, work, size, args.repeat) for size in sizes]
            lag = None if args.no_lag else measure_lag(nginx, work, max(sizes), lag_jobs, args.lag_downloads)
    print_results(rows, lag, args.repeat, [nginx_version(binary), curl_version(curl)])
    write_json(args.json, "download", {"repeat": args.repeat, "rows": rows, "lag": lag})
    return 0


if __name__ == "__main__":
    sys.exit(main())
