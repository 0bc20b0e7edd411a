"""Pure video sniffing: declared content types, container magic bytes, safe descriptions."""

from __future__ import annotations

from pathlib import Path

import pytest

import fastrouter_async.testing
from fastrouter_async._sniff import (
    SNIFF_BYTES,
    describe_bytes,
    is_video_content_type,
    looks_like_video,
    sniff_video,
)

SAMPLE = (Path(fastrouter_async.testing.__file__).parent / "sample.mp4").read_bytes()[:SNIFF_BYTES]
MP4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00"
MOV = b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00"
WEBM = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81"
TS = (b"\x47" + bytes(187)) * 2


@pytest.mark.parametrize(
    ("ct", "expected"),
    [
        ("video/mp4", True),
        ("Video/WebM; codecs=vp9", True),
        ("application/octet-stream", True),
        ("binary/octet-stream", True),
        ("application/mp4", True),
        (None, False),
        ("", False),
        ("text/html; charset=utf-8", False),
        ("application/json", False),
        ("application/problem+json", False),
        ("text/plain", False),
        ("image/png", False),
    ],
)
def test_is_video_content_type(ct: str | None, expected: bool) -> None:
    """Only video/* and generic binary types may carry a video; text, JSON and no type never do."""
    assert is_video_content_type(ct) is expected


@pytest.mark.parametrize(
    ("prefix", "container"),
    [
        (SAMPLE, "MP4"),
        (MP4, "MP4"),
        (MOV, "QuickTime MOV"),
        (b"\x00\x00\x00\x08mdat", "QuickTime MOV"),
        (b"\x00\x00\x00\x14ftyp3gp5\x00\x00", "3GP"),
        (WEBM, "WebM/Matroska"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "AVI"),
        (b"FLV\x01\x05", "FLV"),
        (b"\x00\x00\x01\xba\x44", "MPEG-PS"),
        (b"OggS\x00\x02", "Ogg"),
        (TS, "MPEG-TS"),
        (b"\x47" + bytes(20), None),
        (b"\x00\x00\x00\x1cftypavif", None),
        (b"", None),
        (b"ftyp", None),
        (b"<!doctype html><title>expired</title>", None),
        (b'{"error": "gone"}', None),
        (b"\x89PNG\r\n\x1a\n", None),
    ],
)
def test_sniff_video(prefix: bytes, container: str | None) -> None:
    """The first bytes name a known video container, or nothing at all."""
    assert sniff_video(prefix) == container


def test_looks_like_video_needs_both_type_and_bytes() -> None:
    """A video needs a media content type AND container bytes; either alone is not enough."""
    assert looks_like_video("video/mp4", MP4)
    assert looks_like_video("application/octet-stream", WEBM)
    assert not looks_like_video("video/mp4", b"<html>link expired</html>")
    assert not looks_like_video("text/html", MP4)
    assert not looks_like_video(None, MP4)
    assert not looks_like_video("video/mp4", b"")


@pytest.mark.parametrize(
    ("prefix", "description"),
    [
        (b"", "empty"),
        (b" \r\n", "whitespace"),
        (b"<!DOCTYPE html><html><body>Link expired</body></html>", "HTML text"),
        (b"\n<html>", "HTML text"),
        (b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>', "XML or markup text"),
        (b'{"error": {"message": "no"}}', "JSON"),
        (b"[1, 2]", "JSON"),
        (b"\xef\xbb\xbf{}", "JSON"),
        (MP4, "MP4 video"),
        (WEBM, "WebM/Matroska video"),
        (b"\x89PNG\r\n\x1a\n\x00", "an image"),
        (b"\x1f\x8b\x08\x00", "gzip data"),
        (b"PK\x03\x04", "a ZIP archive"),
        (b"%PDF-1.7", "a PDF document"),
        (b"Service Unavailable\n", "plain text"),
        ("é".encode() * 256, "plain text"),
        (b"\xff\xfe\x00\x01\x02", "unknown binary"),
        (b"abc\x00\x01", "unknown binary"),
    ],
)
def test_describe_bytes(prefix: bytes, description: str) -> None:
    """Bodies are described in a few safe words for messages, never quoted."""
    assert describe_bytes(prefix) == description


def test_describe_bytes_never_quotes_the_body() -> None:
    """A secret in a body never reaches the description."""
    assert "sk-secret" not in describe_bytes(b"Bearer sk-secret")
