"""Streaming, atomic downloads of finished videos.

Bytes go to a temporary file beside the destination, are flushed to disk, and
only then renamed into place, so the destination never holds a partial video.
Memory stays bounded (one buffer of ``_WRITE_BUFFER`` bytes) whatever the size.

The API key is sent only to the FastRouter API origin: never to a provider CDN,
never across a redirect to another host. Hosted copies on the API origin are
first requested without it and get it only if they answer 401/403.

A failed download is retried as a download; nothing here can resubmit a job.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import inspect
import logging
import os
import random
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import anyio

from ._config import RetryPolicy
from ._errors import APIConnectionError, DownloadError, FastRouterError
from ._models import DownloadedFile, ResultSource, VideoResult
from ._polling import retrying
from ._protocol import HttpCall, inline_video_base64, is_media_response, is_retryable_status
from ._transport import StreamedResponse, loggable

if TYPE_CHECKING:
    from ._transport import Transport

__all__ = ["DownloadProgress", "download_result"]

logger = logging.getLogger("fastrouter_async")

DownloadProgress = Callable[[int, int | None], object]
"""``progress(bytes_received, total_or_None)``; may be a plain function or a coroutine function."""

_CHUNK = 256 * 1024
_WRITE_BUFFER = 1024 * 1024
# Writes go to a worker thread (no blocking disk I/O on the event loop); batching them into
# 1 MiB keeps the number of thread hops low while memory stays at a megabyte per download.
_B64_BLOCK = 4 * 256 * 1024  # a multiple of 4: decodes into 768 KiB pieces
_GONE = frozenset({403, 404, 410})


class _Retryable(FastRouterError):
    """A download attempt failed in a way worth another try (never leaves this module)."""


async def download_result(
    transport: Transport,
    result: VideoResult,
    path: Path,
    *,
    overwrite: bool,
    progress: DownloadProgress | None,
    poll: HttpCall,
    retry_policy: RetryPolicy,
    rng: random.Random,
) -> DownloadedFile:
    """Write ``result``'s video to ``path`` atomically and describe the file written."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise DownloadError(
            f"{path} is a directory; pass a file path such as {path / (result.task_id + '.mp4')}",
            task_id=result.task_id,
        )
    if not overwrite and path.exists():
        raise DownloadError(f"{path} already exists (pass overwrite=True to replace it)", task_id=result.task_id)
    if result.source is ResultSource.INLINE_BASE64:
        text = inline_video_base64(result.payload)
        if text is None:
            raise DownloadError("the result has no inline video to write", task_id=result.task_id)
        return await _write_atomically(
            path,
            _decode_base64(text, result.task_id),
            total=None,
            overwrite=overwrite,
            progress=progress,
            task_id=result.task_id,
        )
    if result.source is ResultSource.POLL_BODY:
        sources = [(poll, True)]
    else:
        if not result.urls:
            raise DownloadError("the result has no video URL", task_id=result.task_id)
        sources = [(HttpCall("GET", url), False) for url in result.urls]
    failures: list[str] = []
    for call, is_poll in sources:
        try:
            return await _download_with_retries(
                transport,
                call,
                result.task_id,
                path,
                is_poll=is_poll,
                overwrite=overwrite,
                progress=progress,
                retry_policy=retry_policy,
                rng=rng,
            )
        except DownloadError as exc:
            failures.append(str(exc))
            logger.warning("download of task %s from %s failed: %s", result.task_id, loggable(call.url), exc)
    raise DownloadError(
        f"could not download the video of task {result.task_id}: " + "; ".join(failures),
        task_id=result.task_id,
        url=loggable(sources[-1][0].url),
    )


async def _download_with_retries(
    transport: Transport,
    call: HttpCall,
    task_id: str,
    path: Path,
    *,
    is_poll: bool,
    overwrite: bool,
    progress: DownloadProgress | None,
    retry_policy: RetryPolicy,
    rng: random.Random,
) -> DownloadedFile:
    # The key goes to the API origin only: always for the poll route (it is the API),
    # and for hosted copies only after they refused to answer without it.
    use_auth = is_poll

    async def attempt() -> DownloadedFile:
        nonlocal use_auth
        while True:
            async with transport.stream(call, auth=use_auth, headers={"Accept-Encoding": "identity"}) as resp:
                if resp.status in (401, 403) and not use_auth and transport.is_api_origin(resp.url):
                    use_auth = True
                    continue
                await _check_response(resp, call, is_poll)
                return await _write_atomically(
                    path,
                    resp.iter_chunks(_CHUNK),
                    total=_content_length(resp),
                    overwrite=overwrite,
                    progress=progress,
                    task_id=task_id,
                )

    try:
        return await retrying(
            attempt,
            policy=retry_policy,
            should_retry=lambda exc: isinstance(exc, _Retryable | APIConnectionError),
            rng=rng,
            what=f"download from {loggable(call.url)}",
        )
    except (_Retryable, APIConnectionError) as exc:
        raise DownloadError(str(exc), url=loggable(call.url)) from exc


async def _check_response(resp: StreamedResponse, call: HttpCall, is_poll: bool) -> None:
    where = loggable(resp.url)
    if resp.status in _GONE:
        raise DownloadError(f"{where} answered HTTP {resp.status} (the link may have expired)", url=where)
    if is_retryable_status(resp.status):
        raise _Retryable(f"{where} answered HTTP {resp.status}")
    if not 200 <= resp.status < 300:
        raise DownloadError(f"{where} answered HTTP {resp.status}", url=where)
    if is_poll and not is_media_response(resp.headers.get("content-type", "")):
        snippet = (await resp.read_limited(300)).decode("utf-8", "replace")
        raise DownloadError(
            f"{call.method} {where} answered {resp.headers.get('content-type', 'no content type')} instead of "
            f"the video: {snippet!r}",
            url=where,
        )


def _content_length(resp: StreamedResponse) -> int | None:
    raw = resp.headers.get("content-length")
    if raw is None or resp.headers.get("content-encoding", "identity") != "identity":
        return None
    try:
        return int(raw)
    except ValueError:
        return None


async def _decode_base64(text: str, task_id: str) -> AsyncIterator[bytes]:
    cleaned = "".join(text.split())
    for start in range(0, len(cleaned), _B64_BLOCK):
        try:
            yield base64.b64decode(cleaned[start : start + _B64_BLOCK], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DownloadError(f"the inline video of task {task_id} is not valid base64", task_id=task_id) from exc


async def _write_atomically(
    path: Path,
    chunks: AsyncIterator[bytes],
    *,
    total: int | None,
    overwrite: bool,
    progress: DownloadProgress | None,
    task_id: str | None,
) -> DownloadedFile:
    """Stream ``chunks`` into a temporary file beside ``path``, verify, then rename into place."""
    await anyio.Path(path.parent).mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    received = 0
    digest = hashlib.sha256()
    try:
        handle = await anyio.to_thread.run_sync(_open_exclusive, temp)
        try:
            buffer = bytearray()
            async for chunk in chunks:
                buffer += chunk
                received += len(chunk)
                if len(buffer) >= _WRITE_BUFFER:
                    # Writing and hashing both happen off the event loop (hashlib releases the GIL).
                    await anyio.to_thread.run_sync(_write_and_hash, handle, digest, bytes(buffer))
                    buffer.clear()
                    await _report(progress, received, total)
            await anyio.to_thread.run_sync(_finish_file, handle, digest, bytes(buffer))
        finally:
            handle.close()
        await _report(progress, received, total)
        if total is not None and received != total:
            raise _Retryable(f"the download ended after {received} of {total} bytes")
        await anyio.to_thread.run_sync(_move_into_place, temp, path, overwrite)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()  # a file system call of microseconds; safe even while being cancelled
        raise
    logger.info("downloaded %d bytes to %s", received, path)
    return DownloadedFile(path=path, size=received, sha256=digest.hexdigest(), task_id=task_id)


def _open_exclusive(temp: Path) -> BinaryIO:
    return open(temp, "xb")  # closed by the caller, across awaits


def _write_and_hash(handle: BinaryIO, digest: hashlib._Hash, data: bytes) -> None:
    handle.write(data)
    digest.update(data)


def _finish_file(handle: BinaryIO, digest: hashlib._Hash, data: bytes) -> None:
    if data:
        _write_and_hash(handle, digest, data)
    handle.flush()
    os.fsync(handle.fileno())


def _move_into_place(temp: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)  # fails if path exists: no silent overwrite, even in a race
    except FileExistsError:
        raise DownloadError(f"{path} already exists (pass overwrite=True to replace it)") from None
    temp.unlink()


async def _report(progress: DownloadProgress | None, received: int, total: int | None) -> None:
    if progress is None:
        return
    outcome = progress(received, total)
    if inspect.isawaitable(outcome):
        await outcome
