"""What a download accepts as a video: pure rules over an answer's content type and first bytes.

A body is written at a final path only if BOTH hold:

* its declared content type is not one that clearly is not a video: text of any kind (HTML,
  plain, XML), JSON, JavaScript, images, audio, fonts, multipart, PDF, archives. A missing
  type, ``video/*`` and the generic binary types (``application/octet-stream``,
  ``binary/octet-stream``) are judged by their bytes alone: storage services and CDNs
  often send those for videos;
* its first bytes are a known video container (see :func:`fastrouter_async._sniff.sniff_video`:
  ISO BMFF ``ftyp`` (MP4, MOV, 3GP) and old QuickTime leading atoms, WebM/Matroska EBML,
  RIFF AVI, FLV, MPEG-TS, MPEG-PS, Ogg). GIF and other images are not videos.

Anything else is refused with a message naming the content type and what the bytes look like
(never the bytes themselves).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ._sniff import SNIFF_BYTES, describe_bytes, sniff_video

__all__ = ["SNIFF_BYTES", "content_type_problem", "not_a_video", "peek"]

_REFUSED_TOP_LEVEL = ("text/", "image/", "audio/", "font/", "multipart/", "message/", "model/")
_REFUSED_WORDS = ("json", "html", "xml", "javascript", "ecmascript", "x-www-form-urlencoded", "mpegurl")
_REFUSED_TYPES = frozenset(
    {
        "application/pdf",
        "application/zip",
        "application/gzip",
        "application/x-gzip",
        "application/x-tar",
        "application/x-7z-compressed",
        "application/dash+xml",
    }
)


def content_type_problem(content_type: str | None) -> str | None:
    """Why a declared content type cannot carry a video, or ``None`` if the bytes must decide."""
    if not content_type:
        return None
    media = content_type.split(";", maxsplit=1)[0].strip().lower()
    if media.startswith("video/") or media in ("application/octet-stream", "binary/octet-stream"):
        return None
    if media.startswith(_REFUSED_TOP_LEVEL) or media in _REFUSED_TYPES or any(w in media for w in _REFUSED_WORDS):
        return f"its content type is {_show(content_type)}, not a video"
    return None


def not_a_video(content_type: str | None, head: bytes) -> str | None:
    """Why a body with this content type and these first bytes is not a video, or ``None`` if it is one.

    ``head`` is the body's first bytes (at least ``SNIFF_BYTES`` of them unless the body is shorter).
    """
    problem = content_type_problem(content_type)
    if problem is None and sniff_video(head) is not None:
        return None
    declared = _show(content_type) if content_type else "no content type"
    if not head:
        return f"the answer ({declared}) is empty, not a video"
    return f"the answer ({declared}) is not a video: its first bytes look like {describe_bytes(head)}"


def _show(content_type: str) -> str:
    """A content type for a message: printable, bounded."""
    text = "".join(ch if ch.isprintable() else "?" for ch in content_type.strip())
    return text[:80] + ("..." if len(text) > 80 else "")


async def peek(
    chunks: AsyncIterator[bytes | memoryview], size: int = SNIFF_BYTES
) -> tuple[bytes, AsyncIterator[bytes | memoryview]]:
    """The first ``size`` bytes of ``chunks`` (fewer if it ends sooner), and an iterator over all of it."""
    head = bytearray()
    pending: list[bytes | memoryview] = []
    ended = False
    while len(head) < size:
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            ended = True
            break
        pending.append(chunk)
        head += chunk

    async def replay() -> AsyncIterator[bytes | memoryview]:
        for chunk in pending:
            yield chunk
        if not ended:
            async for chunk in chunks:
                yield chunk

    return bytes(head[:size]), replay()
