"""The command line on a real pseudo-terminal: server-sent text is shown as plain text, never obeyed.

A small aiohttp server in the test answers with hostile task ids, status words and
failure messages (rich markup, an OSC 52 clipboard write, a screen clear, colours,
a bidirectional override). The CLI runs as a subprocess whose stdout and stderr are
the slave side of a pty, so rich draws its live displays; the test reads the master.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from ._aioserver import serve_app
from ._pty import run_on_pty
from .test_cli import child_env

# Control characters in a task id are refused by the protocol itself (the answer is unreadable);
# markup is printable and reaches the terminal, where it must stay inert.
HOSTILE_ID = "fr_[/red][bold]x"
HOSTILE_WORD = "processing[/bold]\x1b]52;c;b3duZWQ=\x07"
HOSTILE_MESSAGE = "upstream said \x1b[2J\x1b[31mred\x1b[0m [/red] \u202egnp.exe\u202c \x9b6n"
RAW_ESCAPES = (b"\x1b]52", b"\x1b[2J", b"\x1b[31mred", b"\xe2\x80\xae", b"\xc2\x9b")


class HostileServer:
    """Accepts a job with a hostile task id, reports a hostile status word, then fails with a hostile message."""

    def __init__(self) -> None:
        self.polls = 0
        self.submits = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/videos", self.submit)
        app.router.add_get("/api/v1/videos/{task_id}", self.poll)
        app.router.add_post("/api/v1/getAsyncResponse", self.poll)
        app.router.add_post("/api/v1/getVideoResponse", self.poll)
        return app

    async def submit(self, request: web.Request) -> web.Response:
        self.submits += 1
        return web.json_response({"code": "success", "data": {"taskId": HOSTILE_ID, "status": HOSTILE_WORD}})

    async def poll(self, request: web.Request) -> web.Response:
        self.polls += 1
        data: dict[str, Any] = {"taskId": HOSTILE_ID, "status": HOSTILE_WORD, "generations": []}
        if self.polls < 3:
            return web.json_response({"code": "processing", "data": data})
        data["status"] = "failed"
        return web.json_response({"code": "failed", "data": data, "error": HOSTILE_MESSAGE})


@pytest.fixture
async def hostile() -> AsyncIterator[tuple[HostileServer, str]]:
    server = HostileServer()
    async with serve_app(server.app()) as origin:
        yield server, f"{origin}/api/v1"


async def on_pty(cwd: Path, *args: str) -> tuple[int, bytes]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; return its exit code and all it wrote."""
    return await run_on_pty(cwd, *args, env=child_env())


def assert_inert(output: bytes) -> None:
    """None of the server's escape sequences reached the terminal, and no traceback was printed."""
    for raw in RAW_ESCAPES:
        assert raw not in output, (raw, output)
    assert b"Traceback" not in output
    assert b"MarkupError" not in output


async def test_generate_on_a_terminal_shows_hostile_text_as_plain_text(
    hostile: tuple[HostileServer, str], tmp_path: Path
) -> None:
    """generate on a pty: markup in the task id does not crash rich, and escapes are shown, not sent."""
    server, base_url = hostile
    code, output = await on_pty(
        tmp_path, "generate", "a cat", "--model", "google/veo3", "-o", "cat.mp4", "--base-url", base_url,
        "--poll-interval", "0.005",
    )  # fmt: skip
    assert code == 1, output
    assert server.submits == 1
    assert_inert(output)
    text = output.decode("utf-8", "replace")
    assert HOSTILE_ID in text
    assert "\\x1b[2J\\x1b[31mred" in text
    assert "\\u202egnp.exe" in text


async def test_batch_on_a_terminal_shows_hostile_text_as_plain_text(
    hostile: tuple[HostileServer, str], tmp_path: Path
) -> None:
    """batch on a pty: the live display prints the hostile failure inertly; the manifest keeps the raw text."""
    _, base_url = hostile
    (tmp_path / "p.txt").write_text("a cat\n", encoding="utf-8")
    code, output = await on_pty(
        tmp_path, "batch", "p.txt", "--model", "google/veo3", "--out", "out", "--base-url", base_url,
        "--poll-interval", "0.005",
    )  # fmt: skip
    assert code == 1, output
    assert_inert(output)
    assert "\\x1b[2J" in output.decode("utf-8", "replace")
    row = json.loads((tmp_path / "out" / "manifest.jsonl").read_text(encoding="utf-8"))
    assert (row["task_id"], row["error"]) == (HOSTILE_ID, HOSTILE_MESSAGE)


async def test_plain_output_shows_hostile_text_visibly(hostile: tuple[HostileServer, str], tmp_path: Path) -> None:
    """Piped (not a terminal), the same answers are printed with visible escapes and no raw control bytes."""
    _, base_url = hostile
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fastrouter_async", "generate", "a cat", "--model", "google/veo3", "-o", "c.mp4",
        "--base-url", base_url, "--poll-interval", "0.005", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=child_env(), cwd=tmp_path,
    )  # fmt: skip
    async with asyncio.timeout(60):
        output, _ = await process.communicate()
    assert process.returncode == 1, output
    assert_inert(output)
    assert b"\\x1b[2J" in output
