"""Inline base64 videos: checked, decoded in pieces and written through the download's part file.

No request is made: the video came inside the poll answer. Its decoded size follows from the
length of the text (checked against ``max_bytes`` before decoding), its first decoded bytes must
be a video container, and the decoded bytes are written in bounded pieces.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from ._accept import not_a_video, peek
from ._errors import DownloadError
from ._integrity import decoded_base64_size
from ._interpret import inline_video_base64
from ._models import DownloadedFile, DownloadProgress, VideoResult
from ._partfile import Corrupt, PartFile, TooLarge
from ._sniff import describe_bytes

__all__ = ["write_inline"]

_B64_BLOCK = 4 * 256 * 1024  # a multiple of 4: decodes into 768 KiB pieces


async def write_inline(
    result: VideoResult,
    path: Path,
    part: PartFile,
    *,
    overwrite: bool,
    progress: DownloadProgress | None,
    max_bytes: int | None,
    slot: Callable[[], AbstractAsyncContextManager[None]],
) -> DownloadedFile:
    """Write ``result``'s inline video to ``path`` through ``part``, holding ``slot()`` while writing."""
    text = inline_video_base64(result.payload)
    if text is None:
        raise DownloadError("the result has no inline video to write", task_id=result.task_id)
    cleaned = "".join(text.split())
    size = decoded_base64_size(cleaned)
    if size is None:
        raise DownloadError(f"the inline video of task {result.task_id} is not valid base64", task_id=result.task_id)
    if max_bytes is not None and size > max_bytes:
        raise TooLarge(f"the inline video is {size} bytes, more than max_bytes={max_bytes}; nothing was written")
    head, pieces = await peek(_decode_base64(cleaned, result.task_id))
    if not_a_video(None, head) is not None:
        raise DownloadError(
            f"the inline video of task {result.task_id} is not a video: its first bytes look like "
            f"{describe_bytes(head)}",
            task_id=result.task_id,
        )
    async with slot():
        if not part.blank:
            await part.restart()
        await part.describe(source=None, etag=None, total=size, digests=())
        await part.write(pieces, progress=progress, max_bytes=max_bytes)
        try:
            return await part.finish(path, overwrite=overwrite)
        except Corrupt as exc:
            raise DownloadError(f"the inline video of task {result.task_id}: {exc}", task_id=result.task_id) from exc


async def _decode_base64(text: str, task_id: str) -> AsyncIterator[bytes]:
    for start in range(0, len(text), _B64_BLOCK):
        try:
            yield base64.b64decode(text[start : start + _B64_BLOCK], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DownloadError(f"the inline video of task {task_id} is not valid base64", task_id=task_id) from exc
