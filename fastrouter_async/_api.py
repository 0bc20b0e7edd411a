"""The API layer of the engine: budgeted requests, one submit, one poll.

Every request to FastRouter goes through :meth:`Api.request`: it waits for the
session's request budget (:class:`~._budget.Throttle`), sends, and tells the budget
how it went (a 429 slows the whole session, except a submit's "too many jobs at
once", which is the job slots' business). :meth:`Api.submit_once` and
:meth:`Api.poll_once` turn one exchange into a documented outcome
(``_answers``); neither retries. Retrying polls is :meth:`Api.poll_with_retries`;
submits are never retried here (see ``_submitter``).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import Final

import anyio

from ._answers import detached, poll_outcome, submit_outcome
from ._budget import Throttle
from ._concurrency import is_concurrency_limit
from ._config import PollRoute, RetryPolicy, Secret
from ._errors import APIConnectionError, FastRouterError, NotFoundError, SubmitUncertainError, UnexpectedResponseError
from ._event_hub import EventHub, polling_task
from ._events import RateLimited
from ._models import JobState, JobStatus, VideoRequest
from ._protocol import HttpCall, Response, SubmitAccepted, poll_call, retry_after_seconds
from ._retry import is_transient, retrying
from ._sharing import Sharing
from ._transport import Transport, loggable

__all__ = ["Api", "never_in_grace"]

PARSE_IN_THREAD_BYTES: Final = 256 * 1024
# Status answers are a few hundred bytes and parse in microseconds. One that carries the video
# inline (base64) can be megabytes: parsing it on the event loop would stall every other job.


def never_in_grace() -> bool:
    """For polls outside any not-visible-yet window: a 404 is a 404."""
    return False


class Api:
    """Requests to one FastRouter base URL, under one request budget."""

    def __init__(
        self,
        *,
        transport: Transport,
        secret: Secret,
        base_url: str,
        poll_route: PollRoute,
        throttle: Throttle,
        retry_policy: RetryPolicy,
        rng: random.Random,
        events: EventHub,
        ensure_open: Callable[[], None],
    ) -> None:
        self.transport = transport
        self.secret = secret
        self.base_url = base_url
        self.poll_route = poll_route
        self.throttle = throttle
        self.retry_policy = retry_policy
        self.rng = rng
        self.events = events
        self.submit_url = f"{base_url}/videos"  # its 429s may be about jobs, not requests
        self.ensure_open = ensure_open  # raises RuntimeError once the session is closed
        self.sharing: Sharing | None = None  # a store shared with other processes: its bucket and pause too

    def poll_call(self, task_id: str, model: str | None) -> HttpCall:
        return poll_call(self.poll_route, self.base_url, task_id, model)

    async def request(self, call: HttpCall, ticket: int | None = None) -> Response:
        """One API request, paced by the budget (``ticket``: the caller already waited for it)."""
        if ticket is None:
            ticket = self.throttle.try_acquire()
            if ticket is None:
                ticket = await self.throttle.acquire()
        if self.sharing is not None:
            await self.sharing.before_request()
        response = await self.transport.request(call)
        self._tell_throttle(call, response, ticket)
        return response

    def _tell_throttle(self, call: HttpCall, response: Response, ticket: int) -> None:
        """A request sent in episode ``ticket`` got ``response``: slow down, or let the budget recover."""
        if response.status != 429:
            self.throttle.succeeded(ticket)
            return
        if call.method == "POST" and call.url == self.submit_url and is_concurrency_limit(response.body):
            return  # "too many jobs at once": the submit waits for fewer jobs in flight; polls go on
        wait = retry_after_seconds(response.headers, now=time.time())
        if wait is not None:
            wait = min(max(wait, 0.0), self.retry_policy.max_retry_after)
        self.throttle.rate_limited_by(ticket, wait)
        if self.sharing is not None:  # every process sharing the store pauses as long
            self.sharing.rate_limited(self.throttle.paused_until - anyio.current_time())
        self.events.emit(
            RateLimited(method=call.method, url=loggable(call.url), retry_after=wait, task_id=polling_task.get())
        )

    # --- one submit -------------------------------------------------------------------------

    async def submit_once(self, call: HttpCall, request: VideoRequest, ticket: int | None = None) -> SubmitAccepted:
        """One submit: the accepted job, or a documented error raised without the frames below."""
        try:
            return await self._submit_answer(call, request, ticket)
        except FastRouterError as exc:
            failure = detached(exc)
        raise failure

    async def _submit_answer(self, call: HttpCall, request: VideoRequest, ticket: int | None) -> SubmitAccepted:
        try:
            response = await self.request(call, ticket)
        except APIConnectionError as exc:
            if not exc.request_sent:
                raise  # nothing reached the server: safe to retry
            raise SubmitUncertainError(request, str(exc)) from exc
        except UnexpectedResponseError as exc:  # an answer too large to be a create answer
            raise SubmitUncertainError(request, str(exc)) from exc
        return submit_outcome(response, request, call=call, secret=self.secret, now=time.time())

    # --- one poll ---------------------------------------------------------------------------

    async def poll_once(
        self, task_id: str, model: str | None, call: HttpCall, in_grace: Callable[[], bool] = never_in_grace
    ) -> JobStatus:
        """One poll: the job's status, or a documented error raised without the frames below.

        Inside the not-visible-yet window (``in_grace()``, asked when the answer is a 404),
        a 404 is a ``PENDING`` status instead of :class:`NotFoundError`.
        """
        # One coroutine, not two: this runs for every poll.
        try:
            self.ensure_open()
            response = await self.request(call)
            try:
                if response.body is not None and len(response.body) > PARSE_IN_THREAD_BYTES:
                    interpret = functools.partial(
                        poll_outcome,
                        response,
                        task_id=task_id,
                        model=model,
                        call=call,
                        secret=self.secret,
                        now=time.time(),
                    )
                    return await anyio.to_thread.run_sync(interpret)  # an inline video: megabytes of JSON
                return poll_outcome(
                    response, task_id=task_id, model=model, call=call, secret=self.secret, now=time.time()
                )
            except NotFoundError:
                if not in_grace():
                    raise
            return JobStatus(task_id=task_id, model=model, state=JobState.PENDING, raw_status="not visible yet")
        except FastRouterError as exc:
            failure = detached(exc)
        raise failure

    async def poll_with_retries(self, task_id: str, model: str | None) -> JobStatus:
        """The status of a task, retrying what may pass (outside any grace window)."""
        call = self.poll_call(task_id, model)
        return await retrying(
            lambda: self.poll_once(task_id, model, call),
            policy=self.retry_policy,
            should_retry=is_transient,
            rng=self.rng,
            what=f"status of task {task_id}",
        )
