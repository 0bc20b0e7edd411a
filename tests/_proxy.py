"""A loopback TCP proxy that cuts chosen connections mid-answer and records what it forwarded.

It sits between the client and a real server (nginx in the download tests),
forwards bytes both ways unchanged, and keeps, per accepted connection, the
request heads the client sent and how many bytes of the first answer's body
went back. ``cut_after={0: n}`` closes connection 0 once ``n`` body bytes of its
first answer have been delivered to the client: the client has a status line,
headers with the full ``Content-Length`` and exactly ``n`` bytes of the body,
then end of file. ``on_cut`` is called at that moment, before the client can
notice (to change the server's file between the cut and the retry, say).
Requests are assumed to have no body (downloads are GETs).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from types import TracebackType

import attrs

__all__ = ["CuttingProxy", "ProxiedConnection"]

_CHUNK = 256 * 1024
_HEAD_END = b"\r\n\r\n"


@attrs.define(eq=False)
class ProxiedConnection:
    """One client connection as the proxy saw it."""

    index: int
    cut_after: int | None
    request_heads: list[str] = attrs.field(factory=list)
    """The heads of the requests forwarded upstream, in order (request line and headers)."""
    response_head: str | None = None
    """The status line and headers of the first answer."""
    body_bytes: int = 0
    """Bytes of the first answer's body delivered to the client."""
    cut: bool = False

    def headers(self, request: int = 0) -> dict[str, str]:
        """The headers of one forwarded request, names in lower case."""
        lines = self.request_heads[request].split("\r\n")[1:]
        pairs = (line.split(":", 1) for line in lines if ":" in line)
        return {name.strip().lower(): value.strip() for name, value in pairs}

    @property
    def status(self) -> int | None:
        """The first answer's status code."""
        if self.response_head is None:
            return None
        return int(self.response_head.split(" ", 2)[1])


class CuttingProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream_host:upstream_port``; see the module docstring."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        cut_after: Mapping[int, int] | None = None,
        on_cut: Callable[[ProxiedConnection], object] | None = None,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.cut_after = dict(cut_after or {})
        self.on_cut = on_cut
        self.connections: list[ProxiedConnection] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not running")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def request_heads(self) -> list[str]:
        """Every request head forwarded, in the order the connections were accepted."""
        return [head for conn in self.connections for head in conn.request_heads]

    async def start(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def aclose(self) -> None:
        """Stop accepting, end every connection and wait for their handlers."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # Closing both sockets of a connection ends its handler (its reads see end of file). Handlers
        # are not cancelled: asyncio.start_server logs a cancelled handler as an error on Python 3.11.
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._handlers)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> CuttingProxy:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        conn = ProxiedConnection(index=len(self.connections), cut_after=self.cut_after.get(len(self.connections)))
        self.connections.append(conn)
        writers = [client_writer]
        self._writers.add(client_writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            writers.append(upstream_writer)
            self._writers.add(upstream_writer)
            async with asyncio.TaskGroup() as tg:
                requests = tg.create_task(_forward_requests(client_reader, upstream_writer, conn))
                await _forward_answers(upstream_reader, client_writer, conn)
                requests.cancel()
            if conn.cut and self.on_cut is not None:
                self.on_cut(conn)
        except OSError:
            pass  # either side went away: the connection is over
        finally:
            for writer in writers:
                writer.close()
            for writer in writers:
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                self._writers.discard(writer)
            self._handlers.discard(task)


async def _forward_requests(
    reader: asyncio.StreamReader, upstream: asyncio.StreamWriter, conn: ProxiedConnection
) -> None:
    try:
        while True:
            head = await reader.readuntil(_HEAD_END)
            conn.request_heads.append(head[: -len(_HEAD_END)].decode("latin-1"))
            upstream.write(head)
            await upstream.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
        pass  # the client closed its side (or sent something that is not a GET head)
    with contextlib.suppress(OSError):
        upstream.write_eof()


async def _forward_answers(
    upstream: asyncio.StreamReader, client: asyncio.StreamWriter, conn: ProxiedConnection
) -> None:
    try:
        head = await upstream.readuntil(_HEAD_END)
        conn.response_head = head[: -len(_HEAD_END)].decode("latin-1")
        client.write(head)
        remaining = _content_length(conn.response_head)  # None: the body runs to end of file
        while remaining is None or remaining > 0:
            if conn.cut_after is not None and conn.body_bytes >= conn.cut_after:
                conn.cut = True
                return  # the caller closes both sides: the client gets end of file mid-body
            want = _CHUNK if conn.cut_after is None else min(_CHUNK, conn.cut_after - conn.body_bytes)
            chunk = await upstream.read(want if remaining is None else min(want, remaining))
            if not chunk:
                return
            client.write(chunk)
            await client.drain()
            conn.body_bytes += len(chunk)
            if remaining is not None:
                remaining -= len(chunk)
        while chunk := await upstream.read(_CHUNK):
            client.write(chunk)  # later answers on the same connection pass through uncounted
            await client.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
        pass  # either side went away


def _content_length(head: str) -> int | None:
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return int(value.strip())
    return None
