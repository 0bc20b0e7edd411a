"""Is this body a video? Content types and magic bytes, as pure functions.

A server's word is not enough: a ``200 video/mp4`` may carry an HTML "link expired" page, and a
``200`` without a content type may carry anything. A body counts as a video only when BOTH its
content type allows media and its first bytes are a known video container.

* :func:`is_video_content_type` -- the declared type may be a video: ``video/*``,
  ``application/octet-stream``, ``binary/octet-stream`` or ``application/mp4``; never text,
  HTML, JSON, XML or a missing type.
* :func:`sniff_video` -- the container the first bytes show (ISO BMFF ``ftyp`` for MP4/MOV/3GP,
  EBML for WebM/Matroska, RIFF AVI, FLV, MPEG-TS, MPEG-PS, Ogg), or ``None``.
* :func:`looks_like_video` -- both at once.
* :func:`describe_bytes` -- a short, safe description of what the bytes look like, for
  messages ("HTML text", "JSON", "empty", "unknown binary"); it never quotes the body.

No I/O, no imports from the rest of the package: any layer may use it.
"""

from __future__ import annotations

__all__ = [
    "SNIFF_BYTES",
    "describe_bytes",
    "is_video_content_type",
    "looks_like_video",
    "sniff_video",
]

SNIFF_BYTES = 192  # enough for every signature below, MPEG-TS included (sync bytes at 0 and 188)

_MEDIA_TYPES = frozenset({"application/octet-stream", "binary/octet-stream", "application/mp4"})

# ISO base media file format brands seen on video files (ftyp major brand, bytes 8..12).
_QUICKTIME_BRANDS = frozenset({b"qt  "})
_3GP_PREFIXES = (b"3gp", b"3g2")


def is_video_content_type(ct: str | None) -> bool:
    """True when a declared content type may carry a video (``video/*`` or a generic binary type)."""
    if not ct:
        return False
    media = ct.split(";", maxsplit=1)[0].strip().lower()
    return media.startswith("video/") or media in _MEDIA_TYPES


def sniff_video(prefix: bytes) -> str | None:
    """The video container the first bytes of a body show, or ``None`` if they show none."""
    head = bytes(prefix[:16])
    if len(head) >= 8 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _QUICKTIME_BRANDS:
            return "QuickTime MOV"
        if brand.startswith(_3GP_PREFIXES):
            return "3GP"
        if brand.startswith((b"avif", b"heic", b"heix", b"mif1", b"msf1")):
            return None  # ISO BMFF still images, not videos
        return "MP4"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "QuickTime MOV"  # old QuickTime files start with an atom other than ftyp
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "WebM/Matroska"
    if len(head) >= 12 and head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "AVI"
    if head.startswith(b"FLV\x01"):
        return "FLV"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "MPEG-PS"
    if head.startswith(b"OggS"):
        return "Ogg"
    if len(head) >= 1 and head[0] == 0x47 and len(prefix) >= 189 and prefix[188] == 0x47:
        return "MPEG-TS"  # sync byte every 188 bytes; needs two packets' worth to say so
    return None


def looks_like_video(content_type: str | None, first_bytes: bytes) -> bool:
    """True only when the content type allows media AND the first bytes are a video container."""
    return is_video_content_type(content_type) and sniff_video(first_bytes) is not None


def describe_bytes(prefix: bytes) -> str:
    """What the first bytes of a body look like, in a few safe words (never the bytes themselves)."""
    head = bytes(prefix[:512])
    if not head:
        return "empty"
    container = sniff_video(prefix)
    if container is not None:
        return f"{container} video"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        return "whitespace"
    lowered = stripped[:64].lower()
    if lowered.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in head.lower():
        return "HTML text"
    if lowered.startswith(b"<"):
        return "XML or markup text"
    if stripped[:1] in (b"{", b"["):
        return "JSON"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8")):
        return "an image"
    if head.startswith(b"\x1f\x8b"):
        return "gzip data"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive"
    if head.startswith(b"%PDF"):
        return "a PDF document"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3 or exc.reason != "unexpected end of data":
            return "unknown binary"
        text = head[: exc.start].decode("utf-8")  # a character cut by the 512-byte window
    if all(ch.isprintable() or ch in "\t\r\n" for ch in text):
        return "plain text"
    return "unknown binary"
