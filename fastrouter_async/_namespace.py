"""The namespace of an account's shared state: a salted fingerprint of its API key, never the key.

Every shared store (``_shared.py``, ``_sqlite_shared.py``, ``_redis.py``) files an account's state
under :func:`key_namespace` of its API key, so that processes share limits exactly when they use the
same key, and the key itself is never written anywhere.
"""

from __future__ import annotations

import hashlib
from typing import Final

from ._errors import InvalidRequestError

__all__ = ["NAMESPACE_LENGTH", "check_namespace", "key_namespace"]

_NAMESPACE_SALT: Final = b"fastrouter-async/shared-namespace\x00"
NAMESPACE_LENGTH: Final = 16  # hex digits of sha256: 64 bits, plenty to keep accounts apart


def key_namespace(secret_value: str) -> str:
    """A short fingerprint of an API key that names its shared state; the key cannot be read back from it.

    Salted so that it matches no plain sha256 of the key published elsewhere.
    """
    if not isinstance(secret_value, str) or not secret_value:
        # Never the value itself in the error: it is a secret (or a mistake that may contain one).
        raise InvalidRequestError("api_key", type(secret_value).__name__, "a non-empty API key string")
    return hashlib.sha256(_NAMESPACE_SALT + secret_value.encode()).hexdigest()[:NAMESPACE_LENGTH]


_HEX: Final = "0123456789abcdef"


def check_namespace(namespace: object) -> str:
    """``namespace`` if :func:`key_namespace` could have returned it; an API key given by mistake is refused unshown."""
    if not isinstance(namespace, str) or len(namespace) != NAMESPACE_LENGTH or namespace.strip(_HEX):
        shown = f"a {type(namespace).__name__} of length {len(namespace) if isinstance(namespace, str) else '?'}"
        raise InvalidRequestError("namespace", shown, f"{NAMESPACE_LENGTH} hex digits from key_namespace(api_key)")
    return namespace
