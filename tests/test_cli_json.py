"""``--json``: every line on stdout is one JSON object with a documented type and fields, errors included.

The command line runs as a subprocess against the test's simulator (or a hostile server on
loopback), as in test_cli.py; each line is parsed on its own and checked against the field
sets documented in docs/cli.md ("Machine-readable output").
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastrouter_async import FastRouterSession
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan, SimulatorServer, sample_video

from .conftest import API_KEY, FAST_POLL
from .test_cli import POLL, Child, batch_args, child_env, cli, generate_args, prompts_file, run, sha256
from .test_cli_terminal import HOSTILE_ID, HOSTILE_MESSAGE, RAW_ESCAPES, HostileServer, hostile

__all__ = ["cli", "hostile"]

COMMON = {"type", "schema"}
FIELDS = {
    "submitted": COMMON | {"task_id", "model", "elapsed"},
    "status": COMMON | {"task_id", "model", "state", "raw_status", "error", "urls", "cost_usd", "credits_used"},
    "progress": COMMON | {"task_id", "received", "total", "elapsed"},
    "downloaded": COMMON | {"task_id", "path", "bytes", "sha256", "elapsed"},
    "result": COMMON | {"task_id", "model", "state", "path", "bytes", "sha256", "cost_usd", "credits_used", "elapsed"},
    "error": COMMON | {"error", "message", "task_id", "download_command", "status_code", "exit_code"},
    "stopped": COMMON | {"message", "task_id", "download_command"},
    "job": COMMON
    | {"index", "task_id", "model", "prompt", "state", "raw_status", "error", "file", "bytes", "sha256", "cost_usd"}
    | {"download_command"},
    "summary": COMMON | {"jobs", "states"},
    "log": COMMON | {"level", "logger", "message"},
}
FIELDS["status"] = FIELDS["status"] | {"elapsed"}  # generate and download add it; status does not
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def objects(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as a JSON object with a known type, its documented fields, and nothing unsafe."""
    assert API_KEY not in text
    found = []
    for line in text.splitlines():
        assert not CONTROL.search(line), line  # no raw escape or control character, not even a tab
        assert line.isascii(), line
        value = json.loads(line)
        assert isinstance(value, dict), line
        assert value["schema"] == 1, line
        assert set(value) <= FIELDS[value["type"]], line
        required = FIELDS[value["type"]] - ({"elapsed"} if value["type"] == "status" else set())
        assert required <= set(value), line
        found.append(value)
    return found


def only(child: Child) -> list[dict[str, Any]]:
    """The child's stdout objects; its stderr must be empty (nothing for people on the side)."""
    assert child.stderr == "", child.stderr
    return objects(child.stdout)


async def test_generate_json_reports_each_step_as_one_object_per_line(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """generate --json: submitted, status changes, progress, downloaded, result; nothing on stderr, no key."""
    sim.default_plan = JobPlan(duration=0.3)  # running long enough for a "running" status to be seen
    code, child = await run(cli, *generate_args(server, "a cat surfing"), "-o", "out/cat.mp4", "--json")
    assert code == 0, child.stdout + child.stderr
    events = only(child)
    kinds = [event["type"] for event in events]
    assert kinds[0] == "submitted"
    assert kinds[-2:] == ["downloaded", "result"]
    assert set(kinds[1:-2]) == {"status", "progress"}
    task_id = events[0]["task_id"]
    assert {event["task_id"] for event in events} == {task_id}
    states = [event["state"] for event in events if event["type"] == "status"]
    assert states[0] == "running"
    assert states[-1] == "succeeded"
    assert next(event["raw_status"] for event in events if event["type"] == "status") == "processing"
    data = sample_video()
    assert events[-3]["type"] == "progress"
    assert events[-3]["received"] == events[-3]["total"] == len(data)
    result = events[-1]
    assert result["path"] == str(Path("out") / "cat.mp4")
    assert (result["bytes"], result["sha256"], result["cost_usd"]) == (len(data), sha256(data), 0.21)
    assert (tmp_path / "out" / "cat.mp4").read_bytes() == data


async def test_generate_json_logs_are_json_on_stderr(
    cli: Callable[..., Any], server: SimulatorServer, tmp_path: Path
) -> None:
    """generate --json -v: stdout holds only events; what is logged goes to stderr as JSON log objects."""
    code, child = await run(cli, *generate_args(server, "a cat"), "-o", "cat.mp4", "--json", "-v")
    assert code == 0, child.stdout + child.stderr
    assert {event["type"] for event in objects(child.stdout)} >= {"submitted", "result"}
    logs = objects(child.stderr)
    assert logs
    assert {entry["type"] for entry in logs} == {"log"}
    assert {entry["level"] for entry in logs} <= {"info", "warning", "error"}


async def test_status_json_is_one_object(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """status --json prints one status object: running, then succeeded with its URLs and cost."""
    sim.default_plan = JobPlan(polls=2)
    async with FastRouterSession(API_KEY, base_url=server.base_url, poll_policy=FAST_POLL) as session:
        job = await session.submit(model="google/veo3", prompt="a cat")
    common = ("--model", "google/veo3", "--base-url", server.base_url, "--json")

    code, child = await run(cli, "status", job.task_id, *common)
    assert code == 0, child.stderr
    [status] = only(child)
    assert status["type"] == "status"
    assert (status["task_id"], status["state"], status["raw_status"]) == (job.task_id, "running", "processing")
    assert status["urls"] == []
    assert status["cost_usd"] is None

    code, child = await run(cli, "status", job.task_id, *common)
    [status] = only(child)
    assert (status["state"], status["cost_usd"]) == ("succeeded", 0.21)
    assert f"{server.origin}/videos-content/{job.task_id}" in status["urls"]


async def test_download_json_reports_the_file(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """download --json waits for the task and reports the file written (no submitted object: nothing is sent)."""
    async with FastRouterSession(API_KEY, base_url=server.base_url, poll_policy=FAST_POLL) as session:
        job = await session.submit(model="google/veo3", prompt="a cat")
    common = ("--model", "google/veo3", "--base-url", server.base_url, *POLL, "--json")
    code, child = await run(cli, "download", job.task_id, *common, "-o", "v.mp4")
    assert code == 0, child.stdout + child.stderr
    events = only(child)
    assert "submitted" not in {event["type"] for event in events}
    assert events[-1]["type"] == "result"
    assert (events[-1]["task_id"], events[-1]["sha256"]) == (job.task_id, sha256(sample_video()))
    assert (tmp_path / "v.mp4").read_bytes() == sample_video()
    assert sim.records.submit_count == 1


async def test_status_json_unknown_task_is_an_error_object(cli: Callable[..., Any], server: SimulatorServer) -> None:
    """An unknown task: one error object on stdout (class, message, task id, 404) and exit code 1."""
    args = ("status", "fr_NOSUCHTASK", "--model", "google/veo3", "--base-url", server.base_url, "--json")
    code, child = await run(cli, *args)
    assert code == 1
    [error] = only(child)
    assert error["type"] == "error"
    assert (error["error"], error["task_id"], error["status_code"], error["exit_code"]) == (
        "NotFoundError",
        "fr_NOSUCHTASK",
        404,
        1,
    )
    assert "Invalid taskId" in error["message"]


async def test_generate_json_error_once_the_job_exists_names_the_download_command(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """Polls refused after the submit: the error object has the task id and the download command; exit 1."""
    sim.inject(Fault.status(401, route="poll", times=None))
    code, child = await run(cli, *generate_args(server, "a cat"), "-o", "my videos/cat.mp4", "--json")
    assert code == 1
    events = only(child)
    assert [event["type"] for event in events] == ["submitted", "error"]
    error = events[-1]
    task_id = events[0]["task_id"]
    assert (error["error"], error["task_id"], error["status_code"], error["exit_code"]) == (
        "AuthenticationError",
        task_id,
        401,
        1,
    )
    assert error["download_command"] == (
        f"fastrouter-video download {task_id} --model google/veo3 -o 'my videos/cat.mp4' --base-url {server.base_url}"
    )
    assert "\n" not in error["message"]  # the advice for people is in download_command, not in the message
    assert sim.records.submit_count == 1


async def test_json_refused_before_sending(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A refused -o path, an invalid value and a missing option are usage error objects with exit 2; nothing sent."""
    (tmp_path / "cat.mp4").write_bytes(b"mine")
    code, child = await run(cli, *generate_args(server, "a cat"), "-o", "cat.mp4", "--json")
    assert code == 2
    [error] = only(child)
    assert (error["error"], error["exit_code"], error["task_id"]) == ("UsageError", 2, None)
    assert "the file exists" in error["message"]

    code, child = await run(cli, *generate_args(server, "a cat"), "-o", "c.mp4", "--length", "12", "--json")
    assert code == 2
    [error] = only(child)
    assert error["error"] == "InvalidRequestError"
    assert error["message"] == "field length: value 12: allowed values are 4, 6, 8 (model google/veo3)"

    code, child = await run(cli, "download", "fr_X", "-o", "v.mp4", "--json")  # no --model
    assert code == 2
    [error] = only(child)
    assert error["error"] == "UsageError"
    assert "--model" in error["message"]

    code, child = await run(cli, *generate_args(server, "a cat"), "-o", "c.mp4", "--json", env=child_env(key=False))
    assert code == 2
    [error] = only(child)
    assert "no API key" in error["message"]
    assert sim.records.requests == []
    assert (tmp_path / "cat.mp4").read_bytes() == b"mine"


async def test_json_keeps_hostile_server_text_as_sent_and_inert(
    hostile: tuple[HostileServer, str], cli: Callable[..., Any]
) -> None:
    """Hostile task ids, status words and failure messages come back exactly as sent, JSON-escaped, never raw."""
    server, base_url = hostile
    args = ("generate", "a cat", "--model", "google/veo3", "-o", "c.mp4", "--base-url", base_url, *POLL, "--json")
    code, child = await run(cli, *args)
    assert code == 1
    raw = child.stdout.encode()
    for escape in RAW_ESCAPES:
        assert escape not in raw
    events = only(child)
    assert events[0] == {**events[0], "type": "submitted", "task_id": HOSTILE_ID}
    error = events[-1]
    assert (error["type"], error["error"], error["task_id"]) == ("error", "JobFailedError", HOSTILE_ID)
    assert error["message"] == HOSTILE_MESSAGE
    assert server.submits == 1


async def test_jobs_json_lists_every_job_then_a_summary(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """jobs --json: one job object per journal row, then the counts; --download-commands keeps those to fetch."""
    source = prompts_file(tmp_path, ["a cat", "a moderation dog"])
    sim.plan_for(lambda body: "moderation" in body.get("prompt", ""), JobPlan(outcome="failed", error="flagged"))
    code, child = await run(cli, *batch_args(server, source.name))
    assert code == 1, child.stdout + child.stderr

    code, child = await run(cli, "jobs", "out", "--json")
    assert code == 0, child.stderr
    events = only(child)
    assert [event["type"] for event in events] == ["job", "job", "summary"]
    done, failed = events[0], events[1]
    assert (done["index"], done["state"], done["prompt"], done["model"]) == (0, "succeeded", "a cat", "google/veo3")
    assert (done["bytes"], done["sha256"], done["download_command"]) == (
        len(sample_video()),
        sha256(sample_video()),
        None,
    )
    assert (tmp_path / done["file"]).read_bytes() == sample_video()
    assert (failed["state"], failed["error"], failed["file"]) == ("failed", "flagged", None)
    assert events[2]["jobs"] == 2
    assert events[2]["states"] == {"failed": 1, "succeeded": 1}

    code, child = await run(cli, "jobs", "out", "--json", "--download-commands")
    assert code == 0
    assert [event["type"] for event in only(child)] == ["summary"]  # nothing left to download


async def test_jobs_json_missing_journal_is_an_error_object(cli: Callable[..., Any]) -> None:
    """jobs --json on a folder without a journal: an error object and exit 2."""
    code, child = await run(cli, "jobs", "nowhere", "--json")
    assert code == 2
    [error] = only(child)
    assert error["error"] == "JournalError"
    assert "no journal" in error["message"]


async def test_generate_json_ctrl_c_prints_a_stopped_object(
    cli: Callable[..., Any], server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """Ctrl-C while waiting: a stopped object with the task id and the download command, and exit code 130."""
    sim.default_plan = JobPlan(duration=600.0)  # never ends during the test
    child: Child = await cli(*generate_args(server, "a cat"), "-o", "cat.mp4", "--json")
    await child.until(lambda: '"type": "submitted"' in child.stdout, "the submitted object")
    child.process.send_signal(signal.SIGINT)
    assert await child.finish() == 130
    events = only(child)
    stopped = events[-1]
    task_id = events[0]["task_id"]
    assert (stopped["type"], stopped["task_id"]) == ("stopped", task_id)
    assert stopped["download_command"] == (
        f"fastrouter-video download {task_id} --model google/veo3 -o cat.mp4 --base-url {server.base_url}"
    )
    assert sim.records.submit_count == 1
