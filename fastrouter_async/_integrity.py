"""What a download answer promises about its bytes, as pure functions over its headers.

Ranges (RFC 9110 section 14), strong validators (ETag, section 8.8.3) and digests:
``Content-MD5`` (RFC 1864), ``Digest`` (RFC 3230), ``Repr-Digest`` and
``Content-Digest`` (RFC 9530) and Google Cloud Storage's ``x-goog-hash``.
Nothing here does I/O but :func:`file_digests`, which reads a file it is handed;
``headers`` are mappings with lower-case names, as the transport hands them over.

An ETag is never read as a checksum: its format is the server's business (nginx
writes ``"mtime-size"``, S3 an MD5 only for some uploads), and a false mismatch
would throw away a good, paid-for video. ETags only tie the pieces of a resumed
download to one and the same file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, Literal

import attrs

__all__ = [
    "ContentRange",
    "ExpectedDigest",
    "accepts_ranges",
    "content_length",
    "continuation_problem",
    "decoded_base64_size",
    "expected_digests",
    "file_digests",
    "parse_content_range",
    "strong_etag",
]

DigestAlgorithm = Literal["sha256", "md5"]

_DIGEST_SIZES: Mapping[DigestAlgorithm, int] = {"sha256": 32, "md5": 16}
_HASH_BLOCK = 1024 * 1024  # read a file in 1 MiB blocks to hash it
_ALGORITHM_NAMES: Mapping[str, DigestAlgorithm] = {"sha-256": "sha256", "sha256": "sha256", "md5": "md5"}


@attrs.frozen
class ContentRange:
    """A parsed ``Content-Range``: ``bytes first-last/total``, or ``bytes */total`` (416).

    ``first``/``last`` are ``None`` in the ``*`` form; ``total`` is ``None`` when
    the server does not know it (``bytes 0-99/*``).
    """

    first: int | None
    last: int | None
    total: int | None

    @property
    def length(self) -> int | None:
        """How many bytes the range holds (``None`` for the ``*`` form)."""
        if self.first is None or self.last is None:
            return None
        return self.last - self.first + 1


@attrs.frozen
class ExpectedDigest:
    """A digest of the whole file as a header states it."""

    algorithm: DigestAlgorithm
    value: bytes
    header: str
    """The header it came from (for messages): ``"repr-digest"``, ``"content-md5"``, ..."""

    @property
    def hex(self) -> str:
        return self.value.hex()


def parse_content_range(value: str | None) -> ContentRange | None:
    """``Content-Range: bytes 100-199/1000`` (or ``*/1000``, ``100-199/*``); ``None`` if absent or malformed."""
    if value is None:
        return None
    unit, _, rest = value.strip().partition(" ")
    if unit.lower() != "bytes":
        return None
    span, slash, total_text = rest.strip().partition("/")
    if not slash:
        return None
    total: int | None
    if total_text == "*":
        total = None
    elif total_text.isdigit():
        total = int(total_text)
    else:
        return None
    if span == "*":
        return None if total is None else ContentRange(None, None, total)
    first_text, dash, last_text = span.partition("-")
    if not dash or not first_text.isdigit() or not last_text.isdigit():
        return None
    first, last = int(first_text), int(last_text)
    if last < first or (total is not None and last >= total):
        return None
    return ContentRange(first, last, total)


def content_length(headers: Mapping[str, str]) -> int | None:
    """The body size the headers announce, if they announce one for the bytes as stored.

    ``None`` when there is no ``Content-Length``, it is malformed, or a content
    coding (gzip...) makes it describe something other than the file.
    """
    raw = headers.get("content-length")
    if raw is None or not _identity_encoding(headers):
        return None
    raw = raw.strip()
    return int(raw) if raw.isdigit() else None


def strong_etag(headers: Mapping[str, str]) -> str | None:
    """The ETag if it is strong (``"abc"``, not ``W/"abc"``) and well-formed, else ``None``."""
    raw = headers.get("etag")
    if raw is None:
        return None
    tag = raw.strip()
    if len(tag) < 2 or not tag.startswith('"') or not tag.endswith('"') or '"' in tag[1:-1]:
        return None  # weak (W/"...") or malformed: useless for If-Range
    return tag


def accepts_ranges(headers: Mapping[str, str]) -> bool | None:
    """``True`` for ``Accept-Ranges: bytes``, ``False`` for ``none``, ``None`` when the header is absent."""
    raw = headers.get("accept-ranges")
    if raw is None:
        return None
    units = {unit.strip().lower() for unit in raw.split(",")}
    return "bytes" in units


def expected_digests(headers: Mapping[str, str], *, partial: bool) -> tuple[ExpectedDigest, ...]:
    """The digests of the whole file that the headers state, in header order.

    ``partial`` is true for a 206 answer: ``Content-MD5`` and ``Content-Digest``
    then describe only the bytes sent, so they are left out, while ``Repr-Digest``,
    ``Digest`` (an instance digest) and ``x-goog-hash`` still describe the whole file.
    Malformed entries and unknown algorithms are ignored (never a reason to reject
    a video); a content coding other than identity makes every digest describe the
    encoded bytes, so none is returned.
    """
    if not _identity_encoding(headers):
        return ()
    found: list[ExpectedDigest] = []
    if not partial:
        md5 = _b64(headers.get("content-md5", ""))
        if md5 is not None and len(md5) == 16:
            found.append(ExpectedDigest("md5", md5, "content-md5"))
    sources = ["repr-digest"] if partial else ["repr-digest", "content-digest"]
    for name in sources:
        for algorithm, value in _structured_digests(headers.get(name, "")):
            found.append(ExpectedDigest(algorithm, value, name))
    for algorithm, value in _legacy_digests(headers.get("digest", "")):
        found.append(ExpectedDigest(algorithm, value, "digest"))
    stored_coding = headers.get("x-goog-stored-content-encoding", "identity").strip().lower()
    if stored_coding in ("", "identity"):
        # With decompressive transcoding GCS hashes the stored (gzipped) bytes, not what it sends.
        for algorithm, value in _legacy_digests(headers.get("x-goog-hash", "")):
            found.append(ExpectedDigest(algorithm, value, "x-goog-hash"))
    return tuple(found)


def continuation_problem(
    content_range: ContentRange | None,
    *,
    offset: int,
    known_total: int | None,
    etag: str | None,
    known_etag: str | None,
    length: int | None,
) -> str | None:
    """Why a 206 answer to ``Range: bytes=offset-`` cannot be appended to the bytes kept, or ``None`` if it can.

    It must start at ``offset``, run to the end of a file of known size, agree
    with the size seen before (``known_total``), carry the same strong ETag when
    the kept bytes had one (``known_etag``) and, if given, a ``Content-Length``
    equal to the range's length.
    """
    if content_range is None or content_range.first is None:
        return "the partial answer has no usable Content-Range"
    if content_range.total is None:
        return f"the partial answer does not say the file's size (Content-Range {_show(content_range)})"
    if content_range.first != offset:
        return f"asked for bytes from {offset}, got Content-Range {_show(content_range)}"
    if content_range.last != content_range.total - 1:
        return f"asked for the rest of the file from {offset}, got only Content-Range {_show(content_range)}"
    if known_total is not None and content_range.total != known_total:
        return f"the file's size changed from {known_total} to {content_range.total} bytes"
    if known_etag is not None and etag != known_etag:
        return f"the ETag changed from {known_etag} to {etag or 'none'}"
    if length is not None and length != content_range.length:
        return f"Content-Length {length} does not match Content-Range {_show(content_range)}"
    return None


def file_digests(source: Path | BinaryIO, *algorithms: DigestAlgorithm) -> tuple[bytes, ...]:
    """The digests of a whole file, one per algorithm: of the file at a path, or of an open binary handle.

    A handle is read from its start to its end (and left there); blocking, so call it in a worker thread.
    """
    hashes = [hashlib.new(name, usedforsecurity=False) if name == "md5" else hashlib.new(name) for name in algorithms]
    if isinstance(source, Path):
        with source.open("rb") as handle:
            _hash_all(handle, hashes)
    else:
        source.seek(0)
        _hash_all(source, hashes)
    return tuple(h.digest() for h in hashes)


def _hash_all(handle: BinaryIO, hashes: list[Any]) -> None:  # hashlib objects (their type is private)
    while block := handle.read(_HASH_BLOCK):
        for h in hashes:
            h.update(block)


def decoded_base64_size(text: str) -> int | None:
    """How many bytes base64 ``text`` (whitespace removed) decodes to; ``None`` if its length is impossible."""
    if len(text) % 4:
        return None
    padding = len(text) - len(text.rstrip("="))
    if padding > 2:
        return None
    return len(text) // 4 * 3 - padding


# --- helpers -----------------------------------------------------------------------------


def _identity_encoding(headers: Mapping[str, str]) -> bool:
    return headers.get("content-encoding", "identity").strip().lower() in ("", "identity")


def _b64(text: str) -> bytes | None:
    text = text.strip()
    if not text:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _structured_digests(header: str) -> list[tuple[DigestAlgorithm, bytes]]:
    """RFC 9530 dictionaries: ``sha-256=:BASE64:, md5=:BASE64:`` (parameters after ``;`` ignored)."""
    out: list[tuple[DigestAlgorithm, bytes]] = []
    for member in header.split(","):
        key, eq, value = member.strip().partition("=")
        value = value.split(";", 1)[0].strip()
        algorithm = _ALGORITHM_NAMES.get(key.strip().lower())
        if not eq or algorithm is None or len(value) < 2 or value[0] != ":" or value[-1] != ":":
            continue
        raw = _b64(value[1:-1])
        if raw is not None and len(raw) == _DIGEST_SIZES[algorithm]:
            out.append((algorithm, raw))
    return out


def _legacy_digests(header: str) -> list[tuple[DigestAlgorithm, bytes]]:
    """RFC 3230 ``Digest: SHA-256=BASE64,MD5=BASE64`` and GCS ``x-goog-hash: crc32c=..., md5=...``."""
    out: list[tuple[DigestAlgorithm, bytes]] = []
    for member in header.split(","):
        key, eq, value = member.strip().partition("=")
        algorithm = _ALGORITHM_NAMES.get(key.strip().lower())
        if not eq or algorithm is None:
            continue
        raw = _b64(value)
        if raw is not None and len(raw) == _DIGEST_SIZES[algorithm]:
            out.append((algorithm, raw))
    return out


def _show(content_range: ContentRange) -> str:
    span = "*" if content_range.first is None else f"{content_range.first}-{content_range.last}"
    return f"bytes {span}/{'*' if content_range.total is None else content_range.total}"
