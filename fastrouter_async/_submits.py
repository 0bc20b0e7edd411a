"""Around one accepted submit: telling the application, finishing despite cancellation, submit times.

A submit creates a paid job. Once its request is on its way, the task id it brings
back must reach the application whatever happens to the caller: the request is
completed even if the caller is cancelled, the session's ``on_accepted`` callback
hears of every accepted job before ``submit()`` returns or its cancellation
propagates, and a cancellation delivered afterwards carries the task id as a note
and as attributes of the exception.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable

import anyio
import attrs

from ._config import check_number
from ._errors import InvalidRequestError
from ._models import AcceptedJob, SubmitEstimate, VideoRequest
from ._protocol import scrub

__all__ = [
    "DEFAULT_ON_ACCEPTED_TIMEOUT",
    "SUBMIT_TIME_SKEW",
    "AcceptedCallback",
    "Announcer",
    "SubmitIdentity",
    "SubmitWin",
    "check_on_accepted",
    "complete_despite_cancellation",
    "submitted_wall_time",
]

logger = logging.getLogger("fastrouter_async")

AcceptedCallback = Callable[[AcceptedJob], object]
"""``on_accepted``: a plain function, or an async one (its awaitable is awaited, bounded)."""

DEFAULT_ON_ACCEPTED_TIMEOUT = 10.0
# An async on_accepted usually writes one row to a database: milliseconds. Ten seconds rides
# out a busy connection pool, yet a hung callback cannot hold a cancelled request handler for long.

SUBMIT_TIME_SKEW = 300.0
# How far in the future a submit time given to ``session.job()`` may lie: the clocks of two
# machines of one deployment may differ by a few seconds to minutes, never by more.


@attrs.frozen
class SubmitIdentity:
    """What makes the attempts of one submit the same job: its cache key and when it was first sent.

    ``cache_key`` is ``None`` when replays are off. ``first_attempt_at`` (a unix time) is ``None``
    until the first attempt is sent; a resumed batch job passes the time of its first attempt, so
    the replay window counts from then.
    """

    cache_key: str | None
    first_attempt_at: float | None


@attrs.frozen(kw_only=True)
class SubmitWin:
    """What one accepted attempt brought back, for ``complete_despite_cancellation``."""

    task_id: str
    cache_key: str | None = None
    found_again: bool | None = None
    estimate: SubmitEstimate | None = None


def check_on_accepted(callback: object, timeout: object) -> tuple[AcceptedCallback | None, float]:
    """The session's ``on_accepted`` and ``on_accepted_timeout`` arguments, checked."""
    if callback is not None and not callable(callback):
        raise InvalidRequestError("on_accepted", callback, "a function taking an AcceptedJob (sync or async), or None")
    return callback, check_number(
        "on_accepted_timeout", timeout, "a finite number of seconds > 0", above=0, below=math.inf
    )


def submitted_wall_time(value: object, *, now: float | None = None) -> float | None:
    """``session.job(submitted_at=...)``: a unix timestamp or an aware datetime, as a unix timestamp."""
    if value is None:
        return None
    allowed = (
        "when the task was submitted: a unix timestamp (float) or a timezone-aware datetime, "
        "such as VideoJob.submitted_at or AcceptedJob.submitted_at"
    )
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidRequestError("submitted_at", value, allowed + " (this datetime has no timezone)")
        wall = value.timestamp()
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        wall = float(value)
    else:
        raise InvalidRequestError("submitted_at", value, allowed)
    now = time.time() if now is None else now
    if wall > now + SUBMIT_TIME_SKEW:
        raise InvalidRequestError(
            "submitted_at", value, allowed + f", not more than {SUBMIT_TIME_SKEW:.0f} s in the future"
        )
    return min(wall, now)


class Announcer:
    """Hands each accepted submit to the application's ``on_accepted`` callback, never failing the submit."""

    def __init__(self, callback: AcceptedCallback | None, *, timeout: float, secret: Callable[[], str]) -> None:
        self._callback = callback
        self._timeout = timeout
        self._secret = secret

    async def announce(self, accepted: AcceptedJob) -> None:
        """Call the callback (an async one is awaited for at most ``timeout`` seconds); errors are logged."""
        if self._callback is None:
            return
        try:
            outcome = self._callback(accepted)
            if inspect.isawaitable(outcome):
                with anyio.move_on_after(self._timeout) as scope:
                    await outcome
                if scope.cancelled_caught:
                    logger.error(
                        "on_accepted for task %s (%s) did not finish within %.3gs and was cancelled; "
                        "the task is running and billed",
                        accepted.task_id,
                        accepted.model,
                        self._timeout,
                    )
        except Exception as exc:  # the callback's own failure must never lose the job it was told about
            # No traceback: its text is the application's and is logged scrubbed, like everything else.
            logger.error(  # noqa: TRY400
                "on_accepted failed for task %s (%s): %s; the task is running and billed",
                accepted.task_id,
                accepted.model,
                scrub(f"{type(exc).__name__}: {exc}", self._secret()),
            )


class _Caller:
    """Whether the caller of a submit was cancelled while its request was on its way."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False


async def complete_despite_cancellation(
    submit: Callable[[], Awaitable[SubmitWin]],
    request: VideoRequest,
    announcer: Announcer,
) -> AcceptedJob:
    """Run ``submit`` (returning what the accepted attempt brought back) to its end despite cancellation.

    The accepted job is announced from inside the protected task, so the callback runs
    even when the caller is gone; then a cancellation that arrived meanwhile is
    re-raised with the task id attached. The inner task is owned here and always
    awaited: nothing runs on after return. A native cancellation (``task.cancel()``,
    ``asyncio.timeout``) is delivered once; anyio re-delivers its own at every
    checkpoint, which the shielded scope holds off until the request (bounded by its
    own timeout) and the callback (bounded by ``on_accepted_timeout``) have finished.
    """
    caller = _Caller()

    async def submit_and_announce() -> AcceptedJob:
        win = await submit()
        accepted = AcceptedJob(
            task_id=win.task_id,
            model=request.model,
            request=request,
            submitted_at=datetime.datetime.now(datetime.UTC),
            cancelled=caller.cancelled,
            cache_key=win.cache_key,
            found_again=win.found_again,
            submit_estimate=win.estimate,
        )
        await announcer.announce(accepted)
        return accepted

    task: asyncio.Task[AcceptedJob] = asyncio.ensure_future(submit_and_announce())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError as exc:
        if task.cancelled():
            raise
        cancelled = exc
        caller.cancelled = True
    with anyio.CancelScope(shield=True):
        while not task.done():
            try:
                await asyncio.wait([task])
            except asyncio.CancelledError as exc:  # a second native cancel: keep the newest
                cancelled = exc
    if not task.cancelled() and task.exception() is None:
        accepted = task.result()
        logger.warning(
            "submit of %s was cancelled after FastRouter accepted it: task %s is running and billed; "
            "re-attach it with session.job(%r, model=%r, submitted_at=...)",
            request.describe(),
            accepted.task_id,
            accepted.task_id,
            request.model,
        )
        cancelled.fastrouter_task_id = accepted.task_id  # type: ignore[attr-defined]
        cancelled.fastrouter_accepted = attrs.evolve(accepted, cancelled=True)  # type: ignore[attr-defined]
        cancelled.add_note(
            f"fastrouter_async: the submit had already been accepted as task {accepted.task_id} "
            f"(model {request.model}, submitted at {accepted.submitted_at.isoformat()}); re-attach it with "
            f"session.job({accepted.task_id!r}, model={request.model!r}, submitted_at=...)"
        )
    raise cancelled
