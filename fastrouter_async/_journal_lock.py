"""The journal's lock: one run at a time per journal, whatever name the journal is given."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

from ._errors import FastRouterError

__all__ = ["JournalError", "refuse_hard_links", "release_lock", "take_lock"]


class JournalError(FastRouterError):
    """The journal cannot be used: locked by another run, unreadable, or of a newer format."""


def refuse_hard_links(path: Path, given: Path) -> None:
    """A journal with several names cannot be locked by name, and its WAL file would differ per name."""
    try:
        links = path.stat().st_nlink
    except FileNotFoundError:
        return
    if links > 1:
        raise JournalError(
            f"the journal {given} has {links} hard links (other names for the same file); two runs through two "
            "names could use it at once and corrupt it. Use one name: remove the other links (or copy the file)"
        )


def take_lock(path: Path) -> IO[bytes] | None:
    """An exclusive lock on ``PATH.lock`` beside the resolved journal, for the life of the run.

    Released by the OS if the process dies. ``path`` is already resolved (no symlink in it), and a
    journal with hard links is refused before, so every way of naming one journal takes this lock.
    """
    if sys.platform == "win32":  # pragma: no cover - no fcntl; SQLite's own locking still applies
        return None
    import fcntl  # noqa: PLC0415 - POSIX only

    lock_path = path.with_name(path.name + ".lock")
    handle = open(lock_path, "a+b")  # noqa: SIM115 - held open until the journal is closed
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        raise JournalError(
            f"the journal {path} is in use by another run (lock {lock_path} is held); "
            "wait for that run to end, or use another journal"
        ) from exc
    return handle


def release_lock(handle: IO[bytes] | None) -> None:
    if handle is not None:
        handle.close()  # closing the descriptor releases the flock
