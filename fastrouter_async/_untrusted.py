"""Reading bytes a server sent: bounded JSON decoding, task id checks, task id salvage, and
defensive accessors for the decoded values (a mapping, a list, a finite number, a URL, a word).

Every byte from a server is untrusted input. :func:`loads` decodes JSON so that no answer can
make it raise anything but :class:`UnreadableJSON`: nesting deeper than :data:`MAX_JSON_DEPTH`
is refused before decoding (no ``RecursionError``, here or in any later walk of the value), huge
integers become floats (``inf`` when out of range, never ``OverflowError`` or Python's
integer-string limit), and the error kept carries a short reason, never the body (unlike
``json.JSONDecodeError.doc``).

:func:`salvage_task_id` is the best-effort scan used when an answer that may have created a
paid job cannot be read: it finds a task id in the raw bytes, so the job is not lost.

Pure functions; no imports from the rest of the package.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, TypeGuard
from urllib.parse import urlsplit

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_TASK_ID_LENGTH",
    "MAX_TEXT",
    "MAX_URL_LENGTH",
    "UnreadableJSON",
    "as_list",
    "as_mapping",
    "clip",
    "dumps",
    "finite_number",
    "first_str",
    "is_http_url",
    "is_mapping",
    "is_usable_task_id",
    "loads",
    "printable",
    "salvage_task_id",
    "word",
]

MAX_JSON_DEPTH = 64
# FastRouter's deepest documented answer nests 4 levels (data.generations[].url). 64 leaves room
# for any provider payload passed through, far below Python's recursion limit (about 1,000).

MAX_TASK_ID_LENGTH = 256
# FastRouter ids are 29 characters (fr_ + 26), provider ids under 100. A "task id" longer than
# this, or with control characters, is not one: it could not be polled or shown safely.

MAX_URL_LENGTH = 8192  # longer "URLs" in an answer are not links any server or proxy would serve
MAX_TEXT = 1000  # characters kept of a server's status word or message: enough to explain, not to flood

_MAX_INT_DIGITS = 40
# Integers with more digits are read as floats (inf beyond 1e308): no number in an API answer
# needs more, and it keeps int() off Python's quadratic big-number path and its 4,300-digit limit.

_SALVAGE_WINDOW = 64 * 1024  # bytes of a raw answer scanned for a task id

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_KEYED_ID = re.compile(rb'"(taskId|task_id|taskID|id)"\s*:\s*"([A-Za-z0-9][A-Za-z0-9._:\-]{0,255})"')
_CHAT_ID = re.compile(rb'"chat_id"\s*:\s*"[^"]*"')
_BARE_FR_ID = re.compile(rb"(?<![A-Za-z0-9_\-])fr_[A-Za-z0-9]{8,64}(?![A-Za-z0-9_\-])")
_KEY_RANK = {b"taskId": 0, b"taskID": 0, b"task_id": 1, b"id": 2}


class UnreadableJSON(ValueError):
    """A body that is not JSON this client will decode. ``reason`` says why, without quoting it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def loads(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode JSON from untrusted bytes (UTF-8, or UTF-16/32 with or without a BOM).

    Raises only :class:`UnreadableJSON`, with no exception chained to it.
    """
    text = _text(raw)
    if text is None:
        raise UnreadableJSON("the body is not UTF-8 (nor UTF-16/32) text")
    if not _depth_within(text, max_depth):
        raise UnreadableJSON(f"the body is not valid JSON, or nests deeper than {max_depth} levels")
    reason: str | None = None
    try:
        return _DECODER.decode(text)
    except ValueError as exc:  # JSONDecodeError: keep the position only, never exc.doc
        reason = _decode_reason(exc)
    except RecursionError:  # only with a very low interpreter recursion limit
        reason = "the body nests too deeply to decode"
    raise UnreadableJSON(reason)


def is_usable_task_id(value: object) -> bool:
    """True for a string that can be a task id: non-empty, printable, at most 256 characters."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_TASK_ID_LENGTH
        and value.isprintable()
        and value == value.strip()
    )


def salvage_task_id(raw: bytes | None) -> str | None:
    """A task id found in the raw bytes of an answer that could not be interpreted, or ``None``.

    Best effort and bounded (the first 64 KiB): a ``"taskId"``/``"task_id"``/``"id"`` string value
    (in that order of preference), else a bare FastRouter id (``fr_...``, not the ``chat_id``).
    """
    if not raw:
        return None
    window = bytes(raw[:_SALVAGE_WINDOW])
    best: tuple[int, str] | None = None
    for match in _KEYED_ID.finditer(window):
        rank = _KEY_RANK[match.group(1)]
        if best is None or rank < best[0]:
            best = (rank, match.group(2).decode("ascii"))
            if rank == 0:
                break
    if best is not None:
        return best[1]
    bare = _BARE_FR_ID.search(_CHAT_ID.sub(b"", window))
    return bare.group(0).decode("ascii") if bare else None


# --- decoded values -------------------------------------------------------------------------


_NOT_MAPPINGS = frozenset({str, int, float, bool, list, type(None)})  # what else JSON decodes to


def is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    """``isinstance(value, Mapping)``, without the ABC check for what JSON decodes to (a few per poll)."""
    kind = type(value)
    if kind is dict:
        return True
    if kind in _NOT_MAPPINGS:
        return False
    return isinstance(value, Mapping)


def as_mapping(value: object) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def as_list(value: object) -> list[Any]:
    """``value`` if it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def is_http_url(value: object) -> TypeGuard[str]:
    """True for a printable, parseable ``http(s)://`` URL with a host, of at most ``MAX_URL_LENGTH`` characters."""
    if not (isinstance(value, str) and 8 < len(value) <= MAX_URL_LENGTH):
        return False
    if not value.lower().startswith(("https://", "http://")) or not value.isprintable() or " " in value:
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises for a port that is not a number in range
    except ValueError:  # "http://[bad": not a URL anything could fetch
        return False
    return bool(parts.hostname)


def finite_number(value: object) -> float | None:
    """A finite number from an answer, else ``None`` (huge, NaN or infinite: an unknown amount)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    return None


def word(value: object) -> str | None:
    """A string stripped and lower-cased (a status word or code); ``None`` for anything else."""
    return value.strip().lower() if isinstance(value, str) else None


def first_str(*values: object) -> str | None:
    """The first non-blank string among ``values``, stripped and clipped to 200 characters."""
    for value in values:
        if isinstance(value, str) and value.strip():
            return clip(value.strip(), 200)
    return None


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters, ``...`` marking a cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(text: str) -> str:
    """``text`` with each character that is not printable (newlines and tabs aside) made a space."""
    return "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text)


def dumps(value: object) -> str:
    """JSON text of a decoded value for a message; never raises (depth is bounded at decoding)."""
    try:
        return json.dumps(value, default=str)
    except (ValueError, TypeError, RecursionError):
        return "<unprintable>"


# --- helpers ----------------------------------------------------------------------------------


def _text(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")  # JSON on the wire is UTF-8: no sniffing on the common path
    except UnicodeDecodeError:
        pass
    else:
        return text[1:] if text.startswith("\ufeff") else text
    encoding = json.detect_encoding(raw)
    if encoding in ("utf-8", "utf-8-sig"):
        return None
    try:
        return raw.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def _depth_within(text: str, max_depth: int) -> bool:
    """True when brackets outside strings nest at most ``max_depth`` deep (and pair up).

    The fast path counts opening brackets (fewer than the limit cannot nest beyond it). Otherwise
    strings are cut out and the innermost ``[]``/``{}`` pairs removed ``max_depth`` times: valid
    JSON within the limit leaves nothing, anything else is too deep or not JSON.
    """
    return _few_brackets(text, max_depth) or _brackets_nest_within(text, max_depth)


def _few_brackets(text: str, max_depth: int) -> bool:
    """True when ``text`` has at most ``max_depth`` opening brackets: it cannot nest deeper (C-speed counts)."""
    return text.count("[") + text.count("{") <= max_depth


def _brackets_nest_within(text: str, max_depth: int) -> bool:
    """The full check: strings cut out, then the innermost pairs removed ``max_depth`` times."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(max_depth):
        if not brackets:
            return True
        shorter = brackets.replace("[]", "").replace("{}", "")
        if len(shorter) == len(brackets):
            return False  # unpaired brackets: not JSON
        brackets = shorter
    return not brackets


def _parse_int(digits: str) -> int | float:
    if len(digits) > _MAX_INT_DIGITS:
        return float(digits)  # inf when out of range; later checks treat it as "no number"
    return int(digits)


_DECODER = json.JSONDecoder(parse_int=_parse_int)
# Built once: json.loads(text, parse_int=...) would build a decoder and its scanner on every call.


def _decode_reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"the body is not valid JSON ({exc.msg} at character {exc.pos})"
    return "the body is not valid JSON"
