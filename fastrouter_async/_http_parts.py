"""The parts of an HTTP request and its answer that need no HTTP library.

Which origins may receive the key (:func:`api_origins`), request headers whose repr hides it
(:class:`Headers`, :class:`FixedHeaders`), answer headers as a plain lower-case mapping,
where a redirect points, reading an API answer into a :class:`Response` (:func:`read_answer`,
over the few parts of an answer it uses: :class:`Answer`) and our error for a failed exchange,
summarised and scrubbed (:func:`connection_error`). ``_transport``, the one module that talks
aiohttp, puts them together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol

from multidict import CIMultiDict
from yarl import URL

from ._config import MAX_JSON_BYTES, Secret
from ._errors import APIConnectionError, APITimeoutError, UnexpectedResponseError
from ._protocol import HttpCall, Response, scrub
from ._sniff import SNIFF_BYTES, is_video_content_type, sniff_video
from ._urls import loggable

__all__ = [
    "ACCEPT",
    "FASTROUTER_GATEWAYS",
    "Answer",
    "FixedHeaders",
    "Headers",
    "api_origins",
    "auth_headers",
    "connection_error",
    "lower_headers",
    "origin",
    "read_answer",
    "redirect_target",
]

ACCEPT = "application/json, video/*;q=0.9, */*;q=0.5"

FASTROUTER_GATEWAYS = frozenset({"go.fastrouter.ai", "api.fastrouter.ai"})
# FastRouter documents both hosts as its API gateways, and hosts finished videos on
# api.fastrouter.ai/videos-content/... while the default base URL is go.fastrouter.ai.
# With an https base URL on either, both count as "the API" for the key; nothing else does.


def api_origins(base_url: str | URL) -> frozenset[tuple[str, str, int | None]]:
    """The origins the key may be sent to: the base URL's, plus FastRouter's other gateway."""
    base = URL(str(base_url))
    origins = {origin(base)}
    if base.scheme == "https" and (base.host or "").lower() in FASTROUTER_GATEWAYS:
        origins |= {("https", host, 443) for host in FASTROUTER_GATEWAYS}
    return frozenset(origins)


def origin(url: URL) -> tuple[str, str, int | None]:
    """The scheme, host (both lower-case) and port of ``url``."""
    return (url.scheme.lower(), (url.host or "").lower(), url.port)


class Headers(dict[str, str]):
    """Request headers; the repr hides the ``Authorization`` value (tracebacks show locals' reprs)."""

    __slots__ = ()

    def __repr__(self) -> str:
        shown = {k: "[redacted]" if k.lower() == "authorization" else v for k, v in self.items()}
        return f"Headers({shown!r})"


class FixedHeaders(CIMultiDict[str]):
    """Headers built once and sent as they are: aiohttp merges a multidict without converting it first.

    Never changed after construction; the repr hides the ``Authorization`` value, as ``Headers`` does.
    """

    def __repr__(self) -> str:
        shown = {k: "[redacted]" if k.lower() == "authorization" else v for k, v in self.items()}
        return f"FixedHeaders({shown!r})"


def auth_headers(base: Mapping[str, str], secret: Secret) -> Headers:
    """``base`` plus the bearer credential, built in a function that never awaits."""
    headers = Headers(base)
    headers["Authorization"] = f"Bearer {secret.reveal()}"
    return headers


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers with lower-case names; a name given twice has its values joined with ", "."""
    out: dict[str, str] = {}
    for key, value in headers.items():
        name = key.lower()
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def redirect_target(current: URL, location: str) -> URL | None:
    """Where a ``Location`` points, resolved against ``current``; ``None`` when it does not parse."""
    try:
        target = current.join(URL(location))
        _ = target.port, target.host  # a port out of range or a bad host only shows on use
    except (ValueError, TypeError, UnicodeError):
        return None
    return target


def connection_error(
    exc: BaseException, method: str, url: str, *, request_sent: bool, secret: Secret | None = None
) -> APIConnectionError:
    """Our error for a failed exchange (``exc``: the HTTP library's or a timeout): a scrubbed summary,
    meant to be raised unchained. ``request_sent``: whether the request may have reached the server."""
    where = f"{method} {loggable(url)}"
    if isinstance(exc, TimeoutError):
        phase = "connecting" if not request_sent else "waiting for the answer"
        return APITimeoutError(
            f"timed out {phase} ({where})", request_sent=request_sent, method=method, url=loggable(url)
        )
    detail = type(exc).__name__
    try:
        text = str(exc)
    except Exception:  # a summary must never fail
        text = ""
    if text:
        text = "".join(ch if ch.isprintable() else " " for ch in text[:300])
        detail += f": {scrub(text, secret)}"
    if not request_sent:
        message = f"could not connect ({where}): {detail}"
    else:
        message = f"the connection failed during the request ({where}): {detail}"
    return APIConnectionError(message, request_sent=request_sent, method=method, url=loggable(url))


class _Content(Protocol):
    async def read(self, n: int = -1) -> bytes: ...
    def iter_chunked(self, n: int) -> AsyncIterator[bytes]: ...


class Answer(Protocol):
    """What :func:`read_answer` uses of an HTTP library's answer (aiohttp's ``ClientResponse`` has it)."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def content_type(self) -> str: ...
    @property
    def content_length(self) -> int | None: ...
    @property
    def content(self) -> _Content: ...
    async def read(self) -> bytes: ...


async def read_answer(resp: Answer, call: HttpCall) -> Response:
    """An API answer read into memory; a body declared as media whose first bytes are a video is not read.

    Raises UnexpectedResponseError for a body over ``MAX_JSON_BYTES``; the HTTP library's own
    errors pass through, for the caller to map.
    """
    headers = lower_headers(resp.headers)
    if 200 <= resp.status < 300 and is_video_content_type(headers.get("content-type")):
        # Declared as media: the video itself only if its first bytes say so too.
        head = await _read_prefix(resp, SNIFF_BYTES)
        if sniff_video(head) is not None:
            return Response(status=resp.status, headers=headers, body=None, media=True)
        body = head + await _read_body(resp, call, already=len(head))
        return Response(status=resp.status, headers=headers, body=body)
    return Response(status=resp.status, headers=headers, body=await _read_body(resp, call))


async def _read_body(resp: Answer, call: HttpCall, *, already: int = 0) -> bytes:
    """The rest of an answer's body (``already`` bytes of it were read), refused beyond MAX_JSON_BYTES."""
    declared = resp.content_length
    if declared is not None and declared > MAX_JSON_BYTES:
        raise UnexpectedResponseError(
            f"the answer to {call.method} {loggable(call.url)} is {declared} bytes of "
            f"{resp.content_type or 'unknown type'}, too large for an API answer",
            status_code=resp.status,
            method=call.method,
            url=loggable(call.url),
        )
    if declared is not None and "Content-Encoding" not in resp.headers:
        # The size is known and small enough, and nothing is decompressed: read it in one go.
        return await resp.read()
    chunks: list[bytes] = []
    size = already
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_JSON_BYTES:
            raise UnexpectedResponseError(
                f"the answer to {call.method} {loggable(call.url)} exceeds {MAX_JSON_BYTES} bytes",
                status_code=resp.status,
                method=call.method,
                url=loggable(call.url),
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_prefix(resp: Answer, size: int) -> bytes:
    """Up to ``size`` first bytes of a body (fewer only at its end), leaving the rest unread."""
    head = b""
    while len(head) < size:
        chunk = await resp.content.read(size - len(head))
        if not chunk:
            break
        head += chunk
    return head
