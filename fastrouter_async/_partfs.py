"""The file-system steps of a part file besides writing it: its lock, its sidecar, reading bytes back.

``lock_part`` takes an exclusive ``flock`` on an open ``.part`` (released when the file is
closed, also when the process dies), so two processes never write into one file; on
platforms without ``flock`` (Windows) it always succeeds. The sidecar, ``.NAME.part.json``,
says what the kept bytes are; it is replaced atomically. ``read_at`` reads a few bytes of the
file back (its ends, checked before the rename).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

__all__ = ["LOCKS_PART_FILES", "LockState", "lock_part", "read_at", "read_sidecar", "write_sidecar"]

LockState = Literal["locked", "busy", "stale"]

_flock: Callable[[int, int], None] | None
try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one download per destination per session still holds
    _flock = None
else:
    _flock = fcntl.flock

LOCKS_PART_FILES = _flock is not None
"""Whether part files are locked against other processes here (not on Windows: the file is then read back whole)."""


def lock_part(fd: int, path: Path) -> LockState:
    """Lock the open ``.part`` for this download: ``"locked"``, ``"busy"`` (another holds it) or ``"stale"``.

    ``"stale"``: the lock was taken, but ``path`` is no longer this file (another download moved it
    into place or removed it meanwhile), so the file must be opened again.
    """
    if _flock is None:
        return "locked"
    try:
        _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return "busy"
    try:
        current = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return "stale"
    mine = os.fstat(fd)
    return "locked" if (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino) else "stale"


def read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def write_sidecar(path: Path, meta: dict[str, Any]) -> None:
    temp = path.with_name(path.name + ".tmp")
    with open(temp, "w", encoding="utf-8") as f:
        json.dump(meta, f)
    os.replace(temp, path)


def read_at(fd: int, offset: int, size: int) -> bytes:
    """``size`` bytes of the file at ``offset`` (fewer at its end), without moving its position."""
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    position = os.lseek(fd, 0, os.SEEK_CUR)
    try:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, size)
    finally:
        os.lseek(fd, position, os.SEEK_SET)
