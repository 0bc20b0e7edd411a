"""A loopback HTTP server that answers FastRouter's routes with whatever bytes a test scripts.

It speaks raw HTTP/1.1 over asyncio streams, so an answer can be anything a hostile or broken
server could send: any status and reason, any headers (or none: no Content-Type), bodies that
are not JSON or not UTF-8, a ``Content-Length`` larger than the body (cut short), a ``Location``
that does not parse. Every answer adds ``Connection: close`` (unless it sets ``Connection``
itself), so that no answer leaks into the next request.

Routes, under ``/api/v1``: ``POST /videos`` is the submit; ``POST /getVideoResponse``,
``POST /getAsyncResponse`` and ``GET /videos/{id}`` are polls; anything else (redirect
targets) is "other". Each kind is answered by a handler ``(request) -> Answer``; the defaults
create ``fr_HOSTILE...`` tasks and report them finished with a URL. Every request is recorded,
with its body, so a test can check that a paid submit body was never sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import attrs

__all__ = ["Answer", "HostileServer", "Received", "json_answer", "serve"]

Kind = Literal["submit", "poll", "other"]
_PREFIX = "/api/v1"
_HEAD_END = b"\r\n\r\n"


@attrs.frozen(kw_only=True)
class Answer:
    """One scripted answer, sent byte for byte."""

    status: int = 200
    reason: str = "OK"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    declared_length: int | None = None
    """The ``Content-Length`` sent; ``None``: the body's length. Larger than the body: cut short."""
    omit_length: bool = False
    """Send no ``Content-Length`` at all (the body then ends when the connection closes)."""

    def encode(self) -> bytes:
        names = {name.lower() for name, _ in self.headers}
        lines = [f"HTTP/1.1 {self.status} {self.reason}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        if "content-length" not in names and not self.omit_length:
            length = len(self.body) if self.declared_length is None else self.declared_length
            lines.append(f"Content-Length: {length}")
        if "connection" not in names:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
        return head + self.body


def json_answer(value: Any, status: int = 200, *, content_type: str | None = "application/json") -> Answer:
    """An answer carrying ``value`` as JSON."""
    headers = () if content_type is None else (("Content-Type", content_type),)
    return Answer(status=status, headers=headers, body=json.dumps(value).encode())


@attrs.frozen
class Received:
    """One request as the server read it."""

    kind: Kind
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def task_id(self) -> str | None:
        """The task id a poll asks about (from its JSON body or its path)."""
        if self.method == "GET":
            return self.path.rsplit("/", 1)[-1]
        try:
            value = json.loads(self.body).get("taskId")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None


Handler = Callable[[Received], Answer]


def _default_submit() -> Handler:
    numbers = itertools.count(1)

    def submit(_: Received) -> Answer:
        task_id = f"fr_HOSTILE{next(numbers):016d}"
        return json_answer({"code": "success", "data": {"taskId": task_id, "status": "processing"}})

    return submit


def _default_poll(request: Received) -> Answer:
    url = f"https://cdn.example/{request.task_id}.mp4"
    return json_answer({"data": {"taskId": request.task_id, "status": "succeed", "generations": [{"url": url}]}})


def _not_found(_: Received) -> Answer:
    return json_answer({"error": "no such route"}, 404)


@attrs.define(eq=False)
class HostileServer:
    """See the module docstring. ``base_url`` is valid once :func:`serve` has started it."""

    submit: Handler = attrs.field(factory=_default_submit)
    poll: Handler = _default_poll
    other: Handler = _not_found
    received: list[Received] = attrs.field(factory=list)
    origin: str = ""

    @property
    def base_url(self) -> str:
        return f"{self.origin}{_PREFIX}"

    def times_sent(self, value: Any) -> int:
        """How many requests, on any route, carried ``value`` as their JSON body (a paid submit's)."""
        return sum(1 for r in self.received if _json_or_none(r.body) == value)

    def of(self, kind: Kind) -> list[Received]:
        return [r for r in self.received if r.kind == kind]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(_HEAD_END)
            request_line, *header_lines = head[: -len(_HEAD_END)].decode("latin-1").split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            headers = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            path = target.split("?", 1)[0]
            received = Received(_kind(method, path), method, path, headers, body)
            self.received.append(received)
            handler = {"submit": self.submit, "poll": self.poll, "other": self.other}[received.kind]
            writer.write(handler(received).encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def serve(server: HostileServer | None = None) -> AsyncIterator[HostileServer]:
    """Run ``server`` (default: a new one) on 127.0.0.1 for the duration of the block."""
    state = server or HostileServer()
    listener = await asyncio.start_server(state._handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    state.origin = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        listener.close()
        await listener.wait_closed()


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _kind(method: str, path: str) -> Kind:
    if not path.startswith(_PREFIX + "/"):
        return "other"
    route = path[len(_PREFIX) :]
    if method == "POST" and route == "/videos":
        return "submit"
    if method == "POST" and route in ("/getVideoResponse", "/getAsyncResponse"):
        return "poll"
    if method == "GET" and route.startswith("/videos/") and route.count("/") == 2:
        return "poll"
    return "other"
