"""Server-sent text made safe to print: no terminal escapes, no rich markup.

Task ids, status words, failure messages, URLs and file names come from a server
(or from a file a server named) and are untrusted. Printed raw, ``ESC[2J`` clears
the user's screen, an OSC 52 sequence writes their clipboard, a bidirectional
override reorders what they read, and ``[/red]`` crashes rich's markup parser.
:func:`plain` makes every such character visible (``\\x1b``, ``\\u202e``), and
:func:`markup_safe` also escapes rich markup for strings that go through it.
"""

from __future__ import annotations

import re
from typing import Final

from rich.markup import escape

__all__ = ["markup_safe", "plain"]

_UNSAFE: Final = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 (but tab and newline), DEL, C1 (CSI, OSC, ST, ...); ESC is \x1b
    "\u200e\u200f\u061c"  # directional marks
    "\u202a-\u202e\u2066-\u2069"  # bidirectional embeddings, overrides and isolates
    "\u2028\u2029]"  # line and paragraph separators
)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain(text: object, *, newlines: bool = False) -> str:
    """``text`` as printable plain text: control, escape and bidi characters shown as ``\\x1b``-style escapes.

    Newlines (and tabs) are made visible too unless ``newlines=True``, so one
    server string never spans lines it was not meant to.
    """
    value = str(text)
    if not newlines:
        value = value.replace("\t", "\\x09").replace("\n", "\\x0a")
    return _UNSAFE.sub(_visible, value)


def markup_safe(text: object) -> str:
    """:func:`plain`, then rich markup escaped: for strings interpolated into rich markup."""
    return escape(plain(text))
