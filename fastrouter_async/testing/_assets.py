"""The video bytes the simulator serves, and HTTP range handling for them."""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Collection, Mapping
from importlib import resources
from typing import Final, Literal

import attrs

__all__ = [
    "CHECKSUM_HEADERS",
    "UNSATISFIABLE",
    "EtagMode",
    "VideoAnswer",
    "etag_of",
    "parse_range",
    "sample_video",
    "video_answer",
]

UNSATISFIABLE: Final = "unsatisfiable"
EtagMode = Literal["strong", "weak", "none"]
CHECKSUM_HEADERS: Final = ("content-md5", "content-digest", "repr-digest", "digest", "x-goog-hash")
"""Checksum headers the simulator can send with videos (``FastRouterSimulator.download_checksums``)."""


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


@attrs.frozen(kw_only=True)
class VideoAnswer:
    """What to send for one request for a video: status, headers and the body bytes (pure data)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def video_answer(
    video: bytes,
    *,
    range_header: str | None,
    if_range: str | None,
    ranges: bool = True,
    etag: EtagMode = "strong",
    checksums: Collection[str] = (),
) -> VideoAnswer:
    """The answer serving ``video``: 200 in full, 206 for a satisfiable range, 416 otherwise.

    ``ranges=False`` ignores ``Range`` and sends no ``Accept-Ranges``. ``etag`` is
    ``"strong"`` (the quoted SHA-256), ``"weak"`` (the same, ``W/``-prefixed) or
    ``"none"``. An ``If-Range`` that is not the strong ETag makes the range ignored
    (the body changed, so the client gets it whole), as RFC 9110 says. ``checksums``
    names the checksum headers to add (see :data:`CHECKSUM_HEADERS`); those that
    describe the message body (``content-md5``, ``content-digest``) cover the range
    sent, the others the whole file.
    """
    unknown = set(checksums) - set(CHECKSUM_HEADERS)
    if unknown:
        raise ValueError(f"unknown checksum headers {sorted(unknown)}; known: {', '.join(CHECKSUM_HEADERS)}")
    strong = etag_of(video)
    headers: dict[str, str] = {"Content-Type": "video/mp4"}
    if ranges:
        headers["Accept-Ranges"] = "bytes"
    if etag == "strong":
        headers["ETag"] = strong
    elif etag == "weak":
        headers["ETag"] = "W/" + strong
    wanted = None
    if ranges and range_header is not None and (if_range is None or (etag == "strong" and if_range.strip() == strong)):
        wanted = parse_range(range_header, len(video))
    if isinstance(wanted, str):  # UNSATISFIABLE
        headers["Content-Range"] = f"bytes */{len(video)}"
        return VideoAnswer(status=416, headers=headers, body=b"")
    status, body = 200, video
    if wanted is not None:
        first, last = wanted
        headers["Content-Range"] = f"bytes {first}-{last}/{len(video)}"
        status, body = 206, video[first : last + 1]
    headers.update(_checksum_headers(video, body, checksums))
    return VideoAnswer(status=status, headers=headers, body=body)


def _checksum_headers(video: bytes, body: bytes, names: Collection[str]) -> dict[str, str]:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    whole_md5, whole_sha = hashlib.md5(video, usedforsecurity=False).digest(), hashlib.sha256(video).digest()
    out: dict[str, str] = {}
    if "content-md5" in names:
        out["Content-MD5"] = b64(hashlib.md5(body, usedforsecurity=False).digest())
    if "content-digest" in names:
        out["Content-Digest"] = f"sha-256=:{b64(hashlib.sha256(body).digest())}:"
    if "repr-digest" in names:
        out["Repr-Digest"] = f"sha-256=:{b64(whole_sha)}:, md5=:{b64(whole_md5)}:"
    if "digest" in names:
        out["Digest"] = f"SHA-256={b64(whole_sha)},MD5={b64(whole_md5)}"
    if "x-goog-hash" in names:
        out["x-goog-hash"] = f"md5={b64(whole_md5)}"
    return out
