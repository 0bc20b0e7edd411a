"""Small named values shared by the processes of one account (what polling has learned, for one).

:class:`SharedValues` is the fifth primitive of a store (beside ``_shared.py``'s four): a text
value under a name, read and replaced whole; the last writer wins. In process: a dict; in SQLite
(``_sqlite_shared``) and on Redis (``_redis``): a row or a key in the account's namespace.
"""

from __future__ import annotations

from typing import Final, Protocol

from ._errors import InvalidRequestError

__all__ = ["MAX_VALUE_CHARS", "InMemorySharedValues", "SharedValues", "check_value"]

MAX_VALUE_CHARS: Final = 1_000_000
# A value is read whole by every process that asks: what polling learned is a few kilobytes.


class SharedValues(Protocol):
    """Named text values of one account, shared by every process of the store."""

    async def get(self, name: str) -> str | None:
        """The value under ``name`` (``None``: none was written)."""
        ...

    async def put(self, name: str, value: str) -> None:
        """Replace the value under ``name``."""
        ...


def check_value(name: object, value: object) -> None:
    if not isinstance(name, str) or not name or len(name) > 200:
        raise InvalidRequestError("name", name, "a non-empty string of at most 200 characters")
    if not isinstance(value, str) or len(value) > MAX_VALUE_CHARS:
        raise InvalidRequestError("value", type(value).__name__, f"a string of at most {MAX_VALUE_CHARS} characters")


class InMemorySharedValues:
    """:class:`SharedValues` of one process."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<InMemorySharedValues {len(self._values)} values>"

    async def get(self, name: str) -> str | None:
        return self._values.get(name)

    async def put(self, name: str, value: str) -> None:
        check_value(name, value)
        self._values[name] = value
