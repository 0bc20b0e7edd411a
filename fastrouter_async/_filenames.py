"""Safe file names for videos: derived from a prompt or a task id, never escaping their folder.

``safe_filename`` is pure: it turns any text into one file name that is valid on
POSIX, macOS and Windows file systems alike. ``unique_path`` joins a name to a
folder, refuses a name that could point anywhere else, and picks ``name-2.mp4``,
``name-3.mp4``, ... when the name is taken (a quick ``lstat`` per candidate).

What a "safe" name is, here:

* no path separator (``/`` or ``\\``), no ``.``/``..``, not absolute, no drive (``C:``);
* no control or format characters (NUL, newlines, bidirectional overrides, ...);
* none of the characters Windows refuses (``<>:"/\\|?*``), no trailing dot or space;
* not a name Windows reserves for devices (``CON``, ``NUL``, ``COM1``, ``LPT9``, ...,
  with or without an extension);
* at most ``max_length`` bytes of UTF-8 (file systems count bytes: 255 on ext4, APFS, NTFS).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

from ._config import check_integer
from ._errors import InvalidRequestError

__all__ = ["MAX_NAME_BYTES", "check_plain_name", "plan_names", "safe_filename", "unique_path"]

MAX_NAME_BYTES = 255
# The longest file name ext4, XFS, btrfs, APFS and NTFS accept (in bytes, or UTF-16 units for NTFS,
# which 255 UTF-8 bytes never exceed).

_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{dev}{n}" for dev in ("COM", "LPT") for n in (*"123456789", "¹", "²", "³")}
)
_SUFFIX = re.compile(r"(?:\.[A-Za-z0-9]{1,16}){0,3}")
_FORBIDDEN_IN_NAME = frozenset('<>:"/\\|?*')
_MAX_NUMBERED = 100_000


def safe_filename(
    text: str,
    *,
    suffix: str = ".mp4",
    max_length: int = 100,
    fallback: str = "video",
    lowercase: bool = True,
) -> str:
    """A file name made from ``text`` (a prompt, a task id): a slug plus ``suffix``.

    The text is NFKC-normalised; runs of letters, marks, digits and ``_`` become
    words joined by ``-`` (everything else, including separators, punctuation and
    control characters, only separates words). The result is lower-cased unless
    ``lowercase=False``, cut at a word boundary (or inside a long word) to at most
    ``max_length`` bytes of UTF-8 *including* ``suffix``, never empty (``fallback``
    is used, slugged the same way), never ``.``/``..`` and never a Windows device
    name (``con`` becomes ``con_``)::

        >>> safe_filename("A cat surfing at sunset, 4K!")
        'a-cat-surfing-at-sunset-4k.mp4'
        >>> safe_filename("../../etc/passwd")
        'etc-passwd.mp4'
        >>> safe_filename("")
        'video.mp4'

    ``suffix`` is empty or up to three ``.alnum`` parts (``".mp4"``, ``".tar.gz"``);
    ``max_length`` is at most 255 and leaves room for one character besides the suffix.
    """
    if not isinstance(text, str):
        raise InvalidRequestError("text", text, "a string (a prompt or a task id)")
    if not isinstance(suffix, str) or _SUFFIX.fullmatch(suffix) is None:
        raise InvalidRequestError("suffix", suffix, "'' or a dot and 1-16 letters or digits, e.g. '.mp4'")
    room = _room_for_stem(max_length, suffix)
    stem = _slug(text, room, lowercase=lowercase)
    if not stem:
        if not isinstance(fallback, str):
            raise InvalidRequestError("fallback", fallback, "a non-empty string of letters or digits, e.g. 'video'")
        stem = _slug(fallback, room, lowercase=lowercase)
        if not stem:
            raise InvalidRequestError("fallback", fallback, "a non-empty string of letters or digits, e.g. 'video'")
    if _is_reserved(stem):
        stem = _cut(stem, room - 1) + "_"
    return stem + suffix


def unique_path(folder: str | os.PathLike[str], name: str, *, overwrite: bool = False) -> Path:
    """``folder / name``, refusing any ``name`` that could point outside ``folder``.

    ``name`` must be one plain file name (what :func:`safe_filename` returns):
    not empty, not ``.``/``..``, no ``/`` or ``\\``, no drive, no control
    characters, not a Windows device name, at most 255 bytes. Anything else
    raises :class:`InvalidRequestError` (field ``name``), whatever the platform.

    With ``overwrite=False`` (the default) an existing entry (file, directory,
    even a dangling symlink) is never chosen: the first free name of
    ``name-2.mp4``, ``name-3.mp4``, ... is returned instead. The check is not a
    reservation: two callers racing for one name may both get it. Pass the
    result to ``download(..., overwrite=False)``, which refuses atomically to
    replace a file that appeared meanwhile, or keep a set of the names given out.
    With ``overwrite=True`` the path is returned as is.
    """
    check_plain_name(name)
    base = Path(folder)
    candidate = base / name
    if overwrite or not os.path.lexists(candidate):
        return candidate
    stem, dot, ext = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
    ext = dot + ext
    for number in range(2, _MAX_NUMBERED):
        tail = f"-{number}{ext}"
        numbered = _cut(stem, MAX_NAME_BYTES - len(tail.encode())) + tail
        candidate = base / numbered
        if not os.path.lexists(candidate):
            return candidate
    raise InvalidRequestError("name", name, f"a name with a free numbered variant in {os.fspath(base)!r}")


def plan_names(count: int, name_of: Callable[[int], object]) -> list[str]:
    """The file names of ``count`` jobs, all checked, and told apart when two would be alike.

    ``name_of(index)`` is called once per job, before anything is sent. A name that is not one
    plain file name (see :func:`unique_path`), and a ``name_of`` that raises, are an
    :class:`InvalidRequestError` naming the job's index and the value. Two jobs given one name
    get ``name.mp4``, ``name-2.mp4``, ... in input order (compared case-insensitively, as macOS
    and Windows file systems do).
    """
    names: list[str] = []
    taken: set[str] = set()
    for index in range(count):
        try:
            name = name_of(index)
        except Exception as exc:  # a user callback: any failure is a usage error, found before paying
            raise InvalidRequestError(
                f"filename[{index}]",
                f"<raised {type(exc).__name__}: {exc}>",
                "a function (index, request) -> one plain file name that does not raise",
            ) from exc
        try:
            check_plain_name(name)
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"filename[{index}]", name, exc.allowed) from None
        assert isinstance(name, str)
        names.append(_first_free(name, taken))
    return names


def _first_free(name: str, taken: set[str]) -> str:
    stem, dot, ext = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
    candidate, number = name, 2
    while candidate.casefold() in taken:
        tail = f"-{number}{dot}{ext}"
        candidate = _cut(stem, MAX_NAME_BYTES - len(tail.encode())) + tail
        number += 1
    taken.add(candidate.casefold())
    return candidate


# --- helpers -----------------------------------------------------------------------------


def _room_for_stem(max_length: int, suffix: str) -> int:
    suffix_bytes = len(suffix.encode())
    # Two bytes at least: a stem that is a device name ("con") needs room for the "_" that defuses it.
    allowed = f"an integer from {suffix_bytes + 2} to {MAX_NAME_BYTES} (bytes, suffix included)"
    return (
        check_integer("max_length", max_length, allowed, at_least=suffix_bytes + 2, at_most=MAX_NAME_BYTES)
        - suffix_bytes
    )


def _slug(text: str, limit: int, *, lowercase: bool) -> str:
    """Words of ``text`` joined by ``-``, at most ``limit`` bytes, cut at a word boundary if possible."""
    normal = unicodedata.normalize("NFKC", text)
    if lowercase:
        normal = normal.lower()
    words: list[str] = []
    current: list[str] = []
    for ch in normal:
        if ch == "_" or unicodedata.category(ch)[0] in "LMN":
            current.append(ch)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    name = ""
    for word in words:
        joined = f"{name}-{word}" if name else word
        if len(joined.encode()) <= limit:
            name = joined
            continue
        if len(name.encode()) < limit // 2:
            # The next word is long: rather than a much too short name, cut inside it.
            name = _cut(joined, limit)
        break
    return name.rstrip("-")


def _cut(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding fits in ``limit`` bytes (whole code points)."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: max(limit, 0)].decode("utf-8", "ignore")


def _is_reserved(name: str) -> bool:
    """True for Windows device names, alone or followed by an extension (``con``, ``NUL.mp4``, ``com1.x``)."""
    base = name.split(".", 1)[0].rstrip(" ")
    return base.upper() in _WINDOWS_RESERVED


def check_plain_name(name: object) -> None:
    """Raise :class:`InvalidRequestError` (field ``name``) unless ``name`` is one plain file name."""
    allowed = (
        "one plain file name inside the folder: no path separators, not '.' or '..', no drive, no control "
        "characters, not a reserved device name, at most 255 bytes (safe_filename() makes one)"
    )
    if not isinstance(name, str) or not name or name in (".", ".."):
        raise InvalidRequestError("name", name, allowed)
    if any(ch in "/\\" or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise InvalidRequestError("name", name, allowed)
    if name.endswith((" ", ".")) or _FORBIDDEN_IN_NAME & set(name):  # ":" also rules out drives (C:x)
        raise InvalidRequestError("name", name, allowed)
    if _is_reserved(name) or len(name.encode()) > MAX_NAME_BYTES or os.path.isabs(name):
        raise InvalidRequestError("name", name, allowed)
