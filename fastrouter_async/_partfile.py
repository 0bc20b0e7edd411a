"""The temporary file of one download: where the bytes go until they are complete and verified.

It lives beside the destination under a stable name, ``.NAME.part``, so that a
retry resumes where the last attempt stopped. A sidecar, ``.NAME.part.json``,
records what the kept bytes are (task id, the link's scheme, host and path, its
strong ETag and the file's size); it is written only when the server gave a
strong ETag, because only then can a later call prove, with ``If-Range``, that
the server still has the same file. A ``.part`` without a matching sidecar is
a leftover of unknown content and is started over.

Every disk operation and every whole-file hash runs in a worker thread; the event
loop only hands over buffers of ``WRITE_BUFFER`` bytes. The destination is only
ever touched by the final rename, so it never holds a partial or unverified file.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import attrs

from ._errors import DownloadError, FastRouterError
from ._integrity import ExpectedDigest
from ._models import DownloadedFile

__all__ = [
    "WRITE_BUFFER",
    "Abort",
    "Corrupt",
    "DestinationTaken",
    "DownloadProgress",
    "PartFile",
    "TooLarge",
    "part_paths",
]

logger = logging.getLogger("fastrouter_async")

DownloadProgress = Callable[[int, int | None], object]
"""``progress(bytes_received, total_or_None)``; may be a plain function or a coroutine function."""

WRITE_BUFFER = 1024 * 1024
# Writes go to a worker thread (no blocking disk I/O on the event loop); batching them into
# 1 MiB keeps the number of thread hops low while memory stays at a megabyte per download.
_READ_BLOCK = 1024 * 1024
_SIDECAR_FORMAT = 1
_MAX_NAME_BYTES = 255
_CLEANUP_SECONDS = 10.0  # cleanup after a cancellation is shielded, but never for longer than this


class Corrupt(FastRouterError):
    """The bytes received do not match what the server said they would be (size or digest)."""


class Abort(FastRouterError):
    """A reason to stop the whole download at once: no retry, no other link, no bytes kept."""


class TooLarge(Abort):
    """The file is larger than the download's ``max_bytes``."""


class DestinationTaken(Abort):
    """``overwrite=False`` and a file appeared at the destination."""


def part_paths(destination: Path) -> tuple[Path, Path]:
    """The temporary file and its sidecar for ``destination``: ``.NAME.part`` and ``.NAME.part.json``.

    A name too long for that (file systems allow 255 bytes) uses a hash of it instead.
    """
    base = f".{destination.name}"
    if len(f"{base}.part.json.tmp".encode()) > _MAX_NAME_BYTES:  # the longest name used (see _write_sidecar)
        base = "." + hashlib.sha256(destination.name.encode()).hexdigest()[:32]
    return destination.with_name(f"{base}.part"), destination.with_name(f"{base}.part.json")


@attrs.define(eq=False, kw_only=True)
class PartFile:
    """An open ``.part`` file and what its bytes are."""

    path: Path
    sidecar: Path
    task_id: str
    _handle: BinaryIO = attrs.field(alias="handle", repr=False)
    size: int = 0
    """Bytes kept (written and hashed)."""
    source: str | None = None
    """The identity of the link the kept bytes came from (scheme, host and path); ``None`` if none yet."""
    etag: str | None = None
    """The strong ETag of the file the kept bytes belong to, if the server gave one."""
    total: int | None = None
    """The file's full size, once a server said it."""
    digests: list[ExpectedDigest] = attrs.field(factory=list)
    """What the servers said the whole file's digests are."""
    _sha256: Any = attrs.field(factory=hashlib.sha256, alias="sha256", repr=False)
    _done: bool = attrs.field(default=False, init=False, repr=False)

    # --- opening and closing --------------------------------------------------------------

    @classmethod
    async def open(cls, destination: Path, task_id: str) -> PartFile:
        """Open (or create) the ``.part`` of ``destination``, keeping a leftover only if its sidecar vouches for it."""
        return await anyio.to_thread.run_sync(cls._open_sync, destination, task_id)

    @classmethod
    def _open_sync(cls, destination: Path, task_id: str) -> PartFile:
        destination.parent.mkdir(parents=True, exist_ok=True)
        path, sidecar = part_paths(destination)
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise DownloadError(f"{path} exists and is not a regular file; remove it", task_id=task_id)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        handle = os.fdopen(os.open(path, flags, 0o666), "r+b")
        part = cls(path=path, sidecar=sidecar, task_id=task_id, handle=handle)
        try:
            part._adopt_leftover()
        except BaseException:
            handle.close()
            raise
        return part

    def _adopt_leftover(self) -> None:
        size = os.fstat(self._handle.fileno()).st_size
        meta = _read_sidecar(self.sidecar)
        usable = (
            size > 0
            and meta is not None
            and meta.get("format") == _SIDECAR_FORMAT
            and meta.get("task_id") == self.task_id
            and isinstance(meta.get("source"), str)
            and isinstance(meta.get("etag"), str)
            and isinstance(meta.get("total"), int)
            and size <= meta["total"]
        )
        if not usable or meta is None:
            self._truncate_sync()
            return
        while block := self._handle.read(_READ_BLOCK):  # the kept prefix's hash, so the sha256 covers it
            self._sha256.update(block)
        self.size, self.source, self.etag, self.total = size, meta["source"], meta["etag"], meta["total"]
        logger.info(
            "found %d of %d bytes of task %s in %s; will try to resume", size, self.total, self.task_id, self.path
        )

    async def close(self, *, keep: bool) -> None:
        """Close the file; keep it (with its sidecar) for a later resume only if ``keep`` and it can be resumed.

        Runs to its end even while the caller is being cancelled (bounded by a timeout).
        """
        if self._done:
            return
        keep = keep and self.resumable
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLEANUP_SECONDS):
            await anyio.to_thread.run_sync(self._close_sync, keep)

    def _close_sync(self, keep: bool) -> None:
        keep = keep and not self._handle.closed
        try:
            if keep:
                self._handle.flush()
                os.fsync(self._handle.fileno())
        finally:
            self._handle.close()
        if keep:
            logger.info("kept %d of %s bytes in %s to resume later", self.size, self.total, self.path)
            return
        for leftover in (self.path, self.sidecar):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()

    @property
    def blank(self) -> bool:
        """No bytes kept and nothing known about them yet."""
        return self.size == 0 and self.source is None and self.total is None and not self.digests

    @property
    def resumable(self) -> bool:
        """Whether a later call could resume these bytes (a link identity, a strong ETag and a size are known)."""
        return self.size > 0 and None not in (self.source, self.etag, self.total)

    # --- state ----------------------------------------------------------------------------

    def offset_for(self, source: str | None) -> int:
        """How many kept bytes a request to ``source`` may resume from (0: ask for the whole file)."""
        if source is None or source != self.source or self.total is None:
            return 0
        return self.size

    async def restart(self) -> None:
        """Drop every kept byte: the next bytes written start the file."""
        await anyio.to_thread.run_sync(self._truncate_sync)

    def _truncate_sync(self) -> None:
        self._handle.seek(0)
        self._handle.truncate()
        self._sha256 = hashlib.sha256()
        self.size, self.source, self.etag, self.total = 0, None, None, None
        self.digests = []
        with contextlib.suppress(FileNotFoundError):
            self.sidecar.unlink()

    async def describe(
        self, *, source: str | None, etag: str | None, total: int | None, digests: tuple[ExpectedDigest, ...]
    ) -> None:
        """Record what the bytes about to be written belong to; write the sidecar if they can be resumed later."""
        changed = (source, etag, total) != (self.source, self.etag, self.total)
        self.source, self.etag, self.total = source, etag, total
        self.digests.extend(d for d in digests if d not in self.digests)
        if changed and self.resumable_identity:
            meta = {
                "format": _SIDECAR_FORMAT,
                "task_id": self.task_id,
                "source": source,
                "etag": etag,
                "total": total,
            }
            await anyio.to_thread.run_sync(_write_sidecar, self.sidecar, meta)

    @property
    def resumable_identity(self) -> bool:
        return None not in (self.source, self.etag, self.total)

    # --- writing --------------------------------------------------------------------------

    async def write(
        self,
        chunks: AsyncIterator[bytes],
        *,
        progress: DownloadProgress | None,
        max_bytes: int | None,
    ) -> None:
        """Append ``chunks``, hashing them; bytes received before a failure are kept (and counted)."""
        buffer = bytearray()
        try:
            async for chunk in chunks:
                if max_bytes is not None and self.size + len(buffer) + len(chunk) > max_bytes:
                    raise TooLarge(f"the video is larger than max_bytes={max_bytes}: stopped after {max_bytes} bytes")
                buffer += chunk
                if len(buffer) >= WRITE_BUFFER:
                    data = bytes(buffer)
                    buffer.clear()
                    await anyio.to_thread.run_sync(self._append_sync, data)
                    await report(progress, self.size, self.total)
        finally:
            if buffer:
                # Keep what arrived before the failure (or cancellation): a retry resumes after it.
                with anyio.CancelScope(shield=True), anyio.move_on_after(_CLEANUP_SECONDS):
                    await anyio.to_thread.run_sync(self._append_sync, bytes(buffer))
        await report(progress, self.size, self.total)

    def _append_sync(self, data: bytes) -> None:
        self._handle.write(data)
        self._sha256.update(data)  # hashlib releases the GIL for large buffers
        self.size += len(data)

    # --- finishing ------------------------------------------------------------------------

    async def finish(self, destination: Path, *, overwrite: bool) -> DownloadedFile:
        """Check size and digests, then move the file into place; :class:`Corrupt` (all bytes dropped) if wrong."""
        problem = await anyio.to_thread.run_sync(self._verify_sync)
        if problem is not None:
            await self.restart()
            raise Corrupt(problem)
        await anyio.to_thread.run_sync(self._move_sync, destination, overwrite)
        logger.info("downloaded %d bytes to %s", self.size, destination)
        return DownloadedFile(path=destination, size=self.size, sha256=self._sha256.hexdigest(), task_id=self.task_id)

    def _verify_sync(self) -> str | None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        if self.total is not None and self.size != self.total:
            return f"the file has {self.size} bytes, the server said {self.total}"
        sha256 = self._sha256.digest()
        md5: bytes | None = None
        for expected in self.digests:
            if expected.algorithm == "sha256":
                actual = sha256
            else:
                md5 = md5 if md5 is not None else self._md5_sync()
                actual = md5
            if actual != expected.value:
                return (
                    f"the {expected.algorithm} of the {self.size} bytes received is {actual.hex()}, "
                    f"but the {expected.header} header says {expected.hex}"
                )
        return None

    def _md5_sync(self) -> bytes:
        digest = hashlib.md5(usedforsecurity=False)
        self._handle.seek(0)
        while block := self._handle.read(_READ_BLOCK):
            digest.update(block)
        self._handle.seek(0, os.SEEK_END)
        return digest.digest()

    def _move_sync(self, destination: Path, overwrite: bool) -> None:
        self._handle.close()  # Windows cannot rename an open file
        if overwrite:
            os.replace(self.path, destination)
        else:
            _link_into_place(self.path, destination)
        self._done = True
        with contextlib.suppress(FileNotFoundError):
            self.sidecar.unlink()


def _link_into_place(temp: Path, destination: Path) -> None:
    """Move without ever replacing an existing file, even one that appeared a moment ago."""
    try:
        os.link(temp, destination)  # fails if destination exists
    except FileExistsError:
        raise DestinationTaken(f"{destination} already exists (pass overwrite=True to replace it)") from None
    except OSError:
        # No hard links on this file system (FAT, some network shares): check, then rename.
        if os.path.lexists(destination):
            raise DestinationTaken(f"{destination} already exists (pass overwrite=True to replace it)") from None
        os.replace(temp, destination)
        return
    temp.unlink()


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _write_sidecar(path: Path, meta: dict[str, Any]) -> None:
    temp = path.with_name(path.name + ".tmp")
    with open(temp, "w", encoding="utf-8") as f:
        json.dump(meta, f)
    os.replace(temp, path)


async def report(progress: DownloadProgress | None, received: int, total: int | None) -> None:
    """Call ``progress(received, total)``, awaiting it if it is a coroutine function."""
    if progress is None:
        return
    outcome = progress(received, total)
    if inspect.isawaitable(outcome):
        await outcome
