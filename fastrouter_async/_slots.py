"""Job slots: the limiter of ``max_concurrent_jobs``, the jobs holding a slot, and "a submit waits".

A job holds one slot from its submit until it is seen to end. :class:`JobSlots` is the
in-process version of the engine's slot interface; the effective cap follows
:class:`~._concurrency.JobCap` (lowered by "too many jobs at once", restored by accepted
submits). When a submit has to wait, every job holding a slot is told to get itself polled
(:meth:`SlotHolder.watch_for_slot`): a caller that submits several jobs before awaiting any
would otherwise wait forever for a slot nobody frees.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import weakref
from collections.abc import Callable, Iterator
from typing import Protocol

import anyio
import attrs

from ._concurrency import JobCap
from ._limits import LazyLimiter

__all__ = ["JobSlots", "Slot", "SlotHolder", "SlotStatistics"]


class Slot:
    """One unit of ``max_concurrent_jobs``, held by one job and released exactly once."""

    __slots__ = ("__weakref__", "_limiter", "_on_release", "_released", "shared_holder")

    def __init__(self, limiter: anyio.CapacityLimiter) -> None:
        self._limiter = limiter
        self._released = False
        self._on_release: Callable[[], None] | None = None
        self.shared_holder: str | None = None
        """The holder of this slot's lease in a store shared with other processes, if any."""

    def share(self, holder: str, release: Callable[[], None]) -> None:
        """This slot is also ``holder``'s lease in a shared store; ``release()`` gives that back."""
        self.shared_holder = holder
        self._on_release = release

    @property
    def released(self) -> bool:
        return self._released

    async def acquire(self) -> None:
        await self._limiter.acquire_on_behalf_of(self)

    def acquire_nowait(self) -> None:
        """Take the slot at once, or raise ``anyio.WouldBlock``."""
        self._limiter.acquire_on_behalf_of_nowait(self)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limiter.release_on_behalf_of(self)
            if self._on_release is not None:
                self._on_release()

    def release_from_any_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called by the garbage collector when a job handle is dropped."""
        if self._released:
            return
        if loop.is_closed():
            self._released = True
            return
        try:
            if _running_loop() is loop:
                self.release()
            else:
                loop.call_soon_threadsafe(self.release)
        except RuntimeError:  # the loop closed in between: nothing left to wake
            self._released = True


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class SlotHolder(Protocol):
    """A job that holds a slot, as the slots see it."""

    @property
    def holds_slot(self) -> bool:
        """Whether it still holds its slot (it has not been seen to end)."""

    def watch_for_slot(self) -> None:
        """A submit waits for a slot: get polled, so that the slot is freed when the job ends."""


@attrs.frozen(kw_only=True)
class SlotStatistics:
    """A snapshot of the job slots (tests and diagnostics)."""

    limit: int | None
    """``max_concurrent_jobs`` (``None``: no bound)."""
    current: int | None
    """The effective cap now (lowered while FastRouter answers "too many jobs at once")."""
    in_flight: int
    """Slots held."""
    waiting: int
    """Submits waiting for a slot."""
    holders: int
    """Jobs known to hold a slot (watched while a submit waits)."""


class JobSlots:
    """``max_concurrent_jobs`` for one session (see the module docstring)."""

    def __init__(self, limit: int | None) -> None:
        self._limit = limit
        self._cap = JobCap(limit)
        self._limiter = LazyLimiter(limit)  # its bound follows the effective cap
        self._holders: weakref.WeakSet[SlotHolder] = weakref.WeakSet()
        self._elsewhere = 0  # submits waiting for a slot of a store shared with other processes
        self._closed = False

    @property
    def limit(self) -> int | None:
        return self._limit

    @property
    def current(self) -> int | None:
        """The effective cap (see :class:`JobCap`)."""
        return self._cap.current

    @property
    def times_limited(self) -> int:
        return self._cap.times_limited

    @property
    def in_flight(self) -> int:
        return self._limiter.borrowed

    @property
    def waiting(self) -> int:
        """Submits waiting for a slot right now."""
        return self._limiter.waiting + self._elsewhere

    @contextlib.contextmanager
    def waiting_elsewhere(self) -> Iterator[None]:
        """A submit waits for a shared slot meanwhile (the jobs holding slots here are then watched)."""
        self._elsewhere += 1
        try:
            yield
        finally:
            self._elsewhere -= 1

    def statistics(self) -> SlotStatistics:
        return SlotStatistics(
            limit=self._limit,
            current=self._cap.current,
            in_flight=self.in_flight,
            waiting=self.waiting,
            holders=len(self._holders),
        )

    async def acquire(self) -> Slot | None:
        """A slot (``None`` without a bound), waiting for one when the cap is reached."""
        if self._limit is None:
            return None
        slot = Slot(self._limiter.limiter)
        try:
            slot.acquire_nowait()
        except anyio.WouldBlock:
            self.watch_holders()
            await slot.acquire()
        return slot

    def watch_holders(self) -> None:
        """A submit waits: have every job holding a slot polled, so that its slot is freed when it ends."""
        for holder in list(self._holders):
            if holder.holds_slot:
                holder.watch_for_slot()

    def hold(self, holder: SlotHolder) -> None:
        """``holder`` now holds a slot: watch it whenever a submit waits."""
        self._holders.add(holder)

    def limited(self) -> None:
        """A submit was refused with "too many jobs at once" (its own slot still counted)."""
        self._apply(self._cap.limited(self.in_flight))

    def accepted(self) -> None:
        """A submit was accepted (the cap may rise again)."""
        self._apply(self._cap.accepted())

    def close(self) -> None:
        """Wake every submit waiting for a slot (the session is closing)."""
        self._closed = True
        self._limiter.set_total(math.inf)

    def _apply(self, cap: int | None) -> None:
        if cap is not None and not self._closed:
            self._limiter.set_total(cap)  # a higher cap wakes submits waiting for a slot
