"""The temporary file of one download: where the bytes go until they are complete and verified.

It lives beside the destination under a stable name, ``.NAME.part``, so that a
retry resumes where the last attempt stopped. A sidecar, ``.NAME.part.json``,
records what the kept bytes are (task id, the link's scheme, host and path, its
strong ETag and the file's size); it is written only when the server gave a
strong ETag, because only then can a later call prove, with ``If-Range``, that
the server still has the same file. A ``.part`` without a matching sidecar is
a leftover of unknown content and is started over.

Every write and every hash runs in a thread: the download's writer thread (see
``_writer``) takes the body's pieces as they arrive, writes them and hashes the very
buffers it wrote. Only opening the file happens on the event loop (a few quick
system calls): so that no cancellation can come between the file being opened
and this object owning it (a handle opened by a worker
thread whose caller was cancelled would be left open, and its file behind).

**Two processes.** The ``.part`` file is locked (``flock``, where the platform has
it) for as long as it is open. A download that finds it locked by another process
(or another download) writes to a private ``.NAME.<random>.part`` instead, which is
never resumed and always removed, so two downloads of one destination never
write into one file. Before the rename the file is fsynced, its size on disk, its
identity (the path still names it) and its first and last bytes are checked; the
whole file is not read back (see docs/downloads.md, "Which check guards what").

The destination is only ever touched by the final rename, so it never holds a
partial or unverified file.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import attrs

from ._errors import DownloadError, FastRouterError
from ._filenames import MAX_NAME_BYTES
from ._integrity import ExpectedDigest, file_digests
from ._models import DownloadedFile, DownloadProgress
from ._partfs import LOCKS_PART_FILES, lock_part, read_at, read_sidecar, write_sidecar
from ._sniff import SNIFF_BYTES, describe_bytes, sniff_video
from ._writer import ChunkWriter

__all__ = [
    "WRITE_BUFFER",
    "Abort",
    "Corrupt",
    "DestinationTaken",
    "PartFile",
    "TooLarge",
    "part_paths",
]

logger = logging.getLogger("fastrouter_async")

WRITE_BUFFER = 1024 * 1024  # progress is reported after each WRITE_BUFFER bytes received
_READ_BLOCK = 1024 * 1024
_HASH_HOP = 16  # read blocks hashed per worker-thread call when adopting a leftover (cancellable between calls)
_SIDECAR_FORMAT = 1
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
    if len(f"{base}.part.json.tmp".encode()) > MAX_NAME_BYTES:  # the longest name used (see write_sidecar)
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
    private: bool = False
    """A file of this download alone (the shared ``.part`` was locked by another): never resumed, always removed."""
    _sha256: Any = attrs.field(factory=hashlib.sha256, alias="sha256", repr=False)
    _md5: Any = attrs.field(default=None, init=False, repr=False)
    """The md5 of every kept byte, when a header asked for one before the first byte was written."""
    _tail: bytes = attrs.field(default=b"", init=False, repr=False)
    """The last bytes written (checked against the file before the rename)."""
    _unknown_tail: bool = attrs.field(default=False, init=False, repr=False)
    """A writer thread outlived its cleanup: what the file holds is not known."""
    _done: bool = attrs.field(default=False, init=False, repr=False)

    # --- opening and closing --------------------------------------------------------------

    @classmethod
    async def open(cls, destination: Path, task_id: str) -> PartFile:
        """Open (or create) the ``.part`` of ``destination``, keeping a leftover only if its sidecar vouches for it.

        The file is opened without awaiting anything (see the module docstring); only the hash of
        kept bytes is computed in a worker thread, and a cancellation then closes the file and
        leaves the kept bytes for a later call.
        """
        part = cls._open_sync(destination, task_id)  # no await: nothing can cancel between open and ownership
        if not part.private:
            await part.adopt_leftover()
        return part

    async def adopt_leftover(self) -> None:
        """Keep the bytes an earlier download left in the file, if its sidecar vouches for them; else start over.

        Their hash is computed in a worker thread; on any error or cancellation the file is closed
        (its kept bytes stay for a later call) and the error propagates.
        """
        try:
            meta = self._check_leftover_sync()
            if meta is None:
                return
            while await anyio.to_thread.run_sync(self._hash_kept_sync):
                pass
        except BaseException:
            self._handle.close()
            self._done = True
            raise
        self.size, self.source, self.etag, self.total = meta["size"], meta["source"], meta["etag"], meta["total"]
        logger.info(
            "found %d of %d bytes of task %s in %s; will try to resume", self.size, self.total, self.task_id, self.path
        )

    @classmethod
    def _open_sync(cls, destination: Path, task_id: str) -> PartFile:
        destination.parent.mkdir(parents=True, exist_ok=True)
        path, sidecar = part_paths(destination)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        for _ in range(3):
            if path.is_symlink() or (path.exists() and not path.is_file()):
                raise DownloadError(f"{path} exists and is not a regular file; remove it", task_id=task_id)
            fd = os.open(path, flags, 0o666)
            try:
                state = lock_part(fd, path)
            except BaseException:
                os.close(fd)
                raise
            if state == "locked":
                break
            os.close(fd)
            if state == "busy":
                return cls._open_private(path, task_id)
        else:  # the file kept being replaced under us: do not share it
            return cls._open_private(path, task_id)
        handle = os.fdopen(fd, "r+b")
        return cls(path=path, sidecar=sidecar, task_id=task_id, handle=handle)

    @classmethod
    def _open_private(cls, shared: Path, task_id: str) -> PartFile:
        """A new part file of this download alone, beside the shared one that another download holds."""
        path = shared.with_name(f"{shared.name[: -len('.part')]}.{secrets.token_hex(4)}.part")
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        handle = os.fdopen(os.open(path, flags, 0o666), "r+b")
        logger.info("%s is in use by another download; writing to %s instead", shared, path)
        return cls(path=path, sidecar=path.with_name(path.name + ".json"), task_id=task_id, handle=handle, private=True)

    def _check_leftover_sync(self) -> dict[str, Any] | None:
        """What the sidecar says of the bytes found, with their ``size``.

        ``None``, and the file emptied, when the sidecar does not vouch for them.
        """
        size = os.fstat(self._handle.fileno()).st_size
        meta = read_sidecar(self.sidecar)
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
            return None
        return {**meta, "size": size}

    def _hash_kept_sync(self) -> bool:
        """Hash the next blocks of the kept bytes; ``False`` once all are hashed."""
        for _ in range(_HASH_HOP):
            block = self._handle.read(_READ_BLOCK)
            if not block:
                return False
            self._sha256.update(block)
        return True

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
        return (
            self.size > 0
            and None not in (self.source, self.etag, self.total)
            and not self.private
            and not self._unknown_tail
        )

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
        self._sha256, self._md5, self._tail = hashlib.sha256(), None, b""
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
        if changed and self.resumable_identity and not self.private:
            meta = {
                "format": _SIDECAR_FORMAT,
                "task_id": self.task_id,
                "source": source,
                "etag": etag,
                "total": total,
            }
            await anyio.to_thread.run_sync(write_sidecar, self.sidecar, meta)

    @property
    def resumable_identity(self) -> bool:
        return None not in (self.source, self.etag, self.total)

    # --- writing --------------------------------------------------------------------------

    async def write(
        self,
        chunks: AsyncIterator[bytes | memoryview],
        *,
        progress: DownloadProgress | None,
        max_bytes: int | None,
        recycle: Callable[[bytes | memoryview], None] | None = None,
    ) -> None:
        """Append ``chunks``, hashing them; bytes received before a failure are kept (and counted).

        The chunks go, as they are, to this download's writer thread (see ``_writer``): the
        event loop keeps receiving while the thread writes and hashes, and gets each chunk
        back through ``recycle`` (on the event loop) once it is written.
        """
        if self.size == 0 and any(d.algorithm == "md5" for d in self.digests):
            self._md5 = hashlib.md5(usedforsecurity=False)
        hashes = [self._sha256] if self._md5 is None else [self._sha256, self._md5]
        writer = ChunkWriter(self._handle.fileno(), self.size, hashes, on_written=recycle)
        received = self.size
        reported = received
        try:
            async for chunk in chunks:
                received += len(chunk)
                if max_bytes is not None and received > max_bytes:
                    raise TooLarge(f"the video is larger than max_bytes={max_bytes}: stopped after {max_bytes} bytes")
                await writer.put(chunk)
                if progress is not None and received - reported >= WRITE_BUFFER:
                    reported = received
                    await report(progress, received, self.total)
        except BaseException:
            # Keep what reached the writer before the failure (or cancellation): a retry resumes after it.
            await writer.close(raise_error=False)
            self._wrote(writer)
            raise
        try:
            await writer.close()
        finally:
            self._wrote(writer)
        await report(progress, self.size, self.total)

    def _wrote(self, writer: ChunkWriter) -> None:
        self.size += writer.written
        if writer.written:
            self._tail = writer.tail
        if writer.running:  # the cleanup gave up waiting (a hung disk): what the file holds is not known
            self._unknown_tail = True
            raise OSError(f"the disk did not take the bytes of {self.path.name} in time")

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
        """Make the file durable and check it is the one written, whole: size, identity, ends, digests.

        The bytes were hashed by the writer thread from the very buffers it wrote, and the
        ``.part`` is locked against other downloads (see the module docstring), so the file is
        not read back whole: its size on disk, that the path still names this file, its first
        bytes (also those of a resumed part: they must start like a video) and its last bytes
        are checked. Only an MD5 that a header asked for after the first bytes were written is
        computed by reading the file back.
        """
        fd = self._handle.fileno()
        self._handle.flush()
        os.fsync(fd)  # durable before the rename; writeback started during the download keeps this short
        if self._unknown_tail:
            return "the file's last write did not finish in time"
        mine = os.fstat(fd)
        if mine.st_size != self.size:
            return f"the file on disk has {mine.st_size} bytes, but {self.size} were received"
        if self.total is not None and self.size != self.total:
            return f"the file has {self.size} bytes, the server said {self.total}"
        try:
            current = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        if current is None or (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino):
            return f"{self.path} is no longer the file written (was it replaced by something else?)"
        head = read_at(fd, 0, min(SNIFF_BYTES, self.size))
        if sniff_video(head) is None:
            return f"the file does not start like a video: its first bytes look like {describe_bytes(head)}"
        if self._tail and read_at(fd, self.size - len(self._tail), len(self._tail)) != self._tail:
            return "the end of the file on disk is not the bytes received (was it written to by something else?)"
        md5 = None if self._md5 is None else self._md5.digest()
        wants_md5 = md5 is None and any(d.algorithm == "md5" for d in self.digests)
        if wants_md5 or not LOCKS_PART_FILES:
            # Without file locks (Windows) another process may have written into the file: read it all back.
            sha256, md5_read = file_digests(self._handle, "sha256", "md5")  # the rare path
            self._handle.seek(0, os.SEEK_END)
            if sha256 != self._sha256.digest():
                return "the file on disk does not match the bytes received (was it written to by something else?)"
            md5 = md5_read if md5 is None else md5
        for expected in self.digests:
            actual = self._sha256.digest() if expected.algorithm == "sha256" else md5 or b""  # read above if None
            if actual != expected.value:
                return (
                    f"the {expected.algorithm} of the {self.size} bytes received is {actual.hex()}, "
                    f"but the {expected.header} header says {expected.hex}"
                )
        return None

    def _move_sync(self, destination: Path, overwrite: bool) -> None:
        if os.name == "nt":
            self._handle.close()  # Windows cannot rename an open file
        try:
            # Elsewhere the file stays open, and locked, until it is in place: another download
            # waiting for the lock must never get it while it is being renamed.
            if overwrite:
                os.replace(self.path, destination)
            else:
                _link_into_place(self.path, destination)
            self._done = True
            with contextlib.suppress(FileNotFoundError):
                self.sidecar.unlink()
        finally:
            if self._done:
                self._handle.close()


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


async def report(progress: DownloadProgress | None, received: int, total: int | None) -> None:
    """Call ``progress(received, total)``, awaiting it if it is a coroutine function."""
    if progress is None:
        return
    outcome = progress(received, total)
    if inspect.isawaitable(outcome):
        await outcome
