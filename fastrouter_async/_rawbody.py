"""A faster body path for downloads: the socket read straight into a few reused 1 MiB buffers.

aiohttp hands a body over in fresh ``bytes`` objects, one per socket read of at most 256 KiB,
each copied once more by its HTTP parser: per megabyte, several allocations (page faults)
and copies before the download even writes it. For a plain-HTTP answer of known length
(``Content-Length``, no transfer or content coding), :class:`RawBody` instead takes the
connection's transport over once the headers are read, as an ``asyncio.BufferedProtocol``:
the kernel copies the body into one of ``BUFFERS`` reused buffers of ``BUFFER_BYTES``, and a
full buffer is handed to the download's writer thread as a ``memoryview``, without a copy.
The writer gives each buffer back with :meth:`RawBody.recycle` once written and hashed;
while every buffer is out, the transport stops reading (TCP flow control slows the sender),
so memory stays at ``BUFFERS`` megabytes.

This leans on asyncio's ``Transport.set_protocol`` and on aiohttp giving access to the
connection's transport, so it is used only when all of that is there (:func:`raw_transport`);
anything else (TLS, chunked answers, an unknown transport) reads through aiohttp as usual.
The connection is never reused afterwards: aiohttp sees an unfinished body and closes it.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import Any, Final

__all__ = ["BUFFERS", "BUFFER_BYTES", "RawBody", "raw_transport"]

BUFFER_BYTES: Final = 1024 * 1024  # one socket read fills up to this much; 1 MiB keeps syscalls and hops few
BUFFERS: Final = 8  # buffers per download: the receiver runs ahead of the writer by up to 8 MiB


def raw_transport(transport: object) -> asyncio.Transport | None:
    """``transport`` if the raw path can take it over (a plain, open asyncio transport), else ``None``."""
    if not isinstance(transport, asyncio.Transport) or transport.is_closing():
        return None
    if transport.get_extra_info("ssl_object") is not None or transport.get_extra_info("sslcontext") is not None:
        return None  # TLS: aiohttp's path (its own buffering comes from the TLS layer anyway)
    if not all(hasattr(transport, name) for name in ("get_protocol", "set_protocol", "is_reading")):
        return None
    return transport


class RawBody(asyncio.BufferedProtocol):
    """Reads exactly ``length`` bytes of a body from ``transport`` into reused buffers (see the module docstring)."""

    def __init__(self, transport: asyncio.Transport, length: int, *, read_timeout: float | None) -> None:
        self._transport = transport
        self._remaining = length
        self._read_timeout = read_timeout
        self._buffers: list[bytearray] = []  # allocated as needed, at most BUFFERS
        self._free: list[bytearray] = []
        self._current: bytearray | None = None
        self._fill = 0
        self._ready: collections.deque[memoryview] = collections.deque()
        self._error: BaseException | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._previous: Any = None
        self._last_data = 0.0
        self._paused = False

    # --- the consumer's side ------------------------------------------------------------------

    def take_over(self) -> None:
        """From now on every byte the transport reads comes here (call it with nothing awaited since measuring)."""
        self._previous = self._transport.get_protocol()
        self._transport.set_protocol(self)
        self._last_data = asyncio.get_running_loop().time()

    def give_back(self) -> None:
        """Hand the transport back to its protocol, paused: the connection is closed, never reused."""
        if self._previous is None:
            return
        if not self._transport.is_closing():
            self._transport.pause_reading()
        self._transport.set_protocol(self._previous)
        self._previous = None
        self._ready.clear()

    async def chunks(self) -> AsyncIterator[memoryview]:
        """The rest of the body, one filled buffer at a time; pass each to :meth:`recycle` once done with it."""
        loop = asyncio.get_running_loop()
        try:
            if not self._transport.is_reading() and not self._transport.is_closing():
                self._transport.resume_reading()
            while True:
                if self._ready:
                    yield self._ready.popleft()
                    continue
                if self._remaining == 0 and self._current is None:
                    return
                if self._error is not None:
                    raise self._error
                # sock_read: the longest wait for any data (not for a whole buffer)
                left = None if self._read_timeout is None else self._last_data + self._read_timeout - loop.time()
                if left is not None and left <= 0:
                    raise TimeoutError("timed out reading the body")
                self._wakeup = loop.create_future()
                try:
                    await asyncio.wait((self._wakeup,), timeout=left)
                finally:
                    self._wakeup = None
        finally:
            self.give_back()

    def recycle(self, chunk: memoryview | bytes) -> None:
        """Give back a buffer handed out by :meth:`chunks` (called on the event loop)."""
        owner = chunk.obj if isinstance(chunk, memoryview) else None
        mine = next((buffer for buffer in self._buffers if buffer is owner), None)
        if mine is not None:
            self._free.append(mine)
            if self._paused and self._remaining and not self._transport.is_closing():
                self._paused = False
                self._transport.resume_reading()

    # --- the protocol's side --------------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._current is None:
            if self._free:
                self._current = self._free.pop()
            else:  # never more than BUFFERS: reading pauses when the last one is taken
                self._current = bytearray(min(BUFFER_BYTES, self._remaining))
                self._buffers.append(self._current)
            self._fill = 0
        end = min(len(self._current), self._fill + self._remaining)
        return memoryview(self._current)[self._fill : end]

    def buffer_updated(self, nbytes: int) -> None:
        self._last_data = asyncio.get_running_loop().time()
        self._fill += nbytes
        self._remaining -= nbytes
        assert self._current is not None
        if self._fill == len(self._current) or self._remaining == 0:
            self._ready.append(memoryview(self._current)[: self._fill])
            self._current = None
            if (not self._free and len(self._buffers) == BUFFERS) or self._remaining == 0:
                self._paused = bool(self._remaining)
                self._transport.pause_reading()
            self._wake()

    def eof_received(self) -> bool:
        self._fail(ConnectionResetError(f"the connection closed with {self._remaining} bytes of the body missing"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._remaining:
            # Always a ConnectionError: an OSError of the socket must not pass for one of the disk.
            lost = ConnectionResetError(f"the connection was lost with {self._remaining} bytes of the body missing")
            lost.__cause__ = exc
            self._fail(lost)
        if self._previous is not None:
            self._previous.connection_lost(exc)  # aiohttp's protocol must learn it too

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        if self._current is not None and self._fill:
            self._ready.append(memoryview(self._current)[: self._fill])  # keep what arrived: it can be resumed
            self._current = None
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
