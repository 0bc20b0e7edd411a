"""A capacity limiter made on first use: one for the job slots, one for the downloads.

``anyio.CapacityLimiter`` must be made inside a running event loop, and a session may be built
outside one; :class:`LazyLimiter` makes it when it is first needed and reads as empty before.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio

__all__ = ["LazyLimiter"]


class LazyLimiter:
    """At most ``total`` holders at once (``None``: no bound, and nothing is made)."""

    __slots__ = ("_limiter", "_total")

    def __init__(self, total: int | None) -> None:
        self._total = total
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def total(self) -> int | None:
        return self._total

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        """The limiter itself (made now if it was not); only with a bound."""
        assert self._total is not None
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._total)
        return self._limiter

    @property
    def borrowed(self) -> int:
        return 0 if self._limiter is None else int(self._limiter.borrowed_tokens)

    @property
    def waiting(self) -> int:
        return 0 if self._limiter is None else self._limiter.statistics().tasks_waiting

    def set_total(self, total: float) -> None:
        """A new bound for the limiter, if it was made (a higher one wakes waiters)."""
        if self._limiter is not None:
            self._limiter.total_tokens = total

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Hold one unit for the block (nothing to hold without a bound)."""
        if self._total is None:
            yield
            return
        async with self.limiter:
            yield
