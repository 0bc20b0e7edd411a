"""Run the command line with stdout and stderr on a real pseudo-terminal, as a user's shell would."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["run_on_pty"]


async def run_on_pty(cwd: Path, *args: str, env: Mapping[str, str], columns: int = 200) -> tuple[int, bytes]:
    """Run ``python -m fastrouter_async ARGS`` on a pty ``columns`` wide; return its exit code and all it wrote."""
    master, slave = os.openpty()
    child_env = {**env, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": "50"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fastrouter_async", *args, stdin=asyncio.subprocess.DEVNULL, stdout=slave,
        stderr=slave, env=child_env, cwd=cwd,
    )  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its side
                return
            if not data:
                return
            chunks.append(data)

    reader = asyncio.get_running_loop().run_in_executor(None, drain)
    try:
        async with asyncio.timeout(60):
            code = await process.wait()
            await reader
    finally:
        os.close(master)
    return code, b"".join(chunks)
