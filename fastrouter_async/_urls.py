"""URLs as they may be shown: without credentials, query strings or fragments.

A URL can carry secrets in its user-info (``https://user:password@host``) and in its query
string (signed provider links, ``?key=...``). Every URL that reaches a message, a log record
or an exception attribute goes through :func:`loggable` first. Pure, no I/O, no imports from
the rest of the package.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

__all__ = ["MAX_SHOWN_URL", "loggable"]

MAX_SHOWN_URL = 300
# Characters of a URL shown in a message: enough for any API route or CDN path, short enough
# that a server sending a megabyte-long Location cannot flood a log line.

_REDACTED = "[redacted]"


def loggable(url: object) -> str:
    """``url`` for logs and messages: user-info replaced, query and fragment dropped, length bounded.

    Never raises: an unparsable value (``http://[bad``) is shown as ``<unparsable URL>``.
    """
    text = str(url)
    try:
        parts = urlsplit(text)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    if not parts.scheme or host is None:
        shown = SplitResult(parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", "").geturl()
    else:
        netloc = f"[{host}]" if ":" in host else host
        if port is not None:
            netloc += f":{port}"
        if "@" in parts.netloc:
            netloc = f"{_REDACTED}@{netloc}"
        shown = SplitResult(parts.scheme, netloc, parts.path, "", "").geturl()
    if len(shown) > MAX_SHOWN_URL:
        shown = shown[: MAX_SHOWN_URL - 3] + "..."
    return "".join(ch if ch.isprintable() else "?" for ch in shown)
