"""The engine's side of a store shared by processes: slots, the request bucket, the job record, watch leases.

With ``FastRouterSession(store=...)`` every session of one API key (in any process that opens the
same store) shares:

- ``max_concurrent_jobs``: each slot a job holds here is also a lease in the store, renewed while
  the job runs and given back when it ends; a process that dies gives its slots back within one lease;
- the request budget and the pause after a 429: every request takes a token of the store's bucket,
  whose pause holds up every process;
- the record of jobs: the intent before each submit is sent, its task id as soon as it is known, each
  status change seen, and the end with its links, cost or error;
- the polling: a job is polled by the one process holding its watch lease; the others read its
  status from the store (see :meth:`Sharing.watching`).

The store is opened on first use (a Redis connection needs the event loop). Writes that must not
hold up a poll (a status, a release) run on tasks of this object, awaited when it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import anyio

from ._budget import RequestBudget
from ._errors import FastRouterError, InvalidRequestError, StoreError
from ._estimates import DurationEstimates
from ._models import JobState, JobStatus, ResultSource
from ._shared import JobRecord, spend
from ._stores import DEFAULT_LEASE, SharedState, open_store, redact_url
from ._untrusted import loads as loads_untrusted

__all__ = ["UNBOUNDED_RATE", "Sharing", "status_from_record"]

logger = logging.getLogger("fastrouter_async")

UNBOUNDED_RATE: Final = 1_000_000.0
# The store's bucket when no request budget is set: no pacing, only the shared pause after a 429.
DURATIONS_VALUE: Final = "durations"
DURATIONS_SAVE_EVERY: Final = 30.0
# What polling learned is saved to the store at most this often (and when the session closes); each
# session loads it when it opens the store. The last process to save wins.
WARN_EVERY: Final = 60.0
# Seconds between two warnings that the store cannot be used (a store down for an hour: 60 lines, not millions).
RENEW_SHARE: Final = 1 / 3
# Leases are renewed every third of their length: two renewals may fail before one expires.


class Sharing:
    """One session's use of a shared store (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        api_key: Callable[[], str],
        capacity: int | None,
        budget: RequestBudget | None,
        lease: float = DEFAULT_LEASE,
        watch_ttl: float = 2 * DEFAULT_LEASE,
        durations: DurationEstimates | None = None,
    ) -> None:
        self._url = url
        self._api_key = api_key
        self._capacity = capacity
        self._budget = budget
        self.lease = lease
        self.watch_ttl = watch_ttl  # renewed by each poll: longer than the longest gap between polls
        self._state: SharedState | None = None
        self._opening = anyio.Lock()
        self._owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"  # this session, in the store's leases
        self._slots: set[str] = set()  # slot holders of this session with a live lease
        self._bound: dict[str, str] = {}  # slot holder -> the task id of the job it holds the slot for
        self._orphans: dict[str, str] = {}  # released here before its job ended: held until the store says so
        self._ended: set[str] = set()  # task ids seen to end here, whose slot is about to be given back
        self._watched: set[str] = set()  # task ids this session polls for everyone
        self._tasks: set[asyncio.Task[Any]] = set()
        self._renewer: asyncio.Task[None] | None = None
        self._closed = False
        self._warned_at = -math.inf
        self._durations = durations  # what polling learned: loaded from the store, saved back now and then
        self._durations_saved_at = -math.inf
        self._durations_unsaved = False

    @property
    def owner(self) -> str:
        return self._owner

    @property
    def shown_url(self) -> str:
        """The store's URL without its password."""
        return redact_url(self._url)

    async def state(self) -> SharedState:
        """The opened store (opened now on first use)."""
        if self._state is None:
            async with self._opening:
                if self._state is None:
                    budget = self._budget
                    with self.failures():
                        self._state = await open_store(
                            self._url,
                            api_key=self._api_key(),
                            capacity=self._capacity or 1,
                            rate=budget.rate if budget is not None else UNBOUNDED_RATE,
                            burst=budget.capacity if budget is not None else UNBOUNDED_RATE,
                            lease=self.lease,
                        )
                    await self._load_durations(self._state)
        return self._state

    # --- what polling learned ------------------------------------------------------------------

    async def _load_durations(self, state: SharedState) -> None:
        """Start from what the processes of the store learned about job durations (the last one to save)."""
        if self._durations is None:
            return
        try:
            with self.failures(cancellable=False):
                raw = await state.values.get(DURATIONS_VALUE)
            if raw is not None:
                self._durations.load(loads_untrusted(raw.encode()))  # depth-checked: any process may write it
        except (StoreError, InvalidRequestError, ValueError) as exc:
            logger.warning("the durations learned by other processes could not be read: %s", exc)

    def durations_learned(self) -> None:
        """A job's duration was learned here: saved to the store at most every ``DURATIONS_SAVE_EVERY`` seconds."""
        if self._durations is None or self._state is None:
            return
        self._durations_unsaved = True
        now = time.monotonic()
        if now - self._durations_saved_at >= DURATIONS_SAVE_EVERY:
            self._durations_saved_at = now
            self._spawn(self._save_durations())

    async def _save_durations(self) -> None:
        if self._durations is None or self._state is None or not self._durations_unsaved:
            return
        self._durations_unsaved = False
        await self._state.values.put(DURATIONS_VALUE, json.dumps(self._durations.export()))

    @contextlib.contextmanager
    def failures(self, *, cancellable: bool = True) -> Iterator[None]:
        """Turn whatever the store's client raises into :class:`StoreError` (its password never shown).

        ``cancellable``: a cancellation the client swallowed (redis-py may finish a command it was
        cancelled in and return normally) is raised once the call is over. Off where the caller
        deliberately runs on through a cancellation (recording the task id of an accepted submit).
        """
        try:
            yield
            task = asyncio.current_task() if cancellable else None
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
        except (FastRouterError, asyncio.CancelledError):
            raise
        except Exception as exc:
            message = str(exc)
            password = urlsplit(self._url).password
            if password:
                message = message.replace(password, "***")
            # Not chained: a client's exception may carry the URL it was given, password and all.
            raise StoreError(f"the store {self.shown_url} could not be used: {type(exc).__name__}: {message}") from None

    # --- slots ------------------------------------------------------------------------------------

    @property
    def limits_jobs(self) -> bool:
        return self._capacity is not None

    async def acquire_slot(self, someone_waits: Callable[[], None]) -> str:
        """A lease on one of the account's job slots (``someone_waits()`` first when none is free)."""
        state = await self.state()
        holder = f"{self._owner}:{uuid.uuid4().hex[:12]}"
        with self.failures():
            if not await state.slots.try_acquire(holder):
                someone_waits()
                await state.slots.acquire(holder)
        self._slots.add(holder)
        self._ensure_renewer()
        return holder

    def bind(self, holder: str, task_id: str) -> None:
        """``holder``'s slot is held for the job ``task_id`` (accepted just now)."""
        self._bound[holder] = task_id

    def job_ended(self, task_id: str) -> None:
        """A poll here saw ``task_id`` end: its slot goes back as soon as it is released."""
        self._ended.add(task_id)

    def release_slot(self, holder: str) -> None:
        """Give a slot lease back (on a task: called where nothing may be awaited).

        A slot released before its job was seen to end (the handle was dropped, or nobody waits for
        it any more) stays held, renewed, until the store records the job's end (any process's poll):
        the job still counts against the account's limit.
        """
        if holder not in self._slots:
            return
        task_id = self._bound.pop(holder, None)
        if task_id is not None and task_id not in self._ended:
            self._orphans[holder] = task_id
            return
        self._ended.discard(task_id or "")
        self._slots.discard(holder)
        self._spawn(self._release(holder))

    async def _release(self, holder: str) -> None:
        state = await self.state()
        await state.slots.release(holder)

    # --- the request bucket -----------------------------------------------------------------------

    async def before_request(self) -> None:
        """Wait for a token of the shared bucket (and for the end of a shared pause).

        A store that fails here does not stop the request: this process goes on alone (the
        session's own budget still paces it), with a warning.
        """
        try:
            state = await self.state()
            with self.failures():
                await spend(state.bucket)  # a token, waiting out the pause of a 429 seen by any process
        except StoreError as exc:
            self._warn_alone(exc)

    def rate_limited(self, seconds: float) -> None:
        """A 429: pause every process sharing the store for ``seconds``."""
        if seconds > 0:
            self._spawn(self._pause(seconds))

    async def _pause(self, seconds: float) -> None:
        state = await self.state()
        await state.bucket.pause(seconds)

    # --- the job record ---------------------------------------------------------------------------

    async def intent(self, key: str, *, body: Mapping[str, Any], cache_key: str | None, model: str, at: float) -> bool:
        """Record that ``key`` is about to be sent; ``False`` if it already was (by any process)."""
        state = await self.state()
        return await state.store.record_intent(
            key, request_body=body, cache_key=cache_key, model=model, submitted_at=at
        )

    async def accepted(self, key: str, task_id: str) -> None:
        state = await self.state()
        with self.failures(cancellable=False):  # in the shielded completion of an accepted submit
            await state.store.record_task(key, task_id)

    def status(self, task_id: str, state: JobState, details: Mapping[str, Any] | None = None) -> None:
        """Record what a poll of ``task_id`` said (on a task: never holds up the poll)."""
        self._spawn(self._record_state(task_id, state, details))

    async def _record_state(self, task_id: str, state: JobState, details: Mapping[str, Any] | None) -> None:
        shared = await self.state()
        with contextlib.suppress(KeyError):  # a job the store never recorded (attached by task id)
            await shared.store.record_state(task_id, state, details=details)

    async def record(self, task_id: str) -> JobRecord | None:
        state = await self.state()
        with self.failures():
            return await state.store.get(task_id)

    async def records(self, **filters: Any) -> list[JobRecord]:
        state = await self.state()
        with self.failures():
            return await state.store.list(**filters)

    # --- watch leases -----------------------------------------------------------------------------

    async def watching(self, task_id: str) -> bool:
        """Whether this session polls ``task_id`` (it holds, or now takes, the job's watch lease)."""
        state = await self.state()
        with self.failures():
            if task_id in self._watched:
                if await state.watches.renew(task_id, self._owner, self.watch_ttl):
                    return True
                self._watched.discard(task_id)
            try:
                claimed = await state.watches.claim(task_id, self._owner, self.watch_ttl)
            except asyncio.CancelledError:
                # Cut short after the claim may have reached the store (a session closing cancels its
                # polls): give it back, or the job would wait a whole lease for another process.
                self._spawn(self._release_unless_watched(task_id))
                raise
            if claimed:
                self._watched.add(task_id)
                return True
        return False

    async def _release_unless_watched(self, task_id: str) -> None:
        if task_id not in self._watched:  # taken again meanwhile by a poll that completed: kept
            state = await self.state()
            await state.watches.release(task_id, self._owner)

    def watches(self, task_id: str) -> bool:
        """Whether this session holds ``task_id``'s watch lease (as of its last poll)."""
        return task_id in self._watched

    def unwatch(self, task_id: str) -> None:
        """Stop polling ``task_id`` for everyone (it ended, or nobody here waits for it any more)."""
        if task_id in self._watched:
            self._watched.discard(task_id)
            self._spawn(self._unwatch(task_id))

    async def _unwatch(self, task_id: str) -> None:
        state = await self.state()
        await state.watches.release(task_id, self._owner)

    async def unclaimed(self, limit: int | None = None) -> list[str]:
        state = await self.state()
        return await state.watches.unclaimed(limit)

    # --- lifetime ---------------------------------------------------------------------------------

    def _ensure_renewer(self) -> None:
        if self._renewer is None and not self._closed:
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        """Keep this session's slot leases alive while they are held (watch leases are renewed by each poll:
        a job nobody here polls any more is left to the other processes)."""
        while True:
            await anyio.sleep(self.lease * RENEW_SHARE)
            try:
                await self._renew_once()
            except Exception as exc:  # the next round tries again; leases outlive two failed rounds
                logger.warning("could not renew job slot leases in the store %s: %s", self.shown_url, exc)

    async def _renew_once(self) -> None:
        state = await self.state()
        with self.failures():
            for holder, task_id in list(self._orphans.items()):
                record = await state.store.get(task_id)
                if record is None or record.finished:
                    del self._orphans[holder]
                    self._slots.discard(holder)
                    await state.slots.release(holder)
            for holder in list(self._slots):
                if not await state.slots.renew(holder) and holder in self._slots:
                    logger.warning("a job slot lease expired before it was renewed; taking it again")
                    await state.slots.acquire(holder)

    def _warn_alone(self, exc: StoreError) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            logger.warning("%s; this process goes on alone meanwhile", exc)

    def _spawn(self, work: Awaitable[None]) -> None:
        if self._closed:
            _close(work)
            return
        task = asyncio.get_running_loop().create_task(self._logged(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _logged(self, work: Awaitable[None]) -> None:
        try:
            await work
        except Exception:
            logger.exception("could not write to the shared store %s", self._url)

    async def aclose(self) -> None:
        """Give every lease back (other processes take over at once), finish pending writes, close the store."""
        if self._closed:
            return
        self._closed = True
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
        if self._state is None:
            return
        with anyio.move_on_after(5, shield=True):
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            with contextlib.suppress(
                Exception
            ):  # what was learned since the last save; the next process starts from it
                await self._save_durations()
            for holder in list(self._slots):
                await self._state.slots.release(holder)
            for task_id in list(self._watched):
                await self._state.watches.release(task_id, self._owner)
        self._slots.clear()
        self._orphans.clear()
        self._bound.clear()
        self._watched.clear()
        await self._state.aclose()

    # --- leases on other work (a batch line's submit, a download), details added to a record -----

    async def claim(self, name: str, ttl: float | None = None) -> bool:
        """Take the lease ``name`` (a watch lease under a name no task id has, such as ``submit:KEY`` or
        ``download:TASK_ID``) for ``ttl`` seconds (default: one ``lease``); ``False`` if another owner holds it.

        Renew it with :meth:`renew_claim` more often than that; a process that dies lets it expire.
        :class:`StoreError` when the store cannot be used (as for the calls below).
        """
        state = await self.state()
        with self.failures():
            return await state.watches.claim(name, self._owner, self.lease if ttl is None else ttl)

    async def renew_claim(self, name: str, ttl: float | None = None) -> bool:
        """Extend this session's lease ``name`` to ``ttl`` seconds from now; ``False`` if it lapsed."""
        state = await self.state()
        with self.failures():
            return await state.watches.renew(name, self._owner, self.lease if ttl is None else ttl)

    async def release_claim(self, name: str) -> None:
        state = await self.state()
        with self.failures():
            await state.watches.release(name, self._owner)

    async def record_details(self, task_id: str, state: JobState, details: Mapping[str, Any]) -> None:
        """Merge ``details`` into ``task_id``'s record now (awaited, unlike :meth:`status`)."""
        shared = await self.state()
        with self.failures():
            await shared.store.record_state(task_id, state, details=details)


def _close(work: Awaitable[None]) -> None:
    close = getattr(work, "close", None)
    if close is not None:
        close()


def status_from_record(record: JobRecord, model: str | None) -> JobStatus | None:
    """The status the store shows for a job another process polls (``None``: nothing usable recorded).

    A finished job's status comes with its links, cost and error; a success whose video came inside
    the answer (not as a link) is not usable: that one is polled here once.
    """
    assert record.task_id is not None
    state = record.state
    if state is None:
        return None
    details = record.details
    urls = tuple(u for u in details.get("urls", ()) if isinstance(u, str))
    if state is JobState.SUCCEEDED and not urls:
        return None
    return JobStatus(
        task_id=record.task_id,
        model=model or record.model,
        state=state,
        raw_status=str(details.get("raw_status") or state.value),
        urls=urls,
        error=details.get("error") if isinstance(details.get("error"), str) else None,
        cost_usd=_number(details.get("cost_usd")),
        credits_used=_number(details.get("credits_used")),
        source=ResultSource.URL if state is JobState.SUCCEEDED else None,
    )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def details_of(status: JobStatus) -> dict[str, Any]:
    """What the store keeps of a status another process may need (JSON values)."""
    details: dict[str, Any] = {"raw_status": status.raw_status}
    if status.urls:
        details["urls"] = list(status.urls)
    if status.error is not None:
        details["error"] = status.error
    if status.cost_usd is not None:
        details["cost_usd"] = status.cost_usd
    if status.credits_used is not None:
        details["credits_used"] = status.credits_used
    return details
