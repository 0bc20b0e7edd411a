"""The benchmark scripts run end to end at their --tiny size, and their shared helpers compute what they say."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
TIMEOUT = 180  # seconds; each takes a few at --tiny


def load(name: str) -> ModuleType:
    """Import ``benchmarks/NAME.py`` (the folder is not a package; its scripts import ``_harness``)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=TIMEOUT, check=False, cwd=ROOT, env=env
    )


@pytest.mark.parametrize(
    ("script", "title", "header"),
    [
        ("request_cost", "request cost: job.status()", "contender    | requests/s | client CPU us/request"),
        ("scale", "scale: jobs in flight in one process", "poller                 | jobs | KB per job"),
        ("polling", "polling: requests per job and detection delay", "strategy                        | polls/job"),
        ("budget", "budget: jobs kept in flight under 600 requests/minute", "strategy              | jobs in flight"),
        ("makespan", "makespan: 50 jobs with a cap of 5", "strategy                        | wall (s)"),
    ],
)
def test_benchmark_runs_tiny(script: str, title: str, header: str, tmp_path: Path) -> None:
    """Each benchmark runs at --tiny --repeat 1, prints the machine line, its table and goals, and writes --json."""
    out = tmp_path / f"{script}.json"
    done = run_script(str(BENCHMARKS / f"{script}.py"), "--tiny", "--repeat", "1", "--json", str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("machine: ")
    assert lines[1].startswith(title)
    assert lines[2].startswith(header)
    assert any(line.startswith("goal: ") for line in lines)
    results = json.loads(out.read_text())
    assert (results["benchmark"], results["machine"]) == (script, lines[0])
    assert results["rows"]


def test_request_cost_layers_run_tiny(tmp_path: Path) -> None:
    """request_cost --layers measures each layer of our path beside ours and the bare loop, over the same jobs."""
    out = tmp_path / "layers.json"
    done = run_script(str(BENCHMARKS / "request_cost.py"), "--tiny", "--repeat", "1", "--layers", "--json", str(out))
    assert done.returncode == 0, done.stderr
    rows = {row["contender"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"ours", "bare aiohttp", "transport only", "+ budget", "+ answer read"}
    for row in rows.values():
        assert row["requests_per_second"] > 0
        assert row["cpu_us_per_request"] > 0
        assert math.isfinite(row["ours_over_this_rate"])


def test_scale_gc_freeze_runs_tiny(tmp_path: Path) -> None:
    """scale --gc-freeze has each program freeze the collector's view once its jobs are submitted, and says so."""
    out = tmp_path / "scale.json"
    done = run_script(
        str(BENCHMARKS / "scale.py"), "--tiny", "--repeat", "1", "--only", "ours", "--gc-freeze", "--json", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert any(line.startswith("--gc-freeze: each program called gc.freeze()") for line in done.stdout.splitlines())
    results = json.loads(out.read_text())
    assert results["gc_freeze"] is True
    assert [run["gc_freeze"] for run in results["runs"]] == [True]


def test_run_all_lists_every_benchmark() -> None:
    """run_all knows every benchmark script and says whether each can run here."""
    done = run_script(str(BENCHMARKS / "run_all.py"), "--list")
    assert done.returncode == 0, done.stderr
    listed = [line.split(":", 1)[0] for line in done.stdout.splitlines()]
    assert listed == ["request_cost", "scale", "polling", "budget", "makespan", "download", "many_workers"]
    scripts = {path.stem for path in BENCHMARKS.glob("*.py") if not path.stem.startswith("_")} - {"run_all"}
    assert set(listed) == scripts


def test_many_workers_runs_tiny(tmp_path: Path) -> None:
    """many_workers runs its modes at --tiny with 1 and 2 workers; the simulator's cap holds in every run."""
    out = tmp_path / "many_workers.json"
    done = run_script(str(BENCHMARKS / "many_workers.py"), "--tiny", "--repeat", "1", "--json", str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("machine: ")
    assert lines[1].startswith("many workers: N processes on one account: 24 jobs")
    assert lines[2].startswith("mode ")
    assert sum(line.startswith("goal: shared store") for line in lines) == 2
    results = json.loads(out.read_text())
    assert results["benchmark"] == "many_workers"
    modes = {(row["mode"], row["workers"]) for row in results["rows"]}
    assert {("same", 1), ("same", 2), ("divided", 1), ("divided", 2)} <= modes
    for mode, reason in results["skipped"].items():
        assert f"{load('many_workers').MODES[mode]}: skipped: {reason}" in lines
    for run in results["runs"]:
        assert run["done"] + run["failed"] == run["jobs"] == 24
        assert run["max_in_flight"] <= results["options"]["cap"]


def test_percentile_interpolates_between_closest_ranks() -> None:
    """percentile() interpolates linearly between closest ranks; median() is the 50th percentile."""
    harness = load("_harness")
    values = [4.0, 1.0, 3.0, 2.0]
    assert [harness.percentile(values, q) for q in (0, 25, 50, 99, 100)] == pytest.approx([1, 1.75, 2.5, 3.97, 4])
    assert harness.median([5.0, 1.0, 3.0]) == 3.0
    for bad_q in (-1, 101):
        with pytest.raises(ValueError, match="q must be"):
            harness.percentile(values, bad_q)
    with pytest.raises(ValueError, match="no values"):
        harness.median([])


def test_table_aligns_columns_and_rounds_numbers() -> None:
    """format_table() aligns columns under a title and rounds numbers to a few significant figures."""
    harness = load("_harness")
    text = harness.format_table(
        "a title", ["name", "rate", "ratio"], [["ours", 4219.6, 0.8034], ["other", 12.345, math.nan]], ["a note"]
    )
    assert text.splitlines() == [
        "a title",
        "name  |  rate | ratio",
        "---------------------",
        "ours  | 4,220 |  0.80",
        "other |  12.3 |     -",
        "a note",
    ]


def test_loop_lag_probe_sees_a_blocked_loop() -> None:
    """loop_lag_probe() records how late its heartbeat wakes, so a callback hogging the loop shows as lag."""
    harness = load("_harness")

    async def hog_the_loop() -> Any:
        async with harness.loop_lag_probe(interval=0.001) as lag:
            await asyncio.sleep(0)  # the heartbeat starts its first 1 ms wait
            started = time.perf_counter()
            while time.perf_counter() - started < 0.03:  # busy, not asleep: the heartbeat cannot run
                pass
            while not lag.delays:
                await asyncio.sleep(0)
        return lag

    lag = asyncio.run(hog_the_loop())
    assert lag.delays[0] >= 0.02
    assert lag.p50 <= lag.p99 <= lag.max
    assert set(lag.summary_ms()) == {"p50", "p99", "max", "samples"}


def test_ideal_makespan_is_list_scheduling_in_submit_order() -> None:
    """makespan's ideal starts each job, in submit order, the instant the earliest slot frees."""
    waiting, makespan = load("_waiting"), load("makespan")

    def job(created: float, duration: float) -> Any:
        record = waiting.JobRecord(f"fr_{created}", "m", created, created + duration, 1)
        return waiting.Finished(record, created + duration)

    # Two slots: 4 and 1 start at once; 3 takes the slot freed at 1 (ends at 4); 2 the one freed at 4 (ends at 6).
    jobs = [job(0.0, 4.0), job(0.1, 1.0), job(0.2, 3.0), job(0.3, 2.0)]
    assert makespan.ideal_makespan(list(reversed(jobs)), cap=2) == 6.0
    assert makespan.ideal_makespan(jobs, cap=4) == 4.0


def test_detection_figures_come_from_the_simulator_record() -> None:
    """Detection delays are real seconds after the simulated end; a job seen to end before it ended is an error."""
    waiting = load("_waiting")
    known = {
        "a": waiting.JobRecord("a", "m", 10.0, 12.0, 3),
        "b": waiting.JobRecord("b", "m", 10.0, 14.0, 5),
    }
    finished = waiting.records_for(known, {"a": 12.05, "b": None})
    assert [job.delay(0.01) for job in finished] == pytest.approx([5.0, math.inf])
    stats = waiting.detection_stats(finished[:1], 0.01)
    assert (stats["polls_per_job"], stats["detection_p50"]) == pytest.approx((3, 5.0))
    with pytest.raises(RuntimeError, match="before it ended"):
        waiting.records_for(known, {"a": 11.0})
    with pytest.raises(RuntimeError, match="no record"):
        waiting.records_for(known, {"c": 1.0})
