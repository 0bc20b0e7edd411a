"""The video bytes the simulator serves, and HTTP range handling for them."""

from __future__ import annotations

import functools
import hashlib
from importlib import resources
from typing import Final, Literal

from aiohttp import web

__all__ = ["UNSATISFIABLE", "etag_of", "parse_range", "sample_video", "video_response"]

UNSATISFIABLE: Final = "unsatisfiable"


@functools.cache
def sample_video() -> bytes:
    """The small MP4 bundled with the simulator (served for every job without ``JobPlan.video``).

    Read from the package on first use, then kept in memory.
    """
    return resources.files("fastrouter_async.testing").joinpath("sample.mp4").read_bytes()


def etag_of(video: bytes) -> str:
    """A strong ETag: the quoted SHA-256 hex digest of the bytes."""
    return f'"{hashlib.sha256(video).hexdigest()}"'


def parse_range(header: str, size: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """The inclusive ``(first, last)`` byte positions a ``Range`` header asks for.

    Only a single range is supported (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``).
    Returns ``None`` when the header should be ignored (another unit, several
    ranges, or bad syntax: RFC 9110 allows serving the whole body then), and
    ``UNSATISFIABLE`` when the range lies outside the body (answer 416).
    """
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash or not (first_text.isdigit() or last_text.isdigit()):
        return None
    if not first_text:  # suffix range: the last n bytes
        suffix = int(last_text)
        return UNSATISFIABLE if suffix == 0 or size == 0 else (max(0, size - suffix), size - 1)
    if not first_text.isdigit() or (last_text and not last_text.isdigit()):
        return None
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None
    if first >= size:
        return UNSATISFIABLE
    return first, min(int(last_text), size - 1) if last_text else size - 1


def video_response(video: bytes, *, range_header: str | None, if_range: str | None) -> web.Response:
    """Serve ``video`` as ``video/mp4``: 200 in full, 206 for a satisfiable range, 416 otherwise.

    An ``If-Range`` that does not equal the ETag makes the range ignored (the
    body changed, so the client gets it whole), as RFC 9110 says.
    """
    etag = etag_of(video)
    headers = {"Accept-Ranges": "bytes", "ETag": etag}
    wanted = None
    if range_header is not None and (if_range is None or if_range.strip() == etag):
        wanted = parse_range(range_header, len(video))
    if isinstance(wanted, str):  # UNSATISFIABLE
        headers["Content-Range"] = f"bytes */{len(video)}"
        return web.Response(status=416, headers=headers)
    if wanted is None:
        return web.Response(body=video, content_type="video/mp4", headers=headers)
    first, last = wanted
    headers["Content-Range"] = f"bytes {first}-{last}/{len(video)}"
    return web.Response(status=206, body=video[first : last + 1], content_type="video/mp4", headers=headers)
