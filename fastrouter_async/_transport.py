"""HTTP transport: the only module that imports aiohttp.

It owns (or borrows) the aiohttp ``ClientSession``, adds the ``Authorization``
header to requests for the FastRouter API origin and to nothing else, follows
redirects itself (so the header can never ride along to another host), and maps
every aiohttp or timeout exception to the library's error tree, recording
whether the request may have reached the server.

Untrusted answers: a paid submit is never redirected (``HttpCall.follow_redirects``);
a redirect whose ``Location`` does not parse is an unexpected answer; a 2xx body is
taken for the video itself only when its declared type is a media type AND its first
bytes are a video container (``_sniff``). aiohttp's exceptions are summarised, scrubbed,
into ours and never chained: their request info and their frames' locals hold the
request headers, and with them the key. The headers with the key are a mapping whose
repr hides it, so a traceback formatted with its local variables does not show it.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import attrs
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._config import Secret, Timeouts, package_version
from ._errors import APIConnectionError, FastRouterError, UnexpectedResponseError
from ._http_parts import (
    ACCEPT,
    FixedHeaders,
    Headers,
    api_origins,
    auth_headers,
    connection_error,
    lower_headers,
    origin,
    read_answer,
    redirect_target,
)
from ._protocol import HttpCall, Response
from ._rawbody import RawBody, raw_transport
from ._urls import loggable

__all__ = ["StreamedResponse", "Transport", "loggable"]

logger = logging.getLogger("fastrouter_async")

MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_URL_CACHE_SIZE = 1024  # distinct request URLs remembered parsed (the POST poll routes use one URL for all jobs)
DEFAULT_CONNECTION_LIMIT = 100
# One pool for all polls and downloads of a session. aiohttp's own default is 100 too;
# it is set explicitly because google-genai's unlimited pool is a known way to exhaust sockets.


def _user_agent() -> str:
    return f"fastrouter-async/{package_version()} aiohttp/{aiohttp.__version__} python/{platform.python_version()}"


@attrs.define(eq=False)
class StreamedResponse:
    """An open streaming answer (downloads, and poll answers that are the video)."""

    status: int
    headers: Mapping[str, str]
    url: str
    _response: aiohttp.ClientResponse = attrs.field(repr=False, alias="response")
    read_timeout: float | None = None
    _raw: RawBody | None = attrs.field(default=None, init=False, repr=False)

    async def iter_chunks(self, size: int) -> AsyncIterator[bytes]:
        """The body in chunks of at most ``size`` bytes, errors mapped to ours."""
        failure: APIConnectionError | None = None
        try:
            async for chunk in self._response.content.iter_chunked(size):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            failure = _map_exception(exc, "GET", self.url, sent=True)
        if failure is not None:
            raise failure  # outside the handler: the aiohttp exception is not kept as its context

    async def iter_received(self, *, raw: bool = True) -> AsyncIterator[bytes | memoryview]:
        """The body as it arrives, never copied or joined on the way (see ``_rawbody`` for ``raw``).

        With ``raw`` (and a plain-HTTP answer of known length), the rest of the body is read
        into reused buffers: pass each piece to :meth:`recycle` once done with it (pieces not
        given back are simply not reused). Otherwise each piece is what aiohttp buffered.
        """
        content = self._response.content
        failure: APIConnectionError | None = None
        try:
            body = self._raw_body() if raw else None
            if body is not None:
                # No await between measuring what aiohttp received and taking the transport over.
                self._raw = body
                body.take_over()
                try:
                    prefix = content.read_nowait(-1)  # what aiohttp read along with the headers
                    if prefix:
                        yield prefix
                    async for view in body.chunks():
                        yield view
                finally:
                    body.give_back()
                return
            while True:
                chunk, _ = await content.readchunk()
                if not chunk:
                    if content.at_eof():
                        return
                    continue  # the end of an HTTP chunk, with no data
                yield chunk
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            failure = _map_exception(exc, "GET", self.url, sent=True)
        if failure is not None:
            raise failure  # outside the handler: the underlying exception is not kept as its context

    def recycle(self, chunk: bytes | memoryview) -> None:
        """Give back a piece of :meth:`iter_received` once written (reused by the raw path; else nothing)."""
        if self._raw is not None:
            self._raw.recycle(chunk)

    def _raw_body(self) -> RawBody | None:
        """A :class:`RawBody` for the rest of this answer, if the raw path can read it (else ``None``)."""
        resp, headers = self._response, self.headers
        if "transfer-encoding" in headers or headers.get("content-encoding", "identity").lower() != "identity":
            return None
        length = resp.content_length
        connection = resp.connection
        if length is None or connection is None or resp.content.exception() is not None:
            return None
        transport = raw_transport(connection.transport)
        if transport is None or getattr(connection.protocol, "_tail", None):  # bytes aiohttp holds unparsed
            return None
        remaining = length - resp.content.total_bytes  # bytes aiohttp has not received yet
        return RawBody(transport, remaining, read_timeout=self.read_timeout) if remaining > 0 else None

    async def read_limited(self, limit: int = 64 * 1024) -> bytes:
        """Up to ``limit`` bytes of the body (for error messages)."""
        try:
            return await self._response.content.read(limit)
        except (aiohttp.ClientError, TimeoutError):
            return b""


RequestHook = Callable[[HttpCall, dict[str, str]], Callable[[int | None, BaseException | None], None]]
"""Called before an API request with a dict of headers to add (sent to the API origin only);
returns what to call at its end, with the status (or the exception)."""


class Transport:
    """Sends requests for one FastRouterSession."""

    def __init__(
        self,
        *,
        base_url: str,
        secret: Secret,
        timeouts: Timeouts,
        http_session: aiohttp.ClientSession | None = None,
        connection_limit: int = DEFAULT_CONNECTION_LIMIT,
    ) -> None:
        self._base_url = base_url
        self._api_origins = api_origins(base_url)
        self._secret = secret
        self._timeouts = timeouts
        self._session = http_session
        self._owns_session = http_session is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection_limit = connection_limit
        self._user_agent = _user_agent()
        self._urls: dict[str, tuple[URL, bool]] = {}
        # The headers of a pre-serialized JSON request, built once (aiohttp copies them per request).
        json_headers = {"User-Agent": self._user_agent, "Accept": ACCEPT, "Content-Type": "application/json"}
        self._json_headers = FixedHeaders(json_headers)
        self._json_api_headers = FixedHeaders(auth_headers(json_headers, secret))
        self._api_timeout = aiohttp.ClientTimeout(total=timeouts.request, sock_connect=timeouts.connect)
        self._stream_timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect, sock_read=timeouts.read)
        self.request_hook: RequestHook | None = None
        """Hears of each API request (tracing: see ``_otel``); ``None``: nothing to tell."""

    def _parse_url(self, url: str) -> tuple[URL, bool]:
        """``url`` parsed, and whether it is the API's; remembered, since polls repeat a few URLs."""
        known = self._urls.get(url)
        if known is None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            parsed = URL(url, encoded=False)
            known = self._urls[url] = (parsed, self.is_api_origin(parsed))
        return known

    def is_api_origin(self, url: str | URL) -> bool:
        """True when ``url`` belongs to FastRouter's API (the only place the key may go)."""
        return origin(url if isinstance(url, URL) else URL(url)) in self._api_origins

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise RuntimeError(
                "this FastRouterSession was first used in another event loop; create one session per "
                "event loop (for example inside the coroutine given to asyncio.run)"
            )
        if self._session is None:
            # Created lazily, inside the running loop, as aiohttp requires.
            connector = aiohttp.TCPConnector(limit=self._connection_limit)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        if self._session.closed:
            raise RuntimeError("the aiohttp ClientSession given to FastRouterSession was closed by its owner")
        return self._session

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    def request(self, call: HttpCall) -> Coroutine[Any, Any, Response]:
        """One API request (authenticated), its answer read into memory: ``await transport.request(call)``.

        A body that is the video itself is not read (``Response.media``). With a
        ``request_hook`` (tracing), the hook hears of the request and its end, and the
        headers it adds (``traceparent``) are sent to the API origin only. Without one
        (the usual case) the request itself is returned, with no coroutine around it.
        """
        hook = self.request_hook
        if hook is None:
            return self._request(call, call.headers)
        return self._hooked_request(call, hook)

    async def _hooked_request(self, call: HttpCall, hook: RequestHook) -> Response:
        api_headers: dict[str, str] = dict(call.headers or {})  # a submit's cache_key: the API origin only
        ended = hook(call, api_headers)
        try:
            response = await self._request(call, api_headers or None)
        except BaseException as exc:
            ended(None, exc)
            raise
        ended(response.status, None)
        return response

    async def _request(self, call: HttpCall, api_headers: Mapping[str, str] | None) -> Response:
        # The hot path of every poll: no context manager around the send, no log formatting unless asked.
        debug = logger.isEnabledFor(logging.DEBUG)
        started = time.monotonic() if debug else 0.0
        resp, method, current = await self._send(
            call.method,
            call.url,
            json=call.json,
            auth=True,
            client_timeout=self._api_timeout,
            encoded=call.encoded,
            follow_redirects=call.follow_redirects,
            api_headers=api_headers,
        )
        failure: FastRouterError | None = None
        try:
            result = await read_answer(resp, call)
        except FastRouterError:
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            failure = _map_exception(exc, method, str(current), sent=True, secret=self._secret)
        finally:
            resp.release()
        if failure is not None:
            raise failure  # outside the handler: the aiohttp exception is not kept as its context
        if debug:
            logger.debug(
                "%s %s -> %d in %.0f ms",
                call.method,
                loggable(call.url),
                result.status,
                (time.monotonic() - started) * 1000,
            )
        return result

    @asynccontextmanager
    async def stream(
        self,
        call: HttpCall,
        *,
        auth: bool,
        headers: Mapping[str, str] | None = None,
        check_url: Callable[[URL], Awaitable[None]] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        """Open ``call`` for streaming. ``auth`` allows the key, and only for the API origin.

        ``check_url`` is awaited with every URL about to be requested, redirect targets included,
        and may raise to refuse it (nothing is then sent there).
        """
        async with self._open(
            call.method,
            call.url,
            json=call.json,
            auth=auth,
            client_timeout=self._stream_timeout,
            headers=headers,
            follow_redirects=call.follow_redirects,
            check_url=check_url,
        ) as resp:
            yield StreamedResponse(
                status=resp.status,
                headers=lower_headers(resp.headers),
                url=str(resp.url),
                response=resp,
                read_timeout=self._stream_timeout.sock_read,
            )

    @asynccontextmanager
    async def _open(
        self,
        method: str,
        url: str,
        *,
        json: Mapping[str, Any] | None,
        auth: bool,
        client_timeout: aiohttp.ClientTimeout,
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = True,
        check_url: Callable[[URL], Awaitable[None]] | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send, following redirects by hand; the key goes only to the API origin."""
        resp, method, current = await self._send(
            method,
            url,
            json=json,
            auth=auth,
            client_timeout=client_timeout,
            headers=headers,
            follow_redirects=follow_redirects,
            check_url=check_url,
        )
        try:
            yield resp
        except FastRouterError:
            raise  # ours (e.g. JobTimeoutError, a TimeoutError too) pass through unchanged
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Raised into this generator by the caller's block, so Python keeps the aiohttp exception
            # as our error's context whatever we do here: take the key-bearing parts out of it first.
            _defuse(exc)
            raise _map_exception(exc, method, str(current), sent=True, secret=self._secret) from None
        finally:
            resp.release()

    async def _send(
        self,
        method: str,
        url: str,
        *,
        json: Mapping[str, Any] | None,
        auth: bool,
        client_timeout: aiohttp.ClientTimeout,
        headers: Mapping[str, str] | None = None,
        encoded: bytes | None = None,
        follow_redirects: bool = True,
        check_url: Callable[[URL], Awaitable[None]] | None = None,
        api_headers: Mapping[str, str] | None = None,
    ) -> tuple[aiohttp.ClientResponse, str, URL]:
        """Send, following redirects by hand; the answer, with the method and URL that got it.

        The key goes only to the API origin. The caller reads the answer and releases it.
        ``encoded`` is ``json`` already serialized (sent as is, with its content type).
        Without ``follow_redirects`` a redirect answer is returned as it is.
        ``api_headers`` (tracing) are added only when the URL is the API's, never after a
        redirect to another host.
        """
        client = self._client()
        try:
            current, api = self._parse_url(url)
        except ValueError:
            current = None
        if current is None:
            raise APIConnectionError(
                f"cannot send {method} to an address that does not parse ({loggable(url)})",
                request_sent=False,
                method=method,
                url=loggable(url),
            )
        body = json
        for _ in range(MAX_REDIRECTS + 1):
            authorized = auth and api
            if check_url is not None:
                await check_url(current)  # may refuse the URL (a download to a metadata address)
            request_headers: Mapping[str, str]
            if encoded is not None and body is not None and not headers and not (api_headers and api):
                request_headers = self._json_api_headers if authorized else self._json_headers
            else:
                encoded = None
                built = Headers({"User-Agent": self._user_agent, "Accept": ACCEPT})
                if headers:
                    built.update(headers)
                if api_headers and api:
                    built.update(api_headers)
                request_headers = auth_headers(built, self._secret) if authorized else built
            failure: FastRouterError | None = None
            try:
                resp = await client.request(
                    method,
                    current,
                    json=body if encoded is None else None,
                    data=encoded,
                    headers=request_headers,
                    allow_redirects=False,
                    timeout=client_timeout,
                    raise_for_status=False,  # statuses are ours to interpret, whatever the session's default
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = _map_exception(exc, method, str(current), sent=None, secret=self._secret)
            if failure is not None:
                raise failure  # outside the handler: the aiohttp exception is not kept as its context
            location = resp.headers.get("Location")
            if resp.status in _REDIRECT_STATUSES and location and follow_redirects:
                resp.release()
                target = redirect_target(current, location)
                if target is None:
                    raise UnexpectedResponseError(
                        f"{method} {loggable(current)} was redirected (HTTP {resp.status}) to an address "
                        "that does not parse",
                        status_code=resp.status,
                        method=method,
                        url=loggable(current),
                    )
                if target.scheme not in ("http", "https"):
                    raise APIConnectionError(
                        f"refusing to follow a redirect to a non-HTTP URL from {loggable(current)}",
                        method=method,
                        url=loggable(current),
                    )
                if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                    method, body = "GET", None
                logger.debug("redirect %d: %s -> %s", resp.status, loggable(current), loggable(target))
                current, api = target, self.is_api_origin(target)
                continue
            return resp, method, current
        raise APIConnectionError(
            f"more than {MAX_REDIRECTS} redirects starting at {loggable(url)}", method=method, url=loggable(url)
        )


def _defuse(exc: BaseException) -> None:
    """Strip an aiohttp exception of what may hold the key: its frames (their locals) and request info."""
    exc.__traceback__ = None
    exc.__context__ = None
    exc.__cause__ = None
    if isinstance(exc, aiohttp.ClientResponseError):
        info = exc.request_info
        exc.request_info = aiohttp.RequestInfo(info.url, info.method, CIMultiDictProxy(CIMultiDict()), info.real_url)
        exc.args = ()


def _map_exception(
    exc: BaseException, method: str, url: str, *, sent: bool | None, secret: Secret | None = None
) -> APIConnectionError:
    """Our error for an aiohttp/timeout exception, meant to be raised unchained.

    ``sent=None`` means "decide from the exception": only a failure to connect
    (or a connect timeout) proves that nothing reached the server.
    """
    if sent is None:
        not_sent = aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError | aiohttp.InvalidURL
        sent = not isinstance(exc, not_sent)
    return connection_error(exc, method, url, request_sent=sent, secret=secret)
