"""The writer thread of one download: writes and hashes received chunks while the event loop keeps receiving.

The event loop hands each chunk over as it is (no copy: ``bytes`` or a ``memoryview``) and
goes back to receiving; one thread of this download writes it at its offset, feeds it to the
hashes and forgets it. At most ``DEFAULT_QUEUE_BYTES`` wait between the two, so memory stays
flat whatever the size: a receiver that is faster than the disk waits for room.

The thread runs at a lower priority (``WRITER_NICENESS``, Linux) so that the event loop
always gets the CPU first. Every ``WRITEBACK_BYTES`` written, the thread asks the kernel to start writing those pages to
the disk (``sync_file_range`` on Linux, else ``posix_fadvise(DONTNEED)``, else nothing), so that
the ``fsync`` before the rename finds little left to write instead of the whole file.

The thread writes through a duplicate of the file's descriptor, which it closes itself: if
the thread outlives a cleanup that gave up waiting for it, it can never write into another
file that reused the number. An error of the thread (a full disk, a read-only file system)
is raised by :meth:`ChunkWriter.put` or :meth:`ChunkWriter.close`, in the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import queue
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final

__all__ = ["DEFAULT_QUEUE_BYTES", "WRITEBACK_BYTES", "WRITER_NICENESS", "ChunkWriter", "start_writeback"]

DEFAULT_QUEUE_BYTES: Final = 8 * 1024 * 1024
# Received bytes waiting for the writer thread: enough to ride out a slow write or two, and a
# bounded amount of memory per download whatever the file's size.
WRITEBACK_BYTES: Final = 8 * 1024 * 1024
# Start writeback every 8 MiB: the final fsync then waits for a few MiB, not the whole file.
_CLOSE_SECONDS: Final = 30.0  # how long close() waits for queued bytes to reach the disk after a cancellation
_JOIN_SECONDS: Final = 1.0  # the thread's return after saying it is done: microseconds
_TAIL: Final = 64  # the last bytes written are kept, to check the file's end before the rename
_STOP: Final = object()

WRITER_NICENESS: Final = 19
# On Linux the writer thread runs at the lowest priority: when the CPU is short (several
# downloads on a busy core), the event loop gets it first, so polls and other requests are not
# held up by writing and hashing. Measured with 1,000 polled jobs and 4 downloads at once on one
# core of a loaded machine: loop lag p99 76-86 ms at the loop's priority, 63-65 ms at +10, 24-28 ms
# at 19, with the same download times (an idle core runs the writer at full speed whatever its
# niceness). The cost: on a machine whose every core is busy, downloads slow down first.
_SYNC_FILE_RANGE_WRITE: Final = 2  # linux/fs.h: start writeback of dirty pages in the range, do not wait


def _lower_priority() -> None:
    """Make the calling thread nicer by ``WRITER_NICENESS`` (Linux only: elsewhere niceness is per process)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError):
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + WRITER_NICENESS))


def _libc_sync_file_range() -> Callable[[int, int, int], None] | None:
    """Linux's ``sync_file_range`` through ctypes (the standard library has no binding), or ``None``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        func = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    func.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    func.restype = ctypes.c_int

    def sync_file_range(fd: int, offset: int, length: int) -> None:
        if func(fd, offset, length, _SYNC_FILE_RANGE_WRITE) != 0:
            raise OSError(ctypes.get_errno(), "sync_file_range failed")

    return sync_file_range


def _fadvise_writeback(fd: int, offset: int, length: int) -> None:
    # POSIX_FADV_DONTNEED starts writeback of the range's dirty pages (without waiting) and drops the clean ones.
    os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def _writeback_function() -> Callable[[int, int, int], None] | None:
    native = _libc_sync_file_range()
    if native is not None:
        return native
    return _fadvise_writeback if hasattr(os, "posix_fadvise") else None


start_writeback: Final = _writeback_function()
"""``start_writeback(fd, offset, length)``: ask the kernel to start writing a range; ``None`` if no way here."""


class ChunkWriter:
    """Writes and hashes one download's chunks, in order, in a thread of its own (see the module docstring)."""

    def __init__(
        self,
        fd: int,
        offset: int,
        hashes: Sequence[Any],
        *,
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
        writeback_bytes: int = WRITEBACK_BYTES,
        on_written: Callable[[Any], None] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._fd = os.dup(fd)
        self._offset = offset
        self._hashes = tuple(hashes)
        self._limit = queue_bytes
        self._writeback_bytes = writeback_bytes
        self._on_written = on_written
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued = 0
        self._waiter: asyncio.Future[None] | None = None
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._error: BaseException | None = None
        self._closed = False
        self.written = 0
        """Bytes written and hashed so far (exact once :meth:`close` has returned)."""
        self.tail = b""
        """The last bytes written (at most 64)."""
        self._thread = threading.Thread(target=self._run, name="fastrouter-download-writer", daemon=True)
        try:
            self._thread.start()
        except BaseException:
            os.close(self._fd)
            raise

    # --- the event loop's side ----------------------------------------------------------------

    async def put(self, chunk: bytes | memoryview) -> None:
        """Queue ``chunk`` for writing (as it is, not copied); wait while the queue is full."""
        if self._error is not None:
            raise self._error
        size = len(chunk)
        while True:
            with self._lock:
                if self._queued == 0 or self._queued + size <= self._limit:
                    self._queued += size
                    break
                waiter = self._waiter = self._loop.create_future()
            await waiter
            if self._error is not None:
                raise self._error
        self._queue.put(chunk)

    async def close(self, *, raise_error: bool = True) -> None:
        """Write what is queued, stop the thread and wait for it (shielded, bounded); raise its error if any."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
        # Wait even through a cancellation (native ones included), then let it go on.
        cancelled: BaseException | None = None
        deadline = self._loop.time() + _CLOSE_SECONDS
        while not self._done.done() and (left := deadline - self._loop.time()) > 0:
            try:
                await asyncio.wait((self._done,), timeout=left)
            except asyncio.CancelledError as exc:
                cancelled = exc
        if self._done.done():
            self._thread.join(_JOIN_SECONDS)  # it has said it is done: only its return is left
        if cancelled is not None:
            raise cancelled
        if raise_error and self._error is not None:
            raise self._error

    @property
    def running(self) -> bool:
        """Whether the thread may still write (it has not said it is done)."""
        return not self._done.done()

    # --- the thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        fd, offset, hashes = self._fd, self._offset, self._hashes
        pwrite = getattr(os, "pwrite", None)
        _lower_priority()
        flushed = offset
        try:
            if pwrite is None:
                os.lseek(fd, offset, os.SEEK_SET)
            while (chunk := self._queue.get()) is not _STOP:
                size = len(chunk)
                try:
                    if self._error is None:
                        view = memoryview(chunk)
                        done = 0
                        while done < size:
                            if pwrite is not None:
                                done += pwrite(fd, view[done:], offset + done)
                            else:
                                done += os.write(fd, view[done:])
                        for digest in hashes:
                            digest.update(chunk)  # hashlib releases the GIL for large buffers
                        offset += size
                        self.written += size
                        self.tail = (self.tail + bytes(view[-_TAIL:]))[-_TAIL:]
                        if start_writeback is not None and offset - flushed >= self._writeback_bytes:
                            with contextlib.suppress(OSError):  # only a hint: the final fsync writes the rest
                                start_writeback(fd, flushed, offset - flushed)
                            flushed = offset
                except BaseException as exc:  # a full disk, a read-only file system: raised in the loop
                    self._error = exc
                finally:
                    self._release(size)
                    if self._on_written is not None:
                        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody reuses it
                            self._loop.call_soon_threadsafe(self._on_written, chunk)
                    del chunk
        finally:
            os.close(fd)
            self._release(0)
            self._wake(self._done)  # the thread's last step

    def _release(self, size: int) -> None:
        with self._lock:
            self._queued -= size
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._wake(waiter)

    def _wake(self, future: asyncio.Future[None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(_set_result, future)


def _set_result(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
