"""Events: typed values telling what a session does (submits, polls, 429s, downloads, job ends).

They are plain frozen values with no behaviour: the session's ``on_event`` callback,
``job.events()``, the command line's displays and the OpenTelemetry instrumentation
are all consumers of the same values (see ``_event_hub`` for how they are delivered).
"""

from __future__ import annotations

import datetime
from pathlib import Path

import attrs

from ._models import JobState, JobStatus, VideoRequest

__all__ = [
    "DownloadFinished",
    "DownloadProgressed",
    "Event",
    "JobEnded",
    "JobSubmitted",
    "PollRetried",
    "PollerBehind",
    "PollerCaughtUp",
    "RateLimited",
    "StatusChanged",
]


@attrs.frozen(kw_only=True)
class JobSubmitted:
    """FastRouter accepted a submit: a paid job exists (sent also when the caller was cancelled meanwhile)."""

    task_id: str
    model: str
    request: VideoRequest = attrs.field(repr=False)
    """The request as sent (its prompt is the application's own data)."""
    submitted_at: datetime.datetime
    """When the submit was accepted (aware, UTC)."""
    estimated_seconds: float | None = None
    """How long a job like this one is expected to take (the session's learned median), if known."""


@attrs.frozen(kw_only=True)
class StatusChanged:
    """A poll saw the job's state or FastRouter's status word change (the first answer counts as a change)."""

    task_id: str
    model: str | None
    status: JobStatus


@attrs.frozen(kw_only=True)
class PollRetried:
    """A poll failed in a way worth another try; the job is asked again after ``delay`` seconds."""

    task_id: str
    model: str | None
    attempt: int
    """How many polls in a row have failed so far, not counting 429s (those also send :class:`RateLimited`)."""
    delay: float
    error: str
    """What went wrong (the error's message, without the key)."""


@attrs.frozen(kw_only=True)
class RateLimited:
    """FastRouter answered "too many requests" (429): the whole session slows down for ``retry_after`` seconds."""

    method: str
    url: str
    """The request's URL without its query string."""
    retry_after: float | None
    """The pause the server asked for (capped by the retry policy), or ``None`` when it gave none."""
    task_id: str | None = None
    """The job the request was polling, if it was a poll."""


@attrs.frozen(kw_only=True)
class DownloadProgressed:
    """More bytes of a video were written (sent as each chunk is written)."""

    task_id: str
    received: int
    total: int | None
    """The size announced by the server, if it announced one."""


@attrs.frozen(kw_only=True)
class DownloadFinished:
    """A video was written to disk, complete and verified."""

    task_id: str
    model: str | None
    path: Path
    bytes: int
    seconds: float
    """How long the download took, retries included."""


@attrs.frozen(kw_only=True)
class JobEnded:
    """A poll saw the job succeed or fail: its last event (``job.events()`` ends with it)."""

    task_id: str
    model: str | None
    state: JobState
    """``SUCCEEDED`` or ``FAILED``."""
    status: JobStatus
    cost_usd: float | None
    """What the job cost, when FastRouter said."""
    error: str | None
    """Why it failed (``None`` when it succeeded)."""
    polls: int
    """How many polls this session made for the job."""
    seconds: float | None
    """From submit to the answer that showed the end (``None`` for a job re-attached without its submit time)."""


@attrs.frozen(kw_only=True)
class PollerBehind:
    """The session's poller falls behind its schedule: polls start late, so jobs are polled less often.

    Sent once when polls keep starting late (a warning is logged with it); :class:`PollerCaughtUp`
    follows when they start on time again. See docs/performance.md, "Polling capacity".
    """

    lateness: float
    """How many seconds after their due time the recent polls started (a running average)."""
    jobs_scheduled: int
    """How many jobs were on the poll schedule."""


@attrs.frozen(kw_only=True)
class PollerCaughtUp:
    """The session's poller is on schedule again after a :class:`PollerBehind`."""

    lateness: float
    """How late the recent polls started, in seconds (a running average)."""
    jobs_scheduled: int
    seconds_behind: float
    """How long the poller was behind."""


Event = (
    JobSubmitted
    | StatusChanged
    | PollRetried
    | RateLimited
    | DownloadProgressed
    | DownloadFinished
    | JobEnded
    | PollerBehind
    | PollerCaughtUp
)
"""Any event a session sends (match on the class: ``isinstance(event, JobEnded)``)."""
