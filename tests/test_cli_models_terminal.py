"""``models`` on a real pseudo-terminal: every model id is shown whole, whatever the terminal's width."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ._pty import run_on_pty
from .test_cli import child_env

_STYLE = re.compile(r"\x1b\[[0-9;]*m")


def catalog_ids() -> list[str]:
    """The ids ``models --json`` lists (the shipped catalog: the test's cache folder does not exist)."""
    done = subprocess.run(
        [sys.executable, "-m", "fastrouter_async", "models", "--json"],
        capture_output=True,
        text=True,
        env=child_env(),
        check=True,
        timeout=60,
    )
    return [row["id"] for row in json.loads(done.stdout)]


async def models_on_pty(cwd: Path, columns: int) -> tuple[int, str]:
    """Run ``models`` with stdout on a pseudo-terminal ``columns`` wide; return its exit code and text, unstyled."""
    code, output = await run_on_pty(cwd, "models", env=child_env(), columns=columns)
    return code, _STYLE.sub("", output.decode())


@pytest.mark.parametrize("columns", [160, 100, 72, 30])
async def test_models_table_never_cuts_a_model_id(tmp_path: Path, columns: int) -> None:
    """At 160, 100, 72 and 30 columns every id of the catalog appears whole on one line, never ellipsized."""
    ids = catalog_ids()
    code, output = await models_on_pty(tmp_path, columns)
    assert code == 0, output
    assert "…" not in output  # nothing is ellipsized
    assert "┃ model" in output  # drawn as a table (so this is the terminal layout)
    lines = output.splitlines()
    for model_id in ids:
        whole = re.compile(r"(?<![\w/.-])" + re.escape(model_id) + r"(?![\w/.-])")
        assert any(whole.search(line) for line in lines), (model_id, columns)
    if columns >= 72:
        assert max(len(line) for line in lines) <= columns  # it fits: columns wrap or are left out instead
