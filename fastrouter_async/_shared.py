"""What several sessions must share to act as one client of one account, behind small interfaces.

Four pieces of state decide how a session treats the account: how many jobs are in flight (job
slots), how fast requests go out (the request bucket, with a 429 pause), what was submitted (the job
store) and who polls which job (watch leases). Each is a :class:`typing.Protocol` here, with an
in-process implementation that keeps today's single-process behaviour; ``_sqlite_shared.py``
implements the same protocols in one SQLite file (processes of one host), ``_redis.py`` on Redis
(processes on several hosts), and ``_stores.py`` opens one of the three from a store URL.

Times handed to these interfaces are *durations* (lease lengths, pauses, waits), never instants:
processes on different hosts disagree about the time, so the implementation's own clock (the event
loop's here, the host's ``time.time()`` in ``_sqlite_shared.py``, the Redis server's in ``_redis.py``)
decides when something expires. Only a job record's ``submitted_at`` is an instant (Unix time, as
the submitting process saw it).

Nothing here is wired into the session yet.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any, Protocol

import anyio
import attrs

from ._config import check_integer, check_number
from ._errors import InvalidRequestError
from ._models import JobState
from ._namespace import NAMESPACE_LENGTH, key_namespace

__all__ = [
    "NAMESPACE_LENGTH",
    "InMemoryJobSlots",
    "InMemoryJobStore",
    "InMemoryRequestBucket",
    "InMemoryWatchLeases",
    "JobRecord",
    "JobSlots",
    "JobStore",
    "RequestBucket",
    "WatchLeases",
    "key_namespace",
    "spend",
]


def positive_duration(name: str, value: object, allowed: str = "a finite number of seconds > 0") -> float:
    """``value`` as a float, or an :class:`InvalidRequestError` naming ``name`` and what is ``allowed``."""
    return check_number(name, value, allowed, above=0, below=math.inf)


def bucket_settings(rate: object, burst: object) -> tuple[float, float]:
    """A bucket's rate and burst, checked (burst: one second's worth by default, at least 1)."""
    checked_rate = positive_duration("rate", rate, "a finite number of requests per second > 0")
    if burst is None:
        return checked_rate, max(1.0, checked_rate)
    checked_burst = positive_duration("burst", burst, "a finite number of tokens >= 1")
    if checked_burst < 1:
        raise InvalidRequestError("burst", burst, "a finite number of tokens >= 1")
    return checked_rate, checked_burst


def positive_count(name: str, value: object) -> int:
    return check_integer(name, value, "an integer >= 1", at_least=1)


# -- job slots ---------------------------------------------------------------------------------


class JobSlots(Protocol):
    """At most ``capacity`` holders at a time, each holding its slot under a lease.

    A holder is any string unique to one job (a cache key, a task id). A lease that is not renewed
    within ``lease`` seconds expires and its slot comes back, so a process that dies cannot keep
    slots forever. ``lease = None``: slots are held until released (one process, today's cap).
    Waiters are not served in arrival order.
    """

    @property
    def capacity(self) -> int: ...

    @property
    def lease(self) -> float | None: ...

    async def acquire(self, holder: str) -> None:
        """Wait until ``holder`` holds a slot. A holder that already holds one renews it."""
        ...

    async def try_acquire(self, holder: str) -> bool:
        """Take a slot for ``holder`` if one is free now; ``False`` when all are held."""
        ...

    async def renew(self, holder: str) -> bool:
        """Extend ``holder``'s lease by ``lease`` from now; ``False`` if its lease had already expired."""
        ...

    async def release(self, holder: str) -> None:
        """Give ``holder``'s slot back (nothing happens if it holds none)."""
        ...

    async def in_use(self) -> int:
        """How many slots are held by live leases."""
        ...


class InMemoryJobSlots:
    """:class:`JobSlots` for the tasks of one event loop."""

    def __init__(self, capacity: int, *, lease: float | None = None) -> None:
        self._capacity = positive_count("capacity", capacity)
        self._lease = None if lease is None else positive_duration("lease", lease)
        self._expiry: dict[str, float] = {}  # holder -> event-loop time its lease ends (inf: no lease)
        self._changed = anyio.Event()

    def __repr__(self) -> str:
        return f"<InMemoryJobSlots {len(self._expiry)}/{self._capacity} lease={self._lease}>"

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def lease(self) -> float | None:
        return self._lease

    def _purge(self, now: float) -> None:
        expired = [holder for holder, until in self._expiry.items() if until <= now]
        for holder in expired:
            del self._expiry[holder]

    def _take(self, holder: str) -> float:
        """Take or renew a slot: 0.0 when held, else how long until the first lease may expire."""
        now = anyio.current_time()
        self._purge(now)
        if holder in self._expiry or len(self._expiry) < self._capacity:
            self._expiry[holder] = math.inf if self._lease is None else now + self._lease
            return 0.0
        return min(self._expiry.values()) - now

    async def acquire(self, holder: str) -> None:
        while (wait := self._take(holder)) > 0:
            changed = self._changed
            with anyio.move_on_after(wait):
                await changed.wait()

    async def try_acquire(self, holder: str) -> bool:
        return self._take(holder) == 0.0

    async def renew(self, holder: str) -> bool:
        now = anyio.current_time()
        self._purge(now)
        if holder not in self._expiry:
            return False
        self._expiry[holder] = math.inf if self._lease is None else now + self._lease
        return True

    async def release(self, holder: str) -> None:
        if self._expiry.pop(holder, None) is not None:
            self._changed.set()
            self._changed = anyio.Event()

    async def in_use(self) -> int:
        self._purge(anyio.current_time())
        return len(self._expiry)


# -- the request bucket --------------------------------------------------------------------------


class RequestBucket(Protocol):
    """A token bucket of ``rate`` requests per second (``burst`` at most at once), and a shared pause.

    A 429 pauses everyone: :meth:`pause` makes every :meth:`take` wait until the pause is over.
    """

    @property
    def rate(self) -> float: ...

    @property
    def burst(self) -> float: ...

    async def take(self, n: float = 1.0) -> float:
        """Take ``n`` tokens: 0.0 when taken, else the seconds to wait before asking again (nothing taken).

        While a pause is in force, the rest of the pause.
        """
        ...

    async def pause(self, seconds: float) -> float:
        """Pause every taker for ``seconds`` from now, unless a longer pause is in force; the pause left."""
        ...

    async def paused_for(self) -> float:
        """Seconds left of the pause in force (0.0: none)."""
        ...


async def spend(bucket: RequestBucket, n: float = 1.0) -> None:
    """Wait until ``n`` tokens are taken from ``bucket``."""
    while True:
        wait = await bucket.take(n)
        if wait == 0:
            return
        await anyio.sleep(wait)


def check_take(bucket: RequestBucket, n: float) -> None:
    if isinstance(n, bool) or not isinstance(n, int | float) or not 0 < n <= bucket.burst:
        raise InvalidRequestError("n", n, f"a number of tokens > 0 and <= the burst ({bucket.burst:g})")


class BucketSettings:
    """The checked ``rate`` and ``burst`` of a :class:`RequestBucket`, for its implementations to extend."""

    def __init__(self, rate: object, burst: object) -> None:
        self._rate, self._burst = bucket_settings(rate, burst)

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> float:
        return self._burst


class InMemoryRequestBucket(BucketSettings):
    """:class:`RequestBucket` on the event loop's clock, for one process."""

    def __init__(self, rate: float, *, burst: float | None = None) -> None:
        super().__init__(rate, burst)
        self._tokens = self._burst
        self._at: float | None = None
        self._paused_until = -math.inf

    def __repr__(self) -> str:
        return f"<InMemoryRequestBucket rate={self._rate:g}/s burst={self._burst:g}>"

    async def take(self, n: float = 1.0) -> float:
        check_take(self, n)
        now = anyio.current_time()
        if now < self._paused_until:
            return self._paused_until - now
        if self._at is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= n:
            self._tokens -= n
            return 0.0
        return (n - self._tokens) / self._rate

    async def pause(self, seconds: float) -> float:
        now = anyio.current_time()
        self._paused_until = max(self._paused_until, now + positive_duration("seconds", seconds))
        return self._paused_until - now

    async def paused_for(self) -> float:
        return max(0.0, self._paused_until - anyio.current_time())


# -- the job store --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class JobRecord:
    """What the store knows about one submit, from the intent to send it to its end."""

    key: str
    """The submit's own identity, known before it is sent (its cache key, or another unique string)."""
    model: str
    submitted_at: float
    """Unix time at which the submit was about to be sent."""
    cache_key: str | None = None
    request_body: Mapping[str, Any] = attrs.field(factory=dict, repr=False, hash=False)
    task_id: str | None = None
    state: JobState | None = None
    """``None``: the intent is recorded but no task id is known (the submit may or may not have been accepted)."""
    details: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    """What :meth:`JobStore.record_state` added: result links, file, cost, error... (JSON values)."""

    @property
    def finished(self) -> bool:
        return self.state is not None and self.state.done


class JobStore(Protocol):
    """The record of every submit of an account: written before sending, updated until the job ends."""

    async def record_intent(
        self,
        key: str,
        *,
        request_body: Mapping[str, Any],
        cache_key: str | None,
        model: str,
        submitted_at: float,
    ) -> bool:
        """Record that ``key`` is about to be submitted; ``False`` (and nothing changed) if it already was."""
        ...

    async def record_task(self, key: str, task_id: str) -> None:
        """The submit ``key`` was accepted as ``task_id`` (state: pending). ``KeyError``: no such intent;
        ``ValueError``: it already has another task id."""
        ...

    async def record_state(self, task_id: str, state: JobState, *, details: Mapping[str, Any] | None = None) -> None:
        """What a poll said; ``details`` are merged into the record's. A finished job stays finished.
        ``KeyError``: no record has this task id."""
        ...

    async def get(self, task_id: str) -> JobRecord | None:
        """The record of ``task_id``, or ``None``."""
        ...

    async def list(
        self,
        *,
        states: Collection[JobState | None] | None = None,
        model: str | None = None,
        finished: bool | None = None,
        limit: int | None = None,
    ) -> list[JobRecord]:
        """Records in submit order, oldest first, filtered (``None`` in ``states``: intents without task id)."""
        ...


def _merge(record: JobRecord, state: JobState, details: Mapping[str, Any] | None) -> JobRecord:
    keep = record.state if record.finished and not state.done else state
    return attrs.evolve(record, state=keep, details={**record.details, **(details or {})})


def record_matches(
    record: JobRecord,
    states: Collection[JobState | None] | None,
    model: str | None,
    finished: bool | None,
) -> bool:
    """Whether ``record`` passes the filters of :meth:`JobStore.list`."""
    return (
        (states is None or record.state in states)
        and (model is None or record.model == model)
        and (finished is None or record.finished == finished)
    )


class InMemoryJobStore:
    """:class:`JobStore` in this process's memory (lost when it exits)."""

    def __init__(self) -> None:
        self._records: dict[str, JobRecord] = {}  # key -> record, in submit order of recording
        self._by_task: dict[str, str] = {}  # task id -> key

    def __repr__(self) -> str:
        return f"<InMemoryJobStore {len(self._records)} jobs>"

    async def record_intent(
        self,
        key: str,
        *,
        request_body: Mapping[str, Any],
        cache_key: str | None,
        model: str,
        submitted_at: float,
    ) -> bool:
        if key in self._records:
            return False
        self._records[key] = JobRecord(
            key=key, model=model, submitted_at=submitted_at, cache_key=cache_key, request_body=dict(request_body)
        )
        return True

    async def record_task(self, key: str, task_id: str) -> None:
        record = self._records[key]
        if record.task_id is not None and record.task_id != task_id:
            raise ValueError(f"job {key!r} already has task id {record.task_id!r}, not {task_id!r}")
        if record.task_id is None:
            self._records[key] = attrs.evolve(record, task_id=task_id, state=JobState.PENDING)
        self._by_task[task_id] = key

    async def record_state(self, task_id: str, state: JobState, *, details: Mapping[str, Any] | None = None) -> None:
        key = self._by_task[task_id]
        self._records[key] = _merge(self._records[key], state, details)

    async def get(self, task_id: str) -> JobRecord | None:
        key = self._by_task.get(task_id)
        return None if key is None else self._records[key]

    async def list(
        self,
        *,
        states: Collection[JobState | None] | None = None,
        model: str | None = None,
        finished: bool | None = None,
        limit: int | None = None,
    ) -> list[JobRecord]:
        found = sorted(
            (r for r in self._records.values() if record_matches(r, states, model, finished)),
            key=lambda r: r.submitted_at,
        )
        return found if limit is None else found[:limit]


# -- watch leases ---------------------------------------------------------------------------------


class WatchLeases(Protocol):
    """Who polls which unfinished job: one owner per task at a time, under a renewable lease."""

    async def claim(self, task_id: str, owner: str, ttl: float) -> bool:
        """Become the watcher of ``task_id`` for ``ttl`` seconds; ``False`` if another owner's lease is live."""
        ...

    async def renew(self, task_id: str, owner: str, ttl: float) -> bool:
        """Extend ``owner``'s lease to ``ttl`` from now; ``False`` if ``owner`` no longer holds it."""
        ...

    async def release(self, task_id: str, owner: str) -> bool:
        """Give the lease up; ``False`` (and nothing changed) if ``owner`` does not hold it."""
        ...

    async def owner(self, task_id: str) -> str | None:
        """The owner of the live lease on ``task_id``, if any."""
        ...

    async def unclaimed(self, limit: int | None = None) -> list[str]:
        """Task ids of unfinished jobs of the store that nobody watches, oldest submit first."""
        ...


class InMemoryWatchLeases:
    """:class:`WatchLeases` for one process, over any :class:`JobStore`."""

    def __init__(self, store: JobStore) -> None:
        self._store = store
        self._leases: dict[str, tuple[str, float]] = {}  # task id -> (owner, event-loop expiry)

    def __repr__(self) -> str:
        return f"<InMemoryWatchLeases {len(self._leases)} leases>"

    def _live_owner(self, task_id: str) -> str | None:
        lease = self._leases.get(task_id)
        if lease is None:
            return None
        if lease[1] <= anyio.current_time():
            del self._leases[task_id]
            return None
        return lease[0]

    async def claim(self, task_id: str, owner: str, ttl: float) -> bool:
        ttl = positive_duration("ttl", ttl)
        if self._live_owner(task_id) is not None:
            return False
        self._leases[task_id] = (owner, anyio.current_time() + ttl)
        return True

    async def renew(self, task_id: str, owner: str, ttl: float) -> bool:
        ttl = positive_duration("ttl", ttl)
        if self._live_owner(task_id) != owner:
            return False
        self._leases[task_id] = (owner, anyio.current_time() + ttl)
        return True

    async def release(self, task_id: str, owner: str) -> bool:
        if self._live_owner(task_id) != owner:
            return False
        del self._leases[task_id]
        return True

    async def owner(self, task_id: str) -> str | None:
        return self._live_owner(task_id)

    async def unclaimed(self, limit: int | None = None) -> list[str]:
        found = [
            r.task_id
            for r in await self._store.list(finished=False)
            if r.task_id is not None and self._live_owner(r.task_id) is None
        ]
        return found if limit is None else found[:limit]
