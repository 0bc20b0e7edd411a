"""What every benchmark script shares: the simulator process, CPU pinning, statistics, tables, options.

A benchmark runs its client in this process (pinned to core 0 by :func:`pin_client`)
against ``python -m fastrouter_async.testing`` in another (pinned to core 1 by
:func:`simulator_process`), so the two never compete for one core. Every
alternative measured (bare aiohttp, httpx, a hand-written poller) talks to the
same simulator process in the same run. Scripts print their results with
:func:`print_table`, headed by :func:`machine_line`, and take the options of
:func:`base_parser` (``--repeat``, ``--tiny``, ``--json``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import resource
import select
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import fastrouter_async

__all__ = [
    "API_KEY",
    "LoopLag",
    "base_parser",
    "fetch_json",
    "format_table",
    "loop_lag_probe",
    "machine_line",
    "median",
    "memory_kib",
    "origin_of",
    "percentile",
    "pin_client",
    "print_table",
    "reset_peak_rss",
    "simulator_cpu_seconds",
    "simulator_process",
    "write_json",
]

API_KEY = "sk-bench"  # the simulator accepts any key unless told otherwise; nothing is billed
SIMULATOR_START_TIMEOUT = 30.0  # seconds to wait for the simulator's "base URL" line
SIMULATOR_STOP_TIMEOUT = 10.0  # seconds SIGTERM gets before the simulator is killed
_PACKAGE_ROOT = Path(fastrouter_async.__file__).resolve().parent.parent
_simulator_pids: dict[str, int] = {}  # base URL -> process id, while running


# -- processes and cores ------------------------------------------------------------


def _pin(pid: int, cpu: int) -> None:
    # The machine's cores, not this process's affinity: a client pinned first must still pin its simulator
    # elsewhere (a child inherits its parent's affinity).
    cores = os.cpu_count() or 1
    if hasattr(os, "sched_setaffinity") and cores >= 2 and cpu < cores:
        os.sched_setaffinity(pid, {cpu})


def pin_client(cpu: int = 0) -> None:
    """Pin this process to core ``cpu`` (nothing to do on a machine with a single core)."""
    _pin(0, cpu)


@contextlib.contextmanager
def simulator_process(*args: str, cpu: int | None = 1) -> Iterator[str]:
    """Run ``python -m fastrouter_async.testing`` in a child process pinned to ``cpu``; yield its base URL.

    The child serves on a free loopback port, quietly and without keeping requests
    (``--quiet --no-records``), with ``args`` added (``"--hold"``...). It imports
    the same ``fastrouter_async`` as this process. On exit it gets SIGTERM, and is
    killed if it has not stopped within a few seconds.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "fastrouter_async.testing", "--port", "0", "--quiet", "--no-records", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    base_url = ""
    try:
        if cpu is not None:
            _pin(process.pid, cpu)
        base_url = _read_base_url(process)
        _simulator_pids[base_url] = process.pid
        yield base_url
    finally:
        _simulator_pids.pop(base_url, None)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(SIMULATOR_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _read_base_url(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + SIMULATOR_START_TIMEOUT
    seen: list[str] = []
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([process.stdout], [], [], left)
        if not ready:
            break
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the simulator exited ({process.wait()}) before serving: {''.join(seen)!r}")
        seen.append(line)
        if "base URL:" in line:
            return line.rsplit(" ", 1)[-1].strip()
    raise RuntimeError(f"the simulator did not say where it serves within {SIMULATOR_START_TIMEOUT:g} s")


def simulator_cpu_seconds(base_url: str) -> float:
    """The CPU time (user + system) used so far by the simulator process serving ``base_url``; NaN if unknown."""
    pid = _simulator_pids.get(base_url)
    if pid is None:
        return math.nan
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def origin_of(base_url: str) -> str:
    """``http://127.0.0.1:PORT`` for a base URL such as ``http://127.0.0.1:PORT/api/v1``."""
    return base_url.rstrip("/").removesuffix("/api/v1")


def fetch_json(origin: str, path: str) -> dict[str, Any]:
    """GET ``origin + path`` (``/_simulator/jobs`` or ``/_simulator/stats``) and decode its JSON (blocking)."""
    url = origin_of(origin) + path
    if not url.startswith(("http://127.", "http://localhost")):
        raise ValueError(f"fetch_json only asks a local simulator, not {url}")
    with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310  (a loopback http URL, checked above)
        body: dict[str, Any] = json.load(answer)
    return body


# -- the machine --------------------------------------------------------------------


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine_line(extra: Sequence[str] = ()) -> str:
    """``machine: 2 cores (CPU model), x86_64, Linux ...; Python ...; aiohttp ...; httpx ...; fastrouter-async ...``.

    ``extra`` adds parts (tool versions, say) before the library versions.
    """
    cores = f"{os.cpu_count()} cores"
    if (model := _cpu_model()) is not None:
        cores += f" ({model})"
    parts = [
        f"{cores}, {platform.machine()}, {platform.system()} {platform.release()}",
        f"Python {platform.python_version()}",
        *extra,
    ]
    for name in ("aiohttp", "httpx"):
        if (found := _package_version(name)) is not None:
            parts.append(f"{name} {found}")
    parts.append(f"fastrouter-async {fastrouter_async.__version__}")
    return "machine: " + "; ".join(parts)


def memory_kib() -> dict[str, int]:
    """``VmRSS`` (now) and ``VmHWM`` (peak) of this process, in KiB; ``ru_maxrss`` for both without /proc.

    From ``/proc/self/status`` rather than ``ru_maxrss``: on Linux a child's
    ``ru_maxrss`` starts from its parent's peak across ``exec``.
    """
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"VmRSS": peak, "VmHWM": peak}
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}


def reset_peak_rss() -> bool:
    """Make ``VmHWM`` start again from the current RSS (Linux 4.0+); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# -- statistics ---------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median (the mean of the two middle values for an even count)."""
    return percentile(values, 50.0)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (``q`` in [0, 100]), interpolating linearly between the closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in [0, 100], not {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class LoopLag:
    """How late each wake-up of a heartbeat task was, in seconds (see :func:`loop_lag_probe`)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.delays: list[float] = []

    @property
    def p50(self) -> float:
        return percentile(self.delays, 50) if self.delays else math.nan

    @property
    def p99(self) -> float:
        return percentile(self.delays, 99) if self.delays else math.nan

    @property
    def max(self) -> float:
        return max(self.delays, default=math.nan)

    def summary_ms(self) -> dict[str, float]:
        """``{"p50": ..., "p99": ..., "max": ...}`` in milliseconds, and the number of wake-ups."""
        return {"p50": self.p50 * 1000, "p99": self.p99 * 1000, "max": self.max * 1000, "samples": len(self.delays)}

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(self.interval)
            self.delays.append(max(0.0, loop.time() - asked - self.interval))


@contextlib.asynccontextmanager
async def loop_lag_probe(interval: float = 0.010) -> AsyncIterator[LoopLag]:
    """While inside, a heartbeat task sleeps ``interval`` over and over and records how late it wakes.

    ::

        async with loop_lag_probe() as lag:
            ...                       # the work whose effect on the event loop is measured
        print(lag.p50, lag.p99, lag.max)

    A late wake-up is time during which the event loop was busy with other
    callbacks: any coroutine of the program would have waited as long.
    """
    lag = LoopLag(interval)
    beat = asyncio.create_task(lag._beat())
    try:
        yield lag
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat


# -- output -------------------------------------------------------------------------


def _cell(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, float | int):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.1 or value == 0:
        return f"{value:.2f}"
    return f"{value:.3g}"


def format_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[object]], notes: Sequence[str] = ()
) -> str:
    """The text of :func:`print_table`."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(column)] + [len(row[i]) for row in cells]) for i, column in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        first = values[0].ljust(widths[0])
        return " | ".join([first, *(value.rjust(width) for value, width in zip(values[1:], widths[1:], strict=True))])

    header = line(list(columns))
    out = [title, header, "-" * len(header), *(line(row) for row in cells), *notes]
    return "\n".join(out)


def print_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[object]], notes: Sequence[str] = ()
) -> None:
    """Print a title line, an aligned plain-text table (numbers right-aligned, sensibly rounded), then notes."""
    print(format_table(title, columns, rows, notes), flush=True)


def write_json(path: Path | None, name: str, results: Mapping[str, Any]) -> None:
    """Write ``results`` with the benchmark's name and the machine line to ``path`` (nothing without a path)."""
    if path is None:
        return
    payload = {"benchmark": name, "machine": machine_line(), **results}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


# -- options ------------------------------------------------------------------------


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"at least 1 is needed, not {value}")
    return value


def base_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes: ``--repeat``, ``--tiny`` and ``--json``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--repeat", type=_at_least_one, default=3, help="runs of each contender; tables show medians (default 3)"
    )
    parser.add_argument(
        "--tiny", action="store_true", help="a very small size that runs in seconds (the test suite uses it)"
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results to PATH")
    return parser
