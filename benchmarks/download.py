"""Download benchmark: VideoResult.download() against curl, from the same local nginx.

Run it from the repository root, after ``make test`` (or ``make .venv/.installed``)::

    .venv/bin/python benchmarks/download.py                       # 50 MB and 500 MB, 3 runs each
    .venv/bin/python benchmarks/download.py --sizes 50,500 --repeat 5
    .venv/bin/python benchmarks/download.py --tiny --repeat 1     # 1 MB, for a quick check

It needs ``nginx`` and ``curl`` (``apt-get install nginx curl``). It starts nginx
on 127.0.0.1 with a temporary configuration and root (the same helper the tests
use), writes one random file per size, and then, ``--repeat`` times per size:

- ``curl -s -o FILE URL``: the practical limit of this machine for one HTTP
  download from this server (its own ``time_total``);
- our client, in a fresh child process: a :class:`FastRouterSimulator` in that
  process plays the API, its result URL points at nginx, and the time of
  ``await video.download(path)`` alone is measured. The child reports its RSS
  once set up (imports, simulator, session: the baseline) and its peak RSS
  after the download, so any growth with the file size shows. Both come from
  ``/proc/self/status`` (``VmRSS``, ``VmHWM``): on Linux ``ru_maxrss`` carries
  the parent's peak over into a child across ``exec``, which would hide the
  child's own figure.

Both write into the same temporary folder; ours also fsyncs the file before
renaming it into place (curl does not). The table shows medians; MB are 10^6
bytes and RSS is in MiB. The sha256 of every download is checked.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
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

from _harness import base_parser, machine_line, median, memory_kib, print_table, write_json  # noqa: E402

from fastrouter_async import FastRouterSession, PollPolicy  # noqa: E402
from fastrouter_async.testing import FastRouterSimulator  # noqa: E402
from tests._nginx import NGINX_MISSING, NginxServer, find_nginx, nginx_version  # noqa: E402

MB = 1_000_000
_CHUNK = 4 * 1024 * 1024
_QUICK_POLL = PollPolicy(first_delay=0.0, interval=0.001, max_interval=0.002, jitter=0.0)


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


# -- the child: one download through our client ------------------------------


async def child_download(origin: str, root: Path, source: Path, out: Path) -> dict[str, Any]:
    sim = FastRouterSimulator(asset_origin=origin)  # the hosted copy's URL: {origin}/videos-content/<task id>
    async with (
        sim.serve() as server,
        FastRouterSession("sk-benchmark-not-a-key", base_url=server.base_url, poll_policy=_QUICK_POLL) as session,
    ):
        video = await (await session.submit(model="google/veo3", prompt="a benchmark"))
        link = root / "videos-content" / video.task_id
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source)
        baseline = memory_kib()["VmRSS"]
        started = time.perf_counter()
        written = await video.download(out)
        seconds = time.perf_counter() - started
        link.unlink()
    peak = memory_kib()["VmHWM"]
    return {
        "seconds": seconds,
        "size": written.size,
        "sha256": written.sha256,
        "baseline_kib": baseline,
        "peak_kib": peak,
    }


def run_child(nginx: NginxServer, source: Path, out: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", nginx.origin, str(nginx.root), str(source), str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the download child failed ({done.returncode}): {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- curl -----------------------------------------------------------------------


def run_curl(curl: str, url: str, out: Path) -> dict[str, Any]:
    done = subprocess.run(
        [curl, "-s", "-S", "-f", "-o", str(out), "-w", "%{time_total} %{size_download}", url],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"curl failed ({done.returncode}): {done.stderr.strip()}")
    seconds, size = done.stdout.split()
    return {"seconds": float(seconds), "size": int(size)}


def curl_version(curl: str) -> str:
    first = subprocess.run([curl, "--version"], capture_output=True, text=True, check=False).stdout.splitlines()
    return " ".join(first[0].split()[:2]) if first else "curl (unknown version)"


# -- the parent: files, runs, table ---------------------------------------------


def measure(nginx: NginxServer, curl: str, work: Path, size_mb: float, repeat: int) -> dict[str, Any]:
    size = int(size_mb * MB)
    source = work / f"source-{size}.bin"
    sha = write_random_file(source, size)
    url = nginx.origin + nginx.publish(f"files/{source.name}", source)
    curl_runs: list[dict[str, Any]] = []
    our_runs: list[dict[str, Any]] = []
    out = work / "out" / "video.mp4"
    out.parent.mkdir(exist_ok=True)
    for _ in range(repeat):
        curl_runs.append(run_curl(curl, url, out))
        if curl_runs[-1]["size"] != size or sha256_of(out) != sha:
            raise RuntimeError(f"curl's copy of the {size_mb} MB file differs from the source")
        out.unlink()
        our_runs.append(run_child(nginx, source, out))
        if (our_runs[-1]["size"], our_runs[-1]["sha256"]) != (size, sha) or sha256_of(out) != sha:
            raise RuntimeError(f"our copy of the {size_mb} MB file differs from the source")
        out.unlink()
    source.unlink()
    curl_s = median([run["seconds"] for run in curl_runs])
    ours_s = median([run["seconds"] for run in our_runs])
    return {
        "size_mb": size_mb,
        "curl_mbps": size / curl_s / MB,
        "ours_mbps": size / ours_s / MB,
        "baseline_mib": median([run["baseline_kib"] for run in our_runs]) / 1024,
        "peak_mib": max(run["peak_kib"] for run in our_runs) / 1024,
        "growth_mib": max(run["peak_kib"] - run["baseline_kib"] for run in our_runs) / 1024,
    }


TITLE = "download: VideoResult.download() against curl, from the same local nginx"
COLUMNS = ("file", "curl MB/s", "ours MB/s", "ours/curl", "RSS before", "peak RSS", "growth")


def print_results(rows: list[dict[str, Any]], repeat: int, nginx_text: str, curl_text: str) -> None:
    print(machine_line([nginx_text, curl_text]))
    print_table(
        TITLE,
        COLUMNS,
        [
            [
                f"{row['size_mb']:g} MB",
                row["curl_mbps"],
                row["ours_mbps"],
                row["ours_mbps"] / row["curl_mbps"],
                row["baseline_mib"],
                row["peak_mib"],
                f"{row['growth_mib']:+.1f}",
            ]
            for row in rows
        ],
        [
            f"throughput: median of {repeat} run(s); MB = 10^6 bytes. Our download process, in MiB: RSS once set up "
            "(median), peak RSS (highest), growth = peak - RSS before (largest)"
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "download")
    parser.add_argument("--sizes", type=parse_sizes, default=None, help="file sizes in MB (default 50,500; --tiny 1)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the files (default: a temporary folder)")
    parser.add_argument("--child", nargs=4, metavar=("ORIGIN", "ROOT", "SOURCE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        origin, root, source, out = args.child
        print(json.dumps(asyncio.run(child_download(origin, Path(root), Path(source), Path(out)))))
        return 0
    sizes = args.sizes or ([1.0] if args.tiny else [50.0, 500.0])
    if (reason := skip_reason()) is not None:
        print(reason, file=sys.stderr)
        return 2
    binary, curl = find_nginx(), shutil.which("curl")
    assert binary is not None  # skip_reason() checked it
    assert curl is not None
    with tempfile.TemporaryDirectory(prefix="fastrouter-bench-", dir=args.dir) as tmp:
        work = Path(tmp)
        (work / "nginx").mkdir()
        with NginxServer(binary, work / "nginx") as nginx:
            rows = [measure(nginx, curl, work, size, args.repeat) for size in sizes]
    print_results(rows, args.repeat, nginx_version(binary), curl_version(curl))
    write_json(args.json, "download", {"repeat": args.repeat, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
