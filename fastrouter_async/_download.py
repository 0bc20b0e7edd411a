"""Downloads of finished videos: streamed, resumed, verified, atomic, bounded.

One download writes to ``.NAME.part`` beside the destination (see ``_partfile``)
and renames it into place only once complete and verified, so the destination
never holds a partial or corrupt video. The body goes to the part file's writer
thread as it arrives (see ``_writer``, and ``_rawbody`` for plain-HTTP answers),
so memory stays bounded (8 MiB per download) whatever the size, for every result
form: a link, the poll answer's own body, or inline base64.

* **Resume.** A failed attempt keeps the bytes it received; the retry asks for the
  rest with ``Range: bytes=N-`` and, when the server gave a strong ETag,
  ``If-Range`` so that a changed file is sent whole instead of being spliced. A
  ``206`` is appended only if its ``Content-Range`` continues the kept bytes
  exactly; anything else (a ``200``, another size or ETag) starts over.
* **Verify.** The size must match ``Content-Length``/``Content-Range``; ``Repr-Digest``,
  ``Digest``, ``Content-Digest``, ``Content-MD5`` and ``x-goog-hash`` are checked
  when present. A mismatch drops the bytes and retries; when the retries run out,
  :class:`DownloadError` says what did not match.
* **Expired links.** 403/404/410 from every link of a result make the session poll
  the task once for fresh links (at most ``DEFAULT_MAX_LINK_REFRESHES`` times).
  Nothing here can submit a job: a failed download is retried as a download.
* **Limits.** At most ``max_concurrent_downloads`` requests stream at once (their own
  ``CapacityLimiter``, apart from the jobs limit), and ``max_bytes`` refuses a file
  from its announced size or stops it mid-stream.
* **Auth.** The API key goes to the FastRouter API origin only: hosted copies there
  get it after answering 401/403 without it, provider links never; the transport
  drops it on any redirect to another host, for ranged retries too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import attrs

from ._accept import content_type_problem, not_a_video, peek
from ._config import DEFAULT_MAX_LINK_REFRESHES, RetryPolicy
from ._errors import APIConnectionError, DownloadError, FastRouterError
from ._hosts import download_url_check
from ._inline import write_inline
from ._integrity import (
    accepts_ranges,
    content_length,
    continuation_problem,
    expected_digests,
    parse_content_range,
    strong_etag,
)
from ._limits import LazyLimiter
from ._models import DownloadedFile, DownloadProgress, ResultSource, VideoResult
from ._partfile import Abort, Corrupt, PartFile, TooLarge
from ._protocol import HttpCall, is_retryable_status
from ._retry import retrying
from ._transport import StreamedResponse, loggable

if TYPE_CHECKING:
    from ._transport import Transport

__all__ = ["DownloadProgress", "Downloader", "Refresh"]

logger = logging.getLogger("fastrouter_async")

Refresh = Callable[[], Awaitable[VideoResult]]
"""Polls the task once and returns its result with fresh links (never submits anything)."""

_GONE = frozenset({403, 404, 410})


class _Retryable(FastRouterError):
    """A download attempt failed in a way worth another try (never leaves this module)."""


class _Gone(FastRouterError):
    """A link answered 403/404/410: it has expired, or was never ours to fetch."""


class _NotVideo(FastRouterError):
    """A link answered with something that is not a video (an error page, JSON, nothing): like an expired link."""


@attrs.frozen
class _Source:
    """One place the bytes can come from: a link, or the poll route answering with the video."""

    call: HttpCall
    is_poll: bool

    @property
    def identity(self) -> str | None:
        """What kept bytes are tied to (scheme, host, path: signed query strings change); ``None``: no resume."""
        return loggable(self.call.url) if self.call.method == "GET" else None


class Downloader:
    """The downloads of one session: its download limiter, a lock per destination, the policies."""

    def __init__(
        self,
        transport: Transport,
        *,
        retry_policy: RetryPolicy,
        rng: random.Random,
        max_concurrent: int | None,
        max_bytes: int | None,
        max_refreshes: int = DEFAULT_MAX_LINK_REFRESHES,
        allow_link_local: bool = False,
    ) -> None:
        self._transport = transport
        self._retry_policy = retry_policy
        self._rng = rng
        self._max_concurrent = max_concurrent
        self._max_bytes = max_bytes
        self._max_refreshes = max_refreshes
        self._check_url = download_url_check(allow_link_local=allow_link_local)
        self._limiter = LazyLimiter(max_concurrent)
        self._destinations: dict[str, anyio.Lock] = {}

    @property
    def max_concurrent(self) -> int | None:
        return self._max_concurrent

    @property
    def max_bytes(self) -> int | None:
        return self._max_bytes

    @property
    def in_flight(self) -> int:
        """Download requests streaming right now (each holds one unit of ``max_concurrent``)."""
        return self._limiter.borrowed

    async def download(
        self,
        result: VideoResult,
        path: Path,
        *,
        overwrite: bool,
        progress: DownloadProgress | None,
        max_bytes: int | None,
        refresh: Refresh | None,
        poll_body: HttpCall,
    ) -> DownloadedFile:
        """Write ``result``'s video to ``path`` (see the module docstring) and describe the file written.

        ``max_bytes=None`` means the session's limit. ``poll_body`` is the request whose
        answer is the video, for results of the ``POLL_BODY`` form.
        """
        limit = self._max_bytes if max_bytes is None else max_bytes
        key = await anyio.to_thread.run_sync(_check_destination, path, overwrite, result.task_id)
        async with self._destination(key):
            try:
                part = await PartFile.open(path, result.task_id)
            except OSError as exc:
                raise DownloadError(
                    f"could not create a temporary file beside {path}: {exc}", task_id=result.task_id
                ) from exc
            keep = True
            try:
                return await self._fetch(
                    result,
                    path,
                    part,
                    overwrite=overwrite,
                    progress=progress,
                    max_bytes=limit,
                    refresh=refresh,
                    poll_body=poll_body,
                )
            except Abort as exc:
                keep = False
                raise DownloadError(str(exc), task_id=result.task_id, url=_best_url(result)) from exc
            except FastRouterError:
                raise
            except OSError as exc:  # the disk, not the network: full, read-only, a name the file system refuses
                raise DownloadError(
                    f"could not write the video of task {result.task_id} to {path}: {exc}", task_id=result.task_id
                ) from exc
            finally:
                await part.close(keep=keep)

    async def _fetch(
        self,
        result: VideoResult,
        path: Path,
        part: PartFile,
        *,
        overwrite: bool,
        progress: DownloadProgress | None,
        max_bytes: int | None,
        refresh: Refresh | None,
        poll_body: HttpCall,
    ) -> DownloadedFile:
        refreshes = 0
        while True:
            if result.source is ResultSource.INLINE_BASE64:
                return await write_inline(
                    result, path, part, overwrite=overwrite, progress=progress, max_bytes=max_bytes, slot=self._slot
                )
            if result.source is ResultSource.POLL_BODY:
                sources = [_Source(poll_body, is_poll=True)]
            elif result.urls:
                sources = [_Source(HttpCall("GET", url), is_poll=False) for url in result.urls]
            else:
                raise DownloadError("the result has no video URL", task_id=result.task_id)
            failures: list[str] = []
            gone = False
            for source in sources:
                try:
                    return await self._from_source(
                        source,
                        path,
                        part,
                        task_id=result.task_id,
                        overwrite=overwrite,
                        progress=progress,
                        max_bytes=max_bytes,
                    )
                except _Gone as exc:
                    gone = gone or not source.is_poll
                    failures.append(str(exc))
                except _NotVideo as exc:
                    gone = True  # an error page served as 200 is how many hosts say "expired"
                    failures.append(str(exc))
                except Abort:
                    raise
                except FastRouterError as exc:  # DownloadError, or an answer that could not be used at all
                    failures.append(str(exc))
                logger.warning(
                    "download of task %s from %s failed: %s", result.task_id, loggable(source.call.url), failures[-1]
                )
            if not gone or refresh is None or refreshes >= self._max_refreshes:
                raise DownloadError(
                    f"could not download the video of task {result.task_id}: " + "; ".join(failures),
                    task_id=result.task_id,
                    url=loggable(sources[-1].call.url),
                )
            refreshes += 1
            logger.info(
                "the links of task %s answered 403/404/410 or no video; asking the task for fresh links (%d of %d)",
                result.task_id,
                refreshes,
                self._max_refreshes,
            )
            try:
                result = await refresh()
            except FastRouterError as exc:
                raise DownloadError(
                    f"could not download the video of task {result.task_id}: "
                    + "; ".join(failures)
                    + f"; asking the task for fresh links failed: {exc}",
                    task_id=result.task_id,
                    url=loggable(sources[-1].call.url),
                ) from exc

    async def _from_source(
        self,
        source: _Source,
        path: Path,
        part: PartFile,
        *,
        task_id: str,
        overwrite: bool,
        progress: DownloadProgress | None,
        max_bytes: int | None,
    ) -> DownloadedFile:
        # The key goes to the API origin only: always for the poll route (it is the API),
        # and for hosted copies only after they refused to answer without it.
        use_auth = source.is_poll
        where = loggable(source.call.url)

        async def attempt() -> DownloadedFile:
            nonlocal use_auth
            async with self._slot():
                while True:
                    offset = part.offset_for(source.identity)
                    headers = {"Accept-Encoding": "identity"}
                    if offset:
                        headers["Range"] = f"bytes={offset}-"
                        if part.etag is not None:
                            headers["If-Range"] = part.etag
                    async with self._transport.stream(
                        source.call, auth=use_auth, headers=headers, check_url=self._check_url
                    ) as resp:
                        if resp.status in (401, 403) and not use_auth and self._transport.is_api_origin(resp.url):
                            use_auth = True
                            continue
                        await self._receive(
                            resp, source, part, offset=offset, progress=progress, max_bytes=max_bytes, task_id=task_id
                        )
                    return await part.finish(path, overwrite=overwrite)

        try:
            return await retrying(
                attempt,
                policy=self._retry_policy,
                should_retry=lambda exc: isinstance(exc, _Retryable | Corrupt | APIConnectionError),
                rng=self._rng,
                what=f"download from {where}",
            )
        except Corrupt as exc:
            raise DownloadError(
                f"the video of task {task_id} from {where} failed verification; after "
                f"{self._retry_policy.max_attempts} attempts, the last one found that {exc}",
                task_id=task_id,
                url=where,
            ) from exc
        except (_Retryable, APIConnectionError) as exc:
            raise DownloadError(str(exc), task_id=task_id, url=where) from exc

    async def _receive(
        self,
        resp: StreamedResponse,
        source: _Source,
        part: PartFile,
        *,
        offset: int,
        progress: DownloadProgress | None,
        max_bytes: int | None,
        task_id: str,
    ) -> None:
        """Append ``resp``'s body to ``part`` if it is what was asked for; raise what to do otherwise."""
        where = loggable(resp.url)
        status, headers = resp.status, resp.headers
        if status in _GONE:
            raise _Gone(f"{where} answered HTTP {status} (the link may have expired)")
        if status == 416 and offset:
            done = parse_content_range(headers.get("content-range"))
            if done is not None and done.total == offset == part.total:
                return  # every byte was already here: finish() verifies them
            await part.restart()
            raise _Retryable(f"{where} refused to resume at byte {offset} (HTTP 416); starting over")
        if is_retryable_status(status):
            raise _Retryable(f"{where} answered HTTP {status}")
        if not 200 <= status < 300:
            raise DownloadError(f"{where} answered HTTP {status}", task_id=task_id, url=where)
        content_type = headers.get("content-type")
        if content_type_problem(content_type) is not None:
            problem = not_a_video(content_type, await resp.read_limited(512))
            raise _NotVideo(f"{source.call.method} {where} answered HTTP {status}: {problem}")
        chunks = resp.iter_received()
        if not (status == 206 and offset):
            # The body starts the file: it must start like a video before a byte of it is kept.
            head, chunks = await peek(chunks)
            problem = not_a_video(content_type, head)
            if problem is not None:
                raise _NotVideo(f"{source.call.method} {where} answered HTTP {status}: {problem}")
        length, etag = content_length(headers), strong_etag(headers)
        if not (status == 206 and offset) and not part.blank:
            # A whole file (no range support, a changed file, or another link's bytes kept): start over,
            # forgetting what earlier answers said about size and digests too.
            logger.info("%s sends the file from its start; dropping the %d bytes kept", where, part.size)
            await part.restart()
        if status == 206:
            content_range = parse_content_range(headers.get("content-range"))
            problem = continuation_problem(
                content_range,
                offset=offset,
                known_total=part.total if offset else None,
                etag=etag,
                known_etag=part.etag if offset else None,
                length=length,
            )
            if problem is not None or content_range is None:
                await part.restart()
                raise _Retryable(f"{where}: {problem}; starting over")
            total = content_range.total
        else:
            total = length
        if max_bytes is not None and total is not None and total > max_bytes:
            raise TooLarge(f"the video is {total} bytes, more than max_bytes={max_bytes}; nothing was kept")
        # A server that refuses ranges gets no Range header next time (the kept bytes are not tied to it);
        # nor does one that sent a content coding anyway (its ranges would count encoded bytes).
        coding = headers.get("content-encoding", "identity").strip().lower()
        resumable = accepts_ranges(headers) is not False and coding in ("", "identity")
        identity = source.identity if resumable else None
        await part.describe(
            source=identity, etag=etag, total=total, digests=expected_digests(headers, partial=status == 206)
        )
        await part.write(chunks, progress=progress, max_bytes=max_bytes, recycle=resp.recycle)
        if total is not None and part.size != total:
            raise _Retryable(f"the download from {where} ended after {part.size} of {total} bytes")

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """Hold one unit of the download limit (separate from the jobs limit) for one request."""
        async with self._limiter.hold():
            yield

    @contextlib.asynccontextmanager
    async def _destination(self, key: str) -> AsyncIterator[None]:
        """One download per destination at a time in this session: they would share a ``.part`` file."""
        lock = self._destinations.get(key)
        if lock is None:
            lock = self._destinations[key] = anyio.Lock()
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and lock.statistics().tasks_waiting == 0 and self._destinations.get(key) is lock:
                del self._destinations[key]


def _check_destination(path: Path, overwrite: bool, task_id: str) -> str:
    """Refuse a directory, or an existing file without ``overwrite``; the destination's key for locking."""
    if path.is_dir():
        raise DownloadError(
            f"{path} is a directory; pass a file path such as {path / (task_id + '.mp4')}", task_id=task_id
        )
    if not overwrite and os.path.lexists(path):
        raise DownloadError(f"{path} already exists (pass overwrite=True to replace it)", task_id=task_id)
    return os.path.normcase(os.path.abspath(path))


def _best_url(result: VideoResult) -> str | None:
    return loggable(result.url) if result.url else None
