"""The engine's submit: never blindly retried, replayed with the same cache key, under the job slots.

:meth:`Submitter.start` is the whole of one submit: the spend cap's reservation, the
attempts (retried only while no job can have been created; replayed with the same
``cache_key`` when an answer is lost, see ``_replays``), a "too many jobs at once"
answer lowering the job cap and waiting for a slot under it, and the hooks a batch
journal needs. It returns an :class:`Accepted` value; building the job handle is the
layer above's business.
"""

from __future__ import annotations

import functools
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio
import attrs

from ._api import Api
from ._concurrency import is_concurrency_limit_error
from ._config import ReplayPolicy
from ._errors import APIConnectionError, FastRouterError, RateLimitError, StoreError, SubmitUncertainError
from ._models import AcceptedJob, VideoRequest
from ._protocol import HttpCall, build_submit_body, submit_call, submit_estimate
from ._replays import SubmitAttempts, found_again, replaying
from ._retry import RetryCounter, retrying
from ._sharing import Sharing
from ._slots import JobSlots, Slot
from ._spend import SpendHold
from ._submits import Announcer, SubmitIdentity, SubmitWin, complete_despite_cancellation

__all__ = ["Accepted", "SubmitHooks", "Submitter"]

logger = logging.getLogger("fastrouter_async")


class SubmitHooks(Protocol):
    """What a batch journal needs to hear about one submit."""

    async def before_send(self, attempt: int) -> None:
        """Called before each attempt is sent (0: the first; 1..n: replays with the same cache key);
        the intent must be durable when it returns."""

    async def accepted(self, task_id: str, *, found_again: bool | None) -> None:
        """Called with the task id, even when the caller has been cancelled meanwhile; ``found_again``
        tells whether a replay found the job an earlier attempt created (see ``VideoJob.found_again``)."""

    async def not_created(self, reason: str) -> None:
        """Called when an attempt definitely created no job."""


@attrs.frozen(kw_only=True)
class Accepted:
    """A submit FastRouter accepted, with the slot and the spend reservation the job now holds."""

    win: AcceptedJob
    slot: Slot | None
    hold: SpendHold | None


class Submitter:
    """Submits of one session."""

    def __init__(
        self,
        api: Api,
        slots: JobSlots,
        *,
        announcer: Announcer,
        replay_policy: ReplayPolicy,
        rng: random.Random,
        hold: Callable[[VideoRequest], SpendHold | None],
        acquire: Callable[[], Awaitable[Slot | None]],
        sharing: Sharing | None = None,
    ) -> None:
        self._api = api
        self._slots = slots
        self._announcer = announcer
        self._replay_policy = replay_policy
        self._rng = rng
        self._hold = hold
        self._acquire = acquire  # a slot again after "too many jobs at once" (refused once the session closed)
        self._sharing = sharing  # a shared store: each submit's intent and task id are recorded there

    async def start(
        self,
        request: VideoRequest,
        slot: Slot | None,
        hooks: SubmitHooks | None = None,
        identity: SubmitIdentity | None = None,
        hold: SpendHold | None = None,
    ) -> Accepted:
        """Submit an already validated request on an already acquired slot (released on failure).

        ``identity`` is the job's cache key and the time of its first attempt (a resumed batch job);
        ``None``: the request's own ``cache_key``, or a fresh one, first sent now.
        """
        if hold is None:
            try:
                hold = self._hold(request)  # reserved before anything is sent (spend caps)
            except BaseException:
                if slot is not None:
                    slot.release()
                raise
        refusals = RetryCounter(self._api.retry_policy)
        attempts = SubmitAttempts.start(request, identity, self._replay_policy)  # one key for every attempt
        if self._sharing is not None:
            hooks = StoreHooks(self._sharing, request, attempts.cache_key, hooks)
        while True:
            try:
                win = await self.submit(request, hooks, attempts)
                break
            except RateLimitError as exc:
                if not is_concurrency_limit_error(exc):
                    _give_back(slot, hold if attempts.replays == 0 else None)  # refused: no job was created
                    raise
                self._slots.limited()  # this submit's slot counts
                if slot is not None:
                    slot.release()
                    slot = None
                delay = refusals.delay_after(exc, self._rng, transient=True)
                if delay is None:
                    raise
                current = self._slots.current
                logger.warning(
                    "submit of %s: too many jobs at once (%s); at most %s in flight from now on, retrying in %.2fs",
                    request.describe(),
                    exc.message,
                    current if current is not None else "any number",
                    delay,
                )
                await anyio.sleep(delay)
                slot = await self._acquire()
            except BaseException as exc:
                refused = isinstance(exc, FastRouterError) and not isinstance(exc, SubmitUncertainError)
                # Refused before any replay: no job was created. An uncertain submit, or one refused on a
                # replay (an earlier attempt may have created the job), stays reserved.
                _give_back(slot, hold if refused and attempts.replays == 0 else None)
                raise
        self._slots.accepted()
        logger.info("submitted %s as task %s", request.describe(), win.task_id)
        if hold is not None and win.found_again and identity is None and attempts.replays == 0:
            hold.settle(0.0)  # a cache hit on a job another submit created (and paid for): this one is free
        return Accepted(win=win, slot=slot, hold=hold)

    async def submit(
        self, request: VideoRequest, hooks: SubmitHooks | None = None, attempts: SubmitAttempts | None = None
    ) -> AcceptedJob:
        """Submit ``request``: retried while no job can have been created, replayed with the same
        cache key when an answer is lost (see ``_replays``), else :class:`SubmitUncertainError`."""
        policy = self._replay_policy
        if attempts is None:
            attempts = SubmitAttempts.start(request, None, policy)
        call = submit_call(self._api.base_url, request, cache_key=attempts.cache_key, cache_ttl=policy.ttl)
        what = f"submit of {request.describe()}"
        retry_policy = self._api.retry_policy
        return await replaying(
            functools.partial(
                retrying,
                functools.partial(self._attempt, call, request, hooks, attempts),
                policy=retry_policy,
                should_retry=_may_retry,
                rng=self._rng,
                what=what,
            ),
            attempts,
            policy=policy,
            retry_policy=retry_policy,
            rng=self._rng,
            what=what,
        )

    async def _attempt(
        self, call: HttpCall, request: VideoRequest, hooks: SubmitHooks | None, attempts: SubmitAttempts
    ) -> AcceptedJob:
        """One attempt (the first, a retry that sent nothing before, or a replay), completed despite cancellation."""
        self._api.ensure_open()
        # The budget is waited for first, where a cancellation still sends nothing (and before
        # a journal records the intent, so that the window in which a crash leaves the outcome
        # unknown spans the HTTP exchange alone).
        ticket = await self._api.throttle.acquire()
        if attempts.first_attempt_at is None:
            attempts.first_attempt_at = time.time()  # the replay window counts from the first send
        send = functools.partial(self._send, call, request, hooks, ticket, attempts)
        if hooks is None:
            # Once sent, the request runs to completion even if the caller is cancelled:
            # abandoning it half-way would lose the task id of a job that is being paid for.
            return await complete_despite_cancellation(send, request, self._announcer)
        try:
            await hooks.before_send(attempts.replays)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await hooks.not_created("stopped before the submit was sent")
            raise
        try:
            return await complete_despite_cancellation(send, request, self._announcer)
        except SubmitUncertainError:
            raise
        except FastRouterError as exc:  # refused, rate limited or never sent: no job exists
            await hooks.not_created(str(exc))
            raise

    async def _send(
        self, call: HttpCall, request: VideoRequest, hooks: SubmitHooks | None, ticket: int, attempts: SubmitAttempts
    ) -> SubmitWin:
        accepted = await self._api.submit_once(call, request, ticket)
        again = found_again(accepted, attempts)
        if hooks is not None:
            await hooks.accepted(accepted.task_id, found_again=again)  # inside the shielded completion
        if again:
            logger.info(
                "%s found task %s, created by an earlier attempt (not billed again)",
                request.describe(),
                accepted.task_id,
            )
        return SubmitWin(
            task_id=accepted.task_id,
            cache_key=attempts.cache_key,
            found_again=again,
            estimate=submit_estimate(accepted.payload),
        )


def _give_back(slot: Slot | None, hold: SpendHold | None) -> None:
    if slot is not None:
        slot.release()
    if hold is not None:
        hold.release()


def _may_retry(exc: FastRouterError) -> bool:
    """Submits are retried only when no job can have been created."""
    if isinstance(exc, RateLimitError):
        return not is_concurrency_limit_error(exc)  # "too many jobs at once": start() waits for a slot first
    return isinstance(exc, APIConnectionError) and not exc.request_sent


class StoreHooks:
    """Records a submit in a shared store (its intent before the first attempt is sent, then its task id),
    around the hooks of a batch journal, if any."""

    def __init__(
        self, sharing: Sharing, request: VideoRequest, cache_key: str | None, inner: SubmitHooks | None
    ) -> None:
        self._sharing = sharing
        self._request = request
        self._cache_key = cache_key
        self._key = cache_key or f"submit-{uuid.uuid4().hex}"
        self._inner = inner
        self._recorded = False

    async def before_send(self, attempt: int) -> None:
        if not self._recorded:
            self._recorded = True
            await self._sharing.intent(
                self._key,
                body=build_submit_body(self._request),
                cache_key=self._cache_key,
                model=self._request.model,
                at=time.time(),
            )
        if self._inner is not None:
            await self._inner.before_send(attempt)

    async def accepted(self, task_id: str, *, found_again: bool | None) -> None:
        try:
            await self._sharing.accepted(self._key, task_id)
        except (KeyError, ValueError, StoreError) as exc:  # another submit's key, or the store failed: keep the job
            logger.warning("could not record task %s in the shared store: %s", task_id, exc)
        if self._inner is not None:
            await self._inner.accepted(task_id, found_again=found_again)

    async def not_created(self, reason: str) -> None:
        if self._inner is not None:
            await self._inner.not_created(reason)
