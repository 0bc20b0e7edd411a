"""``-o PATH`` checked before paying, and the exact command that fetches a paid job's video later."""

from __future__ import annotations

import argparse
import os
import shlex
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ._options import PROG
from ._runtime import CommandError

__all__ = ["check_output", "download_command", "without_secrets"]


def check_output(path_text: str, *, overwrite: bool) -> Path:
    """The ``-o`` path, refused now (exit 2, nothing sent) if the video could not be written there later.

    Refused: a directory; an existing file without ``--overwrite``; a parent that is not a folder
    (or cannot be created under its nearest existing ancestor); a folder where no file can be created.
    """
    path = Path(path_text)
    if path_text.endswith(("/", os.sep)) or path.is_dir():
        raise CommandError(f"-o {path_text}: is a folder; give a file path such as {path / 'video.mp4'}")
    if os.path.lexists(path) and not overwrite:
        raise CommandError(f"-o {path_text}: the file exists; add --overwrite to replace it, or choose another path")
    ancestor = path.absolute().parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise CommandError(f"-o {path_text}: {ancestor} is not a folder, so the video cannot be written there")
    try:  # the only sure test of "can I create a file here" (permissions, read-only mounts, ACLs)
        with tempfile.NamedTemporaryFile(dir=ancestor, prefix=".fastrouter-video-check-"):
            pass
    except OSError as exc:
        raise CommandError(f"-o {path_text}: cannot write in {ancestor}: {exc.strerror or exc}") from None
    return path


def without_secrets(url: str) -> str:
    """The URL without user-info and query string (where a key could hide), as every message shows URLs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def download_command(options: argparse.Namespace, task_id: str, model: str) -> str:
    """``fastrouter-video download TASK --model M -o PATH [--base-url URL] [--overwrite]``, shell-quoted."""
    words = [PROG, "download", task_id, "--model", model, "-o", options.output]
    if options.base_url:
        words += ["--base-url", without_secrets(options.base_url)]
    if getattr(options, "overwrite", False):
        words.append("--overwrite")
    return shlex.join(words)
