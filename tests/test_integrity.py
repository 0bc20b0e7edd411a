"""Pure download header rules: Content-Range, Content-Length, ETags, digests, resume continuity."""

from __future__ import annotations

import base64
import hashlib

import pytest

from fastrouter_async._integrity import (
    ContentRange,
    ExpectedDigest,
    accepts_ranges,
    content_length,
    continuation_problem,
    decoded_base64_size,
    expected_digests,
    parse_content_range,
    strong_etag,
)

DATA = b"the whole video"
PART = DATA[:5]
SHA = hashlib.sha256(DATA).digest()
MD5 = hashlib.md5(DATA, usedforsecurity=False).digest()
PART_MD5 = hashlib.md5(PART, usedforsecurity=False).digest()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes 0-99/1000", ContentRange(0, 99, 1000)),
        ("bytes 999-999/1000", ContentRange(999, 999, 1000)),
        ("BYTES 0-0/1", ContentRange(0, 0, 1)),
        ("bytes */1000", ContentRange(None, None, 1000)),
        ("bytes 0-99/*", ContentRange(0, 99, None)),
        ("bytes 100-99/1000", None),
        ("bytes 0-1000/1000", None),
        ("bytes */*", None),
        ("bytes 0-99", None),
        ("bytes a-b/10", None),
        ("bytes -5-9/10", None),
        ("items 0-1/2", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_content_range(value: str | None, expected: ContentRange | None) -> None:
    """Content-Range values parse to (first, last, total), malformed ones to None."""
    assert parse_content_range(value) == expected


def test_content_range_length() -> None:
    """A range's length counts both ends; the * form has none."""
    assert ContentRange(10, 19, 100).length == 10
    assert ContentRange(None, None, 100).length is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"content-length": "123"}, 123),
        ({"content-length": " 0 "}, 0),
        ({"content-length": "-1"}, None),
        ({"content-length": "12a"}, None),
        ({"content-length": "123", "content-encoding": "gzip"}, None),
        ({"content-length": "123", "content-encoding": "identity"}, 123),
        ({}, None),
    ],
)
def test_content_length(headers: dict[str, str], expected: int | None) -> None:
    """Content-Length counts the file's bytes only without a content coding."""
    assert content_length(headers) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"abc"', '"abc"'),
        (' "1700000000-12345" ', '"1700000000-12345"'),
        ('W/"abc"', None),
        ("abc", None),
        ('"a"b"', None),
        ('"', None),
        (None, None),
    ],
)
def test_strong_etag(value: str | None, expected: str | None) -> None:
    """Only a well-formed strong ETag is usable for If-Range; weak and malformed ones are not."""
    headers = {} if value is None else {"etag": value}
    assert strong_etag(headers) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [("bytes", True), ("Bytes", True), ("none", False), ("items, bytes", True), (None, None)]
)
def test_accepts_ranges(value: str | None, expected: bool | None) -> None:
    """Accept-Ranges: bytes, none, or absent (unknown)."""
    headers = {} if value is None else {"accept-ranges": value}
    assert accepts_ranges(headers) is expected


@pytest.mark.parametrize(
    ("headers", "partial", "expected"),
    [
        ({"content-md5": b64(MD5)}, False, [("md5", MD5, "content-md5")]),
        ({"content-md5": b64(PART_MD5)}, True, []),  # it describes the range sent, not the file
        ({"repr-digest": f"sha-256=:{b64(SHA)}:"}, True, [("sha256", SHA, "repr-digest")]),
        (
            {"repr-digest": f"sha-512=:{b64(b'x' * 64)}:, sha-256=:{b64(SHA)}:;param=1, md5=:{b64(MD5)}:"},
            False,
            [("sha256", SHA, "repr-digest"), ("md5", MD5, "repr-digest")],
        ),
        ({"content-digest": f"sha-256=:{b64(SHA)}:"}, False, [("sha256", SHA, "content-digest")]),
        ({"content-digest": f"sha-256=:{b64(SHA)}:"}, True, []),
        ({"digest": f"SHA-256={b64(SHA)},MD5={b64(MD5)}"}, True, [("sha256", SHA, "digest"), ("md5", MD5, "digest")]),
        ({"digest": f"UNIXsum=30637,md5={b64(MD5)}"}, False, [("md5", MD5, "digest")]),
        ({"x-goog-hash": f"crc32c=n03x6A==, md5={b64(MD5)}"}, True, [("md5", MD5, "x-goog-hash")]),
        ({"x-goog-hash": f"md5={b64(MD5)}", "x-goog-stored-content-encoding": "gzip"}, False, []),
        ({"repr-digest": f"sha-256=:{b64(SHA)}:", "content-encoding": "gzip"}, False, []),
        ({"content-md5": "not base64!"}, False, []),
        ({"content-md5": b64(b"short")}, False, []),
        ({"repr-digest": f"sha-256={b64(SHA)}"}, False, []),  # not a byte sequence (no colons)
        ({"digest": f"sha-256=:{b64(SHA)}:"}, False, []),  # RFC 3230 values are bare base64
        ({"etag": f'"{MD5.hex()}"'}, False, []),  # an ETag is never taken for a checksum
        ({}, False, []),
    ],
)
def test_expected_digests(headers: dict[str, str], partial: bool, expected: list[tuple[str, bytes, str]]) -> None:
    """Checksum headers give whole-file digests; body-only ones are dropped for a 206, bad ones ignored."""
    assert expected_digests(headers, partial=partial) == tuple(ExpectedDigest(a, v, h) for a, v, h in expected)  # type: ignore[arg-type]


def test_expected_digest_hex() -> None:
    """A digest shows itself as hex in messages."""
    assert ExpectedDigest("md5", MD5, "content-md5").hex == MD5.hex()


@pytest.mark.parametrize(
    ("content_range", "kwargs", "problem"),
    [
        (ContentRange(100, 999, 1000), {}, None),
        (ContentRange(100, 999, 1000), {"etag": '"e"', "known_etag": '"e"', "length": 900}, None),
        (None, {}, "no usable Content-Range"),
        (ContentRange(None, None, 1000), {}, "no usable Content-Range"),
        (ContentRange(100, 999, None), {}, "does not say the file's size"),
        (ContentRange(0, 999, 1000), {}, "asked for bytes from 100"),
        (ContentRange(100, 499, 1000), {}, "got only Content-Range bytes 100-499/1000"),
        (ContentRange(100, 899, 900), {}, "size changed from 1000 to 900"),
        (ContentRange(100, 999, 1000), {"etag": '"f"', "known_etag": '"e"'}, 'ETag changed from "e" to "f"'),
        (ContentRange(100, 999, 1000), {"etag": None, "known_etag": '"e"'}, 'ETag changed from "e" to none'),
        (ContentRange(100, 999, 1000), {"length": 10}, "Content-Length 10 does not match"),
    ],
)
def test_continuation_problem(
    content_range: ContentRange | None, kwargs: dict[str, object], problem: str | None
) -> None:
    """A 206 continues the kept bytes only from the right offset, to the end, with the same size and ETag."""
    options: dict[str, object] = {"offset": 100, "known_total": 1000, "etag": None, "known_etag": None, "length": None}
    options.update(kwargs)
    found = continuation_problem(content_range, **options)  # type: ignore[arg-type]
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


@pytest.mark.parametrize(
    ("text", "size"),
    [("", 0), ("QQ==", 1), ("QUI=", 2), ("QUJD", 3), (b64(DATA), len(DATA)), ("QQ", None), ("Q===", None)],
)
def test_decoded_base64_size(text: str, size: int | None) -> None:
    """The decoded size of base64 text follows from its length and padding; impossible lengths give None."""
    assert decoded_base64_size(text) == size
